"""What a caller asks of routing for one call, besides the method: the routing-side request."""

from __future__ import annotations

import msgspec

__all__ = ["RouteRequest"]


class RouteRequest(msgspec.Struct, frozen=True):
    """The route of one call: shared by every call of a batch (a frozen msgspec Struct).

    ``pin``: a provider id from ``/rpc/provider/ID/...``; with ``failover`` the others follow it.
    ``transport``: whose latency statistics rank the candidates (``http`` or ``ws``).
    ``avoid``: providers not to send this call to (e.g. a log range over their limit).
    """

    strategy: str
    pin: str | None = None
    failover: bool = False
    transport: str = "http"
    avoid: frozenset[str] = frozenset()
