"""Client subscriptions ⇄ upstream feeds: one ``Feed`` per (profile, chain, pin, kind, filter).

``subscribe`` attaches a client's sink to the feed for its key (starting the feed for the first
client); ``unsubscribe`` detaches it and the last one out stops the feed, which releases its
upstream subscription (and the upstream socket when nothing else rides on it). Both are
synchronous, so a server can send the subscription id and attach the sink in one step, before any
notification can overtake the id.

What a confirmed client is owed: every block (and matching log) after the router's view of the
head at its confirmation (``head_view``), whether or not the feed's upstream subscription is live
yet (``subscribe`` says how).

Provider choice for a feed: providers with a ``ws_url`` that pass the chain's own filters
(cordon, breaker, method hints, lag); if none does, every provider with a ``ws_url`` (last
resort). Ranked by: pinned provider first, not in reconnect backoff, lowest HTTP latency EWMA,
priority, id. A pinned route (``/ws/rpc/provider/ID/...``) uses only that provider unless
``?failover=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lasso_rpc.clock import Clock
from lasso_rpc.errors import InvalidParams, NoProviderAvailable
from lasso_rpc.observability.events import Event
from lasso_rpc.resilience.pipeline import Pipeline
from lasso_rpc.routing.candidates import SkipReason, skip_reason
from lasso_rpc.subscriptions.backfill import PipelineBackfill
from lasso_rpc.subscriptions.feed import Feed, FeedInfo
from lasso_rpc.subscriptions.frames import FeedSpec
from lasso_rpc.subscriptions.options import SubscriptionOptions
from lasso_rpc.subscriptions.pool import UpstreamPool
from lasso_rpc.subscriptions.stream import WsSource
from lasso_rpc.subscriptions.upstream_ws import UpstreamWs
from lasso_rpc.upstream.chain import ChainRuntime
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["DeliveryTap", "FeedKey", "Resolve", "Share", "Sink", "SubscriptionManager"]

log = logging.getLogger("lasso_rpc.subscriptions")

Sink = Callable[[bytes], None]  # gets each notification's raw ``result``
#: ``(chain key, profile) -> ChainRuntime`` as the router resolves it now (follows reloads);
#: raises InvalidParams for an unknown chain or profile.
Resolve = Callable[[str, str | None], ChainRuntime]


@dataclass(frozen=True, slots=True)
class FeedKey:
    profile: str
    chain: str
    spec_key: str
    pin: str | None = None
    failover: bool = False

    @property
    def label(self) -> str:
        return self.spec_key if self.pin is None else f"{self.spec_key}@{self.pin}"


@dataclass(frozen=True, slots=True)
class Share:
    """One client subscription's hold on a feed."""

    key: FeedKey
    id: int


#: Skip reasons that do not keep a provider from serving a subscription: its HTTP request rate
#: (rate_limit_rps) is not spent by a WebSocket subscription.
_SUBSCRIBABLE = (None, SkipReason.OVER_RATE)

#: A test seam (``SubscriptionManager.tap``): sees every delivery to every client subscription
#: (its share, the feed, the notification's raw result) and returns False to drop it. The battle
#: tests use it to build a router that silently starves one client; None in production.
DeliveryTap = Callable[["Share", Feed, bytes], bool]


class _Entry:
    __slots__ = ("feed", "key", "owner", "sinks", "task")

    def __init__(self, owner: SubscriptionManager, key: FeedKey) -> None:
        self.owner = owner
        self.key = key
        self.sinks: dict[int, Sink] = {}
        self.feed: Feed
        self.task: asyncio.Task[None]

    def fanout(self, raw: bytes) -> None:
        tap = self.owner.tap
        for sid, sink in list(self.sinks.items()):  # a sink may leave (overflow) during the loop
            if tap is not None and not tap(Share(self.key, sid), self.feed, raw):
                continue
            try:
                sink(raw)
            except Exception:
                log.exception("subscription sink %r failed", sink)


