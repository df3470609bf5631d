"""The one exception tree of lasso-rpc.

::

    LassoError
    ├── ConfigError                  invalid configuration; ``errors`` lists "key.path: message"
    ├── TransportError               an upstream exchange produced no usable HTTP/WS answer
    │   ├── ConnectError             never reached the provider: safe to resend, even a write
    │   ├── ConnectionLost           closed or reset after (part of) the request may have gone out
    │   ├── UpstreamTimeout          no complete answer within the attempt's timeout
    │   ├── ResponseTooLarge         the body exceeded the configured cap
    │   └── MalformedResponse        broken HTTP framing or a body that is not JSON-RPC
    ├── UpstreamFault                the provider answered with a failure of its own (5xx, 429,
    │                                rate-limit code, unsupported method, lagging, wrong id);
    │                                ``error_class`` says which, for failover and breakers
    └── RequestRejected              the router answers the client with a JSON-RPC error itself
        ├── ParseError               -32700
        ├── InvalidRequest           -32600
        ├── MethodNotAllowed         -32601  (unknown, signing or HTTP subscription methods)
        ├── InvalidParams            -32602  (also unknown chain / provider / profile)
        ├── InternalError            -32603
        ├── NoProviderAvailable      -32001
        ├── AllAttemptsFailed        -32002  (``data.attempts`` lists each attempt)
        ├── DeadlineExceeded         -32003
        ├── BodyTooLarge             -32004  (HTTP 413)
        ├── RateLimited              -32005  (HTTP 429, ``Retry-After``: ``retry_after_s``)
        ├── Unauthorized             -32006  (HTTP 401: no valid API key)
        └── Forbidden                -32006  (HTTP 403: this key may not use that profile)

    Battle framework (defined beside their code, still LassoErrors):
    ├── battle.report.schema.InvalidResult      a result JSON not following the schema
    ├── battle.catalogue.UnknownScenario        no such scenario file or built-in name
    ├── battle.providers.anvil.AnvilError       AnvilNotFound, AnvilRpcError, LockstepDiverged
    └── battle.providers.router_process.RouterProcessError
                                                a router node exited or never listened

    Shared state (defined beside their code, still LassoErrors; never reach a client):
    ├── cluster.redis_guard.StateUnavailable    Redis down, slow, or its breaker open
    └── cluster.hub_link.HubUnavailable         the workers' parent did not answer

Foreign exceptions (OSError, asyncio.TimeoutError, httptools/aiohttp errors) are translated once,
in the transport layer, with ``raise ... from exc``. Only the server layer turns a
``RequestRejected`` into a JSON-RPC error object, from the table in ``lasso_rpc.server.errors``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AllAttemptsFailed",
    "BodyTooLarge",
    "ConfigError",
    "ConnectError",
    "ConnectionLost",
    "Forbidden",
    "DeadlineExceeded",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "LassoError",
    "MalformedResponse",
    "MethodNotAllowed",
    "NoProviderAvailable",
    "ParseError",
    "RateLimited",
    "RequestRejected",
    "ResponseTooLarge",
    "TransportError",
    "Unauthorized",
    "UpstreamFault",
    "error_name",
    "UpstreamTimeout",
]


class LassoError(Exception):
    """Base of every exception lasso-rpc raises on purpose."""


class ConfigError(LassoError):
    """Configuration is invalid. ``errors`` holds every problem as ``"key.path: message"``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid configuration:\n" + "\n".join(f"  {e}" for e in self.errors))


class TransportError(LassoError):
    """The exchange with an upstream produced no usable answer."""

    #: True when the request certainly never reached the provider (safe to resend a write).
    never_sent: bool = False


class ConnectError(TransportError):
    never_sent = True


class ConnectionLost(TransportError):
    pass


class UpstreamTimeout(TransportError):
    pass


class ResponseTooLarge(TransportError):
    pass


class MalformedResponse(TransportError):
    pass


class UpstreamFault(LassoError):
    """The provider answered with something that is its own failure, not the client's."""

    def __init__(
        self,
        message: str,
        *,
        error_class: str,
        status: int | None = None,
        code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


class RequestRejected(LassoError):
    """Answered to the client as a JSON-RPC error by the router itself."""

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        #: The raw JSON id of the request this error answers, when it could be read.
        self.id_raw: bytes | None = None


class ParseError(RequestRejected):
    pass


class InvalidRequest(RequestRejected):
    pass


class MethodNotAllowed(RequestRejected):
    pass


class InvalidParams(RequestRejected):
    pass


class InternalError(RequestRejected):
    pass


class NoProviderAvailable(RequestRejected):
    pass


class AllAttemptsFailed(RequestRejected):
    pass


class DeadlineExceeded(RequestRejected):
    pass


class BodyTooLarge(RequestRejected):
    pass


class RateLimited(RequestRejected):
    def __init__(
        self, message: str, *, data: Any = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, data=data)
        #: When the client may try again (the ``Retry-After`` header), if known.
        self.retry_after_s = retry_after_s


class Unauthorized(RequestRejected):
    pass


class Forbidden(RequestRejected):
    pass


def error_name(cls: type[BaseException]) -> str:
    """The snake_case name of an error class: ``AllAttemptsFailed`` -> ``all_attempts_failed``."""
    return "".join("_" + c.lower() if c.isupper() else c for c in cls.__name__).lstrip("_")
