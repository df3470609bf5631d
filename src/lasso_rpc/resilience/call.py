"""The values one client call carries through the pipeline: its context and its outcome."""

from __future__ import annotations

import msgspec

from lasso_rpc.observability.events import Attempt
from lasso_rpc.resilience.attempts import failed_over
from lasso_rpc.routing.decision import Decision
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["CallContext", "CallOutcome"]


class CallContext(msgspec.Struct, frozen=True):
    """One call: its request id, the chain it is for and how to route it.

    ``bypass_cache``: the client asked for a fresh answer (``X-Lasso-Cache-Bypass: 1``).
    """

    request_id: str
    chain: ChainRuntime
    route: RouteRequest
    bypass_cache: bool = False


class CallOutcome(msgspec.Struct, frozen=True):
    """``payload`` is the upstream ``result`` (ok) or ``error`` object (client_error), raw JSON.

    A ``msgspec.Raw`` is a view into the upstream body, not a copy (a 1 MB result is not
    duplicated on its way through); ``bytes(payload)`` makes a copy of its own.
    """

    ok: bool
    payload: bytes | msgspec.Raw
    provider: str
    attempts: tuple[Attempt, ...]
    hedged: bool  # a hedge was sent (whichever attempt won)
    latency_ms: float
    decision: Decision
    #: ``HIT`` / ``MISS`` / ``BYPASS`` when the profile has a cache (``X-Lasso-Cache``).
    cache: str | None = None
    #: Answered by an identical call already in flight (in-flight dedup).
    coalesced: bool = False
    #: A hedge was due but the chain's hedge budget was empty.
    hedge_denied: bool = False

    @property
    def failover(self) -> bool:
        return failed_over(self.attempts)