class SubscriptionManager:
    """Owned by the server (``server/app.py``), which hands it the router's parts it uses:
    ``resolve`` (chains, after reloads too), ``pipeline`` (back-fill reads), ``publish`` (the
    event bus) and ``clock``."""

    def __init__(
        self,
        *,
        resolve: Resolve,
        pipeline: Pipeline,
        publish: Callable[[Event], None],
        clock: Clock,
        options: SubscriptionOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._resolve = resolve
        self._pipeline = pipeline
        self._publish = publish
        self._clock = clock
        self.options = options or SubscriptionOptions()
        self._rng = rng or random.Random()
        self._pool = UpstreamPool(options=self.options, clock=clock, rng=self._rng)
        self._entries: dict[FeedKey, _Entry] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._closed = False
        self.tap: DeliveryTap | None = None

    def configure(self, **changes: Any) -> SubscriptionOptions:
        """Replace some options (for feeds and connections created from now on)."""
        self.options = dataclasses.replace(self.options, **changes)
        self._pool.options = self.options
        return self.options

    # -- client side -------------------------------------------------------------------------

    def check(self, chain: ChainRuntime, pin: str | None = None, failover: bool = False) -> None:
        """Raise NoProviderAvailable when no provider could ever carry this subscription."""
        ws = [p for p in chain.providers.values() if p.config.ws_url]
        if pin is not None and not failover:
            ws = [p for p in ws if p.id == pin]
        if not ws:
            if pin is not None and not failover:
                raise NoProviderAvailable(
                    f"provider {pin!r} of chain {chain.name!r} has no WebSocket endpoint (ws_url)"
                )
            raise NoProviderAvailable(
                f"no provider of chain {chain.name!r} has a WebSocket endpoint (ws_url)"
            )

    def subscribe(
        self,
        chain: ChainRuntime,
        spec: FeedSpec,
        sink: Sink,
        *,
        pin: str | None = None,
        failover: bool = False,
        head: int | None = None,
    ) -> Share:
        """Attach ``sink``; it gets every block after the router's head now (``head``: one read
        before confirming, for when the router has no view yet; see ``read_head``)."""
        if self._closed:
            raise NoProviderAvailable("the router is shutting down")
        key = FeedKey(chain.profile, chain.name, spec.key, pin, failover)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._start(key, chain, spec)
        # The start point. The server confirms and attaches in one step, so the router's view of
        # the head now is no later than the chain was at the confirmation: a new feed starts
        # after it and, once its upstream subscription is live, back-fills from there (as after
        # a failover); what the provider sends at or below it is owed to no one and dropped (a
        # lagging provider costs time, not blocks). A client joining a feed that has delivered
        # block L needs nothing: L existed before this confirmation and the feed delivers every
        # block after L. Neither does one joining a feed still on its way to the upstream: that
        # feed starts after an earlier view (``start_after`` keeps the first).
        start = self.head_view(chain)
        if start is None:
            start = head
        if start is not None:
            entry.feed.start_after(start)
        share = Share(key, next(self._ids))
        entry.sinks[share.id] = sink
        return share

    def head_view(self, chain: ChainRuntime) -> int | None:
        """The router's view of ``chain``'s head: the highest head a provider reported, by its
        poll or on a live subscription (the trust ``consensus_head`` gives them); None before
        any did."""
        view = chain.consensus_head
        for p in chain.providers.values():
            if p.head is not None and (view is None or p.head > view):
                view = p.head
        return view

    async def read_head(self, chain: ChainRuntime) -> int | None:
        """The head over HTTP, for a subscription about to be confirmed while the router has no
        view yet (before its first head poll answered); None when no provider answers within
        ``subscribe_timeout_s`` (the feed then starts from its first block)."""
        reader = PipelineBackfill(self._pipeline, lambda: chain)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.options.subscribe_timeout_s):
                return await reader.head(None)
        return None

    def unsubscribe(self, share: Share) -> bool:
        entry = self._entries.get(share.key)
        if entry is None or entry.sinks.pop(share.id, None) is None:
            return False
        if not entry.sinks:
            del self._entries[share.key]
            entry.task.cancel()
            self._stopping.add(entry.task)
            entry.task.add_done_callback(self._stopping.discard)
        return True

    # -- feeds -------------------------------------------------------------------------------

    def _start(self, key: FeedKey, chain: ChainRuntime, spec: FeedSpec) -> _Entry:
        def resolve() -> ChainRuntime:
            return self._resolve(key.chain, key.profile)

        entry = _Entry(self, key)
        entry.feed = Feed(
            label=key.label,
            chain=key.chain,
            spec=spec,
            source=WsSource(self._pool, resolve),
            backfill=PipelineBackfill(
                self._pipeline, resolve, concurrency=self.options.backfill_concurrency
            ),
            candidates=lambda: self.candidates(key),
            deliver=entry.fanout,
            publish=self._publish,
            on_head=lambda pid, n: self._on_head(key, pid, n),
            options=self.options,
            block_time_ms=chain.config.block_time_ms,
            clock=self._clock,
            rng=random.Random(self._rng.random()),
        )
        entry.task = asyncio.create_task(entry.feed.run(), name=f"feed:{key.chain}:{key.label}")
        return entry

    def candidates(self, key: FeedKey) -> list[str]:
        """Provider ids for ``key``'s feed, best first (module docstring)."""
        try:
            chain = self._resolve(key.chain, key.profile)
        except InvalidParams:
            return []
        ws = [p for p in chain.providers.values() if p.config.ws_url]
        if key.pin is not None and not key.failover:
            return [p.id for p in ws if p.id == key.pin]
        now = self._clock.now_ms()
        max_lag = chain.routing.max_lag_blocks
        eligible = [
            p
            for p in ws
            if p.id == key.pin
            or skip_reason(p, "eth_subscribe", head_sensitive=True, max_lag=max_lag, now_ms=now)
            in _SUBSCRIBABLE
        ]

        def rank(p: ProviderRuntime) -> tuple[bool, bool, float, int, str]:
            conn = self._connection(chain, p)
            latency = p.stats.latency_ms("eth_getBlockByNumber", "http")
            return (
                p.id != key.pin,
                conn is not None and conn.in_backoff(),
                math.inf if latency is None else latency,
                p.priority,
                p.id,
            )

        return [p.id for p in sorted(eligible or ws, key=rank)]

    def _connection(self, chain: ChainRuntime, p: ProviderRuntime) -> UpstreamWs | None:
        url = p.config.ws_url
        return None if url is None else self._pool.peek(chain.profile, chain.name, p.id, url)

    def _on_head(self, key: FeedKey, pid: str, number: int) -> None:
        """Heads seen on a WebSocket also move the provider's head (cheaper than a poll)."""
        try:
            p = self._resolve(key.chain, key.profile).providers.get(pid)
        except InvalidParams:
            return
        if p is not None and (p.head is None or number > p.head):
            p.head = number

    def feeds(self) -> list[FeedInfo]:
        return [e.feed.info(len(e.sinks)) for e in self._entries.values()]

    def feed(self, key: FeedKey) -> Feed | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.feed

    @property
    def upstream(self) -> list[UpstreamWs]:
        return self._pool.connections()

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        self._closed = True
        tasks = [e.task for e in self._entries.values()] + list(self._stopping)
        self._entries.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self._pool.aclose()

    def __repr__(self) -> str:
        clients = sum(len(e.sinks) for e in self._entries.values())
        return f"SubscriptionManager(feeds={len(self._entries)}, clients={clients}, {self._pool!r})"
