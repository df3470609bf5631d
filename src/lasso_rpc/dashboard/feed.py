"""The summary feed: ``stats.summary`` on the bus every ``interval_ms`` while someone follows it.

Nothing runs while nobody holds the feed. The first ``hold()`` (an ``/api/events`` stream asking
for ``stats.summary``) subscribes a handler to the bus and starts the ticker; when the last hold
is released the ticker unsubscribes and ends at its next tick. Per request the handler does a
few dict and list operations (counts per chain and provider, the latency kept for percentiles,
a reference to the event in a short ring); everything else (percentiles, decision texts,
provider state, other counters' rates) is done once per tick, whatever the number of pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from lasso_rpc.dashboard.summary import (
    ChainDigest,
    DecisionDigest,
    ProviderDigest,
    StatsSummary,
    SubscriptionDigest,
)
from lasso_rpc.observability.events import ANSWERED_OUTCOMES, Event, RequestFinished
from lasso_rpc.upstream.readiness import chain_readiness

if TYPE_CHECKING:
    from lasso_rpc.router import Router

__all__ = ["SummaryFeed"]

log = logging.getLogger("lasso_rpc.dashboard")

_LATENCIES_PER_TICK = 4096  # per chain: enough for the percentiles of a busy 250 ms
_RECENT = 6  # sampled decisions per tick
_NOTABLE = 24  # failovers and errors kept per tick


def _percentile(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]  # nearest rank


class _ChainCounts:
    """One chain's counts of the interval; ``providers``: id -> [attempts, faults, answered,
    hedges]."""

    __slots__ = ("cache", "errors", "failovers", "hedged", "latencies", "providers", "requests")

    def __init__(self) -> None:
        self.requests = self.errors = self.failovers = self.hedged = 0
        self.latencies: list[float] = []
        self.cache: dict[str, int] = {}
        self.providers: dict[str, list[int]] = {}


class SummaryFeed:
    """Owned by the server: ``hold()`` while following, ``aclose()`` on shutdown."""

    def __init__(
        self,
        router: Router,
        *,
        interval_ms: int = 250,
        subscriptions: Callable[[], Iterable[Any]] | None = None,
        node: str | None = None,
    ) -> None:
        self._router = router
        self.interval_ms = interval_ms
        self._subscriptions = subscriptions
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        self._holds = 0
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._reset()
        self._last_ms = router.clock.now_ms()

    def _reset(self) -> None:
        #: profile -> chain -> counts of the interval
        self._chains: dict[str, dict[str, _ChainCounts]] = {}
        self._recent: deque[RequestFinished] = deque(maxlen=_RECENT)
        self._notable: deque[RequestFinished] = deque(maxlen=_NOTABLE)

    # -- following --------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._unsubscribe is not None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep summaries coming while inside (several holders share one ticker)."""
        self._holds += 1
        if self._unsubscribe is None:
            self._reset()
            self._last_ms = self._router.clock.now_ms()
            self._unsubscribe = self._router.bus.subscribe(self.on_event)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-summary")
        try:
            yield
        finally:
            self._holds -= 1

    async def _run(self) -> None:
        try:
            while self._holds > 0:
                await asyncio.sleep(self.interval_ms / 1000.0)
                if self._holds > 0:
                    try:
                        summary = self.tick()
                    except Exception:  # a bug here must not end the feed for every page
                        log.exception("dashboard summary failed")
                        continue
                    self._router.bus.publish(summary)
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the hot part: once per request -----------------------------------------------------

    def on_event(self, ev: Event) -> None:
        if type(ev) is not RequestFinished and not isinstance(ev, RequestFinished):
            return
        chains = self._chains.get(ev.profile)
        if chains is None:
            chains = self._chains[ev.profile] = {}
        c = chains.get(ev.chain)
        if c is None:
            c = chains[ev.chain] = _ChainCounts()
        c.requests += 1
        if ev.failover:
            c.failovers += 1
            self._notable.append(ev)
        elif ev.status == "error":
            self._notable.append(ev)
        if ev.status == "error":
            c.errors += 1
        if ev.hedged:
            c.hedged += 1
        cache = getattr(ev, "cache", None)  # a cache outcome, once requests carry one
        if cache is not None:
            c.cache[cache] = c.cache.get(cache, 0) + 1
        latencies = c.latencies
        if len(latencies) < _LATENCIES_PER_TICK:
            latencies.append(ev.latency_ms)
        providers = c.providers
        answered_by = ev.provider
        for a in ev.attempts:
            n = providers.get(a.provider)
            if n is None:
                n = providers[a.provider] = [0, 0, 0, 0]
            n[0] += 1
            outcome = a.outcome
            if outcome == "ok":
                if a.provider == answered_by:
                    n[2] += 1
            elif outcome not in ANSWERED_OUTCOMES:  # a provider fault
                n[1] += 1
            elif outcome == "client_error" and a.provider == answered_by:
                n[2] += 1
            if a.hedged:
                n[3] += 1
        self._recent.append(ev)

    # -- once per tick ----------------------------------------------------------------------

    def tick(self) -> StatsSummary:
        """The summary of the interval since the last tick; starts the next interval."""
        clock = self._router.clock
        now = clock.now_ms()
        interval_s = max(1e-3, (now - self._last_ms) / 1000.0)
        self._last_ms = now
        counts = self._chains
        recent, notable = self._recent, self._notable
        self._reset()
        chains: list[ChainDigest] = []
        providers: list[ProviderDigest] = []
        for rt in self._router.chains():
            ready = chain_readiness(
                rt.profile,
                rt.name,
                rt.providers.values(),
                poll_ms=rt.routing.head_poll_ms,
                now_ms=now,
            )
            c = counts.get(rt.profile, {}).get(rt.name) or _ChainCounts()
            lat = sorted(c.latencies)
            chains.append(
                ChainDigest(
                    profile=rt.profile,
                    chain=rt.name,
                    head=rt.consensus_head,
                    ready=ready.ready,
                    requests=c.requests,
                    errors=c.errors,
                    failovers=c.failovers,
                    hedged=c.hedged,
                    p50_ms=_percentile(lat, 0.5),
                    p95_ms=_percentile(lat, 0.95),
                    cache=c.cache,
                )
            )
            for p, health in zip(rt.providers.values(), ready.providers, strict=True):
                n = c.providers.get(p.id) or [0, 0, 0, 0]
                providers.append(
                    ProviderDigest(
                        profile=rt.profile,
                        chain=rt.name,
                        provider=p.id,
                        breaker=str(p.breaker.state),
                        cordoned=p.cordoned,
                        usable=health.usable,
                        health=health.reason,
                        head=p.head,
                        lag=p.lag,
                        in_flight=p.in_flight,
                        attempts=n[0],
                        failures=n[1],
                        answered=n[2],
                        hedges=n[3],
                    )
                )
        picked = {id(ev): ev for ev in (*notable, *recent)}
        decisions = sorted(picked.values(), key=lambda ev: ev.ts)
        return StatsSummary(
            ts=clock.wall_s(),
            node=self.node,
            interval_s=round(interval_s, 4),
            chains=tuple(chains),
            providers=tuple(providers),
            decisions=tuple(_digest(ev) for ev in decisions),
            subscriptions=self._subscription_digests(),
        )

    def _subscription_digests(self) -> tuple[SubscriptionDigest, ...]:
        if self._subscriptions is None:
            return ()
        return tuple(
            SubscriptionDigest(
                key=f.key,
                chain=f.chain,
                provider=f.provider,
                state=f.state,
                clients=f.clients,
                last_number=f.last_number,
                delivered=f.delivered,
                backfilled=f.backfilled,
                gaps=f.gaps,
                reorgs=f.reorgs,
                failovers=f.failovers,
            )
            for f in self._subscriptions()
        )

    def __repr__(self) -> str:
        return (
            f"SummaryFeed(node={self.node} every={self.interval_ms}ms holds={self._holds}"
            f" active={self.active})"
        )


def _digest(ev: RequestFinished) -> DecisionDigest:
    decision = ev.decision
    return DecisionDigest(
        ts=ev.ts,
        request_id=ev.request_id,
        profile=ev.profile,
        chain=ev.chain,
        method=ev.method,
        strategy=ev.strategy,
        provider=ev.provider,
        status=ev.status,
        latency_ms=round(ev.latency_ms, 3),
        failover=ev.failover,
        hedged=ev.hedged,
        attempts=tuple((a.provider, a.outcome, round(a.latency_ms, 3)) for a in ev.attempts),
        explanation=decision.explain() if decision is not None else None,
    )
