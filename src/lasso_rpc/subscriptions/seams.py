"""The seams a ``Feed`` talks through; unit tests plug fakes in here, the manager the real ones.

=================  ==========================================================================
seam               real implementation
=================  ==========================================================================
UpstreamSource     ``stream.WsSource``: a subscription on a provider's shared WebSocket
UpstreamStream     ``stream.WsStream``: its heads (and logs) in arrival order
Backfill           ``backfill.PipelineBackfill``: HTTP reads through the router's pipeline
=================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lasso_rpc.subscriptions.frames import FeedSpec, Head, Item, LogEntry

__all__ = ["Backfill", "UpstreamSource", "UpstreamStream"]


class UpstreamStream(Protocol):
    """One live upstream subscription (a logs stream also carries ``Head`` watermarks)."""

    @property
    def provider(self) -> str: ...

    async def next(self) -> Item:
        """The next item in arrival order; raises ``ConnectionLost`` once the upstream is gone
        (after every item that arrived before)."""
        ...

    def close(self) -> None: ...


class UpstreamSource(Protocol):
    async def open(self, provider: str, spec: FeedSpec) -> UpstreamStream:
        """Subscribe on ``provider``; raises a ``TransportError`` or ``UpstreamFault``."""
        ...


class Backfill(Protocol):
    """Reads over HTTP, preferring ``provider``. Never raises: None means "could not"."""

    async def head(self, provider: str) -> int | None: ...

    async def blocks(self, lo: int, hi: int, provider: str) -> Sequence[Head | None]:
        """Blocks ``lo..hi`` in order (as headers); None for each one that could not be read."""
        ...

    async def logs(
        self, filter_json: bytes, lo: int, hi: int, provider: str
    ) -> list[LogEntry] | None: ...
