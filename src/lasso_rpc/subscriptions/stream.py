"""A feed's subscription on one provider's shared WebSocket (the real ``UpstreamSource``)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from lasso_rpc.errors import ConnectError, ConnectionLost
from lasso_rpc.subscriptions.frames import NEW_HEADS_PARAMS, FeedSpec, Head, Item, LogEntry
from lasso_rpc.subscriptions.pool import UpstreamPool
from lasso_rpc.subscriptions.upstream_ws import Lease
from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["WsSource", "WsStream"]

log = logging.getLogger("lasso_rpc.subscriptions")


class WsStream:
    """Heads (and logs) of one provider in arrival order, through a bounded backlog.

    A logs stream also holds the connection's ``newHeads`` (shared with any heads feed on it):
    its heads are the watermark that says which blocks the logs stream has covered, and the
    liveness signal for staleness. A backlog past ``backlog`` items counts as a lost upstream:
    the feed fails over and back-fills instead of buffering without bound.
    """

    def __init__(self, provider: str, *, backlog: int) -> None:
        self._provider = provider
        self._backlog = backlog
        self._items: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._lost: str | None = None
        self._leases: list[Lease] = []

    @property
    def provider(self) -> str:
        return self._provider

    def attach(self, leases: list[Lease]) -> None:
        self._leases.extend(leases)

    def on_head(self, raw: bytes) -> None:
        try:
            self._push(Head.parse(raw))
        except ValueError as exc:
            log.warning("%s: newHeads frame dropped: %s", self._provider, exc)

    def on_log(self, raw: bytes) -> None:
        try:
            self._push(LogEntry.parse(raw))
        except ValueError as exc:
            log.warning("%s: logs frame dropped: %s", self._provider, exc)

    def on_lost(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._wake.set()

    def _push(self, item: Item) -> None:
        if self._lost is not None:
            return
        if len(self._items) >= self._backlog:
            self._items.clear()
            self.on_lost(f"backlog of {self._backlog} items overflowed")
            return
        self._items.append(item)
        self._wake.set()

    async def next(self) -> Item:
        items = self._items
        while not items:
            if self._lost is not None:
                raise ConnectionLost(f"{self._provider}: {self._lost}")
            self._wake.clear()
            await self._wake.wait()
        return items.popleft()

    def close(self) -> None:
        leases, self._leases = self._leases, []
        for lease in leases:
            lease.release()
        self.on_lost("closed")

    def __repr__(self) -> str:
        return f"WsStream({self._provider} backlog={len(self._items)} lost={self._lost!r})"


class WsSource:
    """Opens ``WsStream``s on the providers of the chain ``resolve()`` returns (follows reloads)."""

    def __init__(self, pool: UpstreamPool, resolve: Callable[[], ChainRuntime]) -> None:
        self._pool = pool
        self._resolve = resolve

    async def open(self, provider: str, spec: FeedSpec) -> WsStream:
        chain = self._resolve()
        p = chain.providers.get(provider)
        if p is None or not p.config.ws_url:
            raise ConnectError(f"{provider}: no WebSocket endpoint configured")
        conn = self._pool.connection(
            chain.profile, chain.name, provider, p.config.ws_url, p.config.headers
        )
        stream = WsStream(provider, backlog=self._pool.options.upstream_backlog)
        leases: list[Lease] = []
        try:
            # Heads (the watermark of a logs stream) first. A block's logs may still come before
            # or after its head; the feed counts a block as covered only once the next head came.
            leases.append(await conn.subscribe(NEW_HEADS_PARAMS, stream.on_head, stream.on_lost))
            if spec.kind == "logs":
                leases.append(await conn.subscribe(spec.params, stream.on_log, stream.on_lost))
        except BaseException:
            for lease in leases:
                lease.release()
            raise
        stream.attach(leases)
        return stream
