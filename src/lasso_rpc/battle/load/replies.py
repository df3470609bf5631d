"""What the client learns from one answer of the router: ``Reply`` and how it is classified.

``classify_reply`` reads the body (sent with ``?include_meta=body``) with msgspec, never a full
JSON parse; ``classify_exception`` names a request that got no answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from lasso_rpc.battle.records import Outcome
from lasso_rpc.errors import TransportError, UpstreamTimeout, error_name
from lasso_rpc.observability.events import is_provider_fault
from lasso_rpc.server.errors import ERROR_TABLE

__all__ = [
    "CANCELLED",
    "ROUTER_ERRORS",
    "Reply",
    "classify_exception",
    "classify_reply",
    "meta_url",
]


#: JSON-RPC codes the router answers with itself → short error class (from the server's table).
ROUTER_ERRORS: Mapping[int, str] = {code: error_name(cls) for cls, (code, _) in ERROR_TABLE.items()}


@dataclass(frozen=True, slots=True)
class Reply:
    """What a client learns from one answer."""

    outcome: Outcome
    error_class: str | None
    provider: str | None = None
    attempts: int = 0
    hedged: bool = False
    failover: bool = False


class _Meta(msgspec.Struct):
    provider: str | None = None
    attempts: int = 0
    hedged: bool = False
    failover: bool = False


class _Error(msgspec.Struct):
    code: int
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Body(msgspec.Struct):
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: _Error | None = None
    lasso_meta: _Meta | None = None


class _FailedAttempt(msgspec.Struct):
    error_class: str = ""


class _ErrorData(msgspec.Struct):
    attempts: list[_FailedAttempt] = []


_body_decoder = msgspec.json.Decoder(_Body)
_data_decoder = msgspec.json.Decoder(_ErrorData)
_MALFORMED = Reply("error", "malformed_response")
_TIMEOUT = Reply("error", "timeout")
CANCELLED = Reply("error", "cancelled")


def classify_reply(status: int, body: bytes) -> Reply:
    """Outcome of one HTTP answer from the router (sent with ``?include_meta=body``).

    A result is ``ok``. An error that carries ``lasso_meta`` came from a provider and was passed
    through (``client_error``, ``upstream:<code>``, e.g. ``upstream:3`` for a revert). Without
    meta, a code from the router's own table (-32700, -32600..-32603, -32001..-32005) is the
    router's ``error`` (``all_attempts_failed``, ...; attempts counted from ``data.attempts``,
    a failover when more than one was made and one failed); any other code came from upstream.
    """
    try:
        msg = _body_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _MALFORMED if 200 <= status < 300 else Reply("error", f"http:{status}")
    meta = msg.lasso_meta
    err = msg.error
    if err is None:
        if msg.result is msgspec.UNSET:
            return _MALFORMED
        if meta is None:
            return Reply("ok", None)
        return Reply("ok", None, meta.provider, meta.attempts, meta.hedged, meta.failover)
    if meta is not None:
        upstream = f"upstream:{err.code}"
        return Reply(
            "client_error", upstream, meta.provider, meta.attempts, meta.hedged, meta.failover
        )
    name = ROUTER_ERRORS.get(err.code)
    if name is None:
        return Reply("client_error", f"upstream:{err.code}")
    tried: list[_FailedAttempt] = []
    if err.data is not msgspec.UNSET:
        try:
            tried = _data_decoder.decode(err.data).attempts
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
    failover = len(tried) > 1 and any(is_provider_fault(a.error_class) for a in tried)
    return Reply("error", name, None, len(tried), False, failover)


def classify_exception(exc: BaseException) -> Reply:
    if isinstance(exc, UpstreamTimeout):
        return _TIMEOUT
    prefix = "transport" if isinstance(exc, TransportError) else "exception"
    return Reply("error", f"{prefix}:{type(exc).__name__}")


def meta_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path`` with ``include_meta=body`` set in the query (kept otherwise)."""
    parts = urlsplit(base_url.rstrip("/") + path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if k != "include_meta"] + [("include_meta", "body")]
    return urlunsplit(parts._replace(query=urlencode(query)))
