"""The summary feed: ``stats.summary`` on the bus every ``interval_ms`` while someone follows it.

Nothing runs while nobody holds the feed, and nothing runs per request even while somebody does:
the counts come from the tables ``PrometheusMetrics`` keeps anyway (``request_totals``: the feed
takes the difference between two ticks) and from the shaper's cache counters; the routing
decisions shown are the last call of each interval plus every failover and failed call
(``PrometheusMetrics.last_request`` and ``notable``). Percentiles are those of the interval,
interpolated within the request-latency histogram's buckets as Prometheus' ``histogram_quantile``
does. Everything (percentiles, decision texts, provider state) is done once per tick, whatever
the number of pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from lasso_rpc.dashboard.summary import (
    ChainDigest,
    DecisionDigest,
    ProviderDigest,
    StatsSummary,
    SubscriptionDigest,
)
from lasso_rpc.observability.events import RequestFinished
from lasso_rpc.observability.metrics import CHAIN_COUNTS, PrometheusMetrics
from lasso_rpc.observability.operator_metrics import BOUNDS
from lasso_rpc.upstream.readiness import chain_readiness

if TYPE_CHECKING:
    from lasso_rpc.router import Router

__all__ = ["SummaryFeed", "bucket_percentile"]

log = logging.getLogger("lasso_rpc.dashboard")

_NO_CHAIN = [0.0] * (CHAIN_COUNTS + len(BOUNDS))
_NO_PROVIDER = [0, 0, 0, 0]


def bucket_percentile(counts: list[float], q: float) -> float | None:
    """The ``q`` quantile in ms of latencies counted per bucket of ``BOUNDS`` (seconds): linear
    within the bucket it falls in; in the last (+Inf) bucket, the highest finite bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    below = 0.0
    for i, n in enumerate(counts):
        if n > 0 and below + n >= rank:
            hi = BOUNDS[i]
            lo = BOUNDS[i - 1] if i else 0.0
            if math.isinf(hi):
                return round(lo * 1000.0, 3)
            return round((lo + (hi - lo) * max(rank - below, 0.0) / n) * 1000.0, 3)
        below += n
    return None


class SummaryFeed:
    """Owned by the server: ``hold()`` while following, ``aclose()`` on shutdown."""

    def __init__(
        self,
        router: Router,
        tally: PrometheusMetrics,
        *,
        interval_ms: int = 250,
        subscriptions: Callable[[], Iterable[Any]] | None = None,
        node: str | None = None,
    ) -> None:
        self._router = router
        self._tally = tally
        self.interval_ms = interval_ms
        self._subscriptions = subscriptions
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        self._holds = 0
        self._task: asyncio.Task[None] | None = None
        self._following = False
        self._reset()

    def _reset(self) -> None:
        """Start an interval: the totals, cache counts and decisions seen so far are the base."""
        tally = self._tally
        self._base = tally.request_totals()
        self._base_cache = self._cache_totals()
        self._notable_base = tally.notable_seen
        self._last_shown = tally.last_request
        self._last_ms = self._router.clock.now_ms()

    # -- following --------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._following

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep summaries coming while inside (several holders share one ticker)."""
        self._holds += 1
        if not self._following:
            self._reset()
            self._following = True
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
            self._following = False

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- once per tick ----------------------------------------------------------------------

    def tick(self) -> StatsSummary:
        """The summary of the interval since the last tick; starts the next interval."""
        clock = self._router.clock
        now = clock.now_ms()
        interval_s = max(1e-3, (now - self._last_ms) / 1000.0)
        base, base_cache = self._base, self._base_cache
        decisions = self._new_decisions()
        self._reset()
        totals, cache = self._base, self._base_cache
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
            key = (rt.profile, rt.name)
            c = _delta(totals.chains, base.chains, key, _NO_CHAIN)
            latency = c[CHAIN_COUNTS:]
            chains.append(
                ChainDigest(
                    profile=rt.profile,
                    chain=rt.name,
                    head=rt.consensus_head,
                    ready=ready.ready,
                    requests=int(c[0]),
                    errors=int(c[1]),
                    failovers=int(c[2]),
                    hedged=int(c[3]),
                    p50_ms=bucket_percentile(latency, 0.5),
                    p95_ms=bucket_percentile(latency, 0.95),
                    cache=_cache_delta(cache.get(key), base_cache.get(key)),
                )
            )
            for p, health in zip(rt.providers.values(), ready.providers, strict=True):
                n = _delta(totals.providers, base.providers, (*key, p.id), _NO_PROVIDER)
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
        return StatsSummary(
            ts=clock.wall_s(),
            node=self.node,
            interval_s=round(interval_s, 4),
            chains=tuple(chains),
            providers=tuple(providers),
            decisions=tuple(_digest(ev) for ev in decisions),
            subscriptions=self._subscription_digests(),
        )

    def _new_decisions(self) -> list[RequestFinished]:
        """The failovers and failed calls of the interval (the newest ``NOTABLE_KEPT``) and its
        last call, oldest first."""
        tally = self._tally
        fresh = min(tally.notable_seen - self._notable_base, len(tally.notable))
        picked = list(tally.notable)[len(tally.notable) - fresh :] if fresh > 0 else []
        last = tally.last_request
        if last is not None and last is not self._last_shown and all(e is not last for e in picked):
            picked.append(last)
        return sorted(picked, key=lambda ev: ev.ts)

    def _cache_totals(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(profile, chain) -> (hits, misses, bypassed) so far, for profiles with a cache."""
        shaper = getattr(self._router, "shaper", None)
        if shaper is None:
            return {}
        return {
            key: (sum(st.hits.values()), sum(st.misses.values()), st.bypassed)
            for key, st in list(shaper.stats.items())
            if key[0] in shaper.stores
        }

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


def _delta(
    now: dict[Any, list[Any]], then: dict[Any, list[Any]], key: Any, zero: list[Any]
) -> list[Any]:
    n = now.get(key)
    if n is None:
        return zero
    before = then.get(key)
    return n if before is None else [x - y for x, y in zip(n, before, strict=True)]


def _cache_delta(
    now: tuple[int, int, int] | None, then: tuple[int, int, int] | None
) -> dict[str, int]:
    """Calls by cache outcome in the interval: {} for a chain without a cache."""
    if now is None:
        return {}
    before = then or (0, 0, 0)
    hit, miss, bypass = (a - b for a, b in zip(now, before, strict=True))
    return {"HIT": hit, "MISS": miss, "BYPASS": bypass}


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
