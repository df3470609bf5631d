"""The dashboard's summary feed on a fake clock: counts of the interval, provider state, sampled
decisions; nothing subscribed to the bus while nobody follows."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
import orjson
from aiohttp.test_utils import make_mocked_request

from lasso_rpc.clock import FakeClock
from lasso_rpc.config import load_config_text
from lasso_rpc.config.dashboard import DashboardConfig
from lasso_rpc.dashboard.feed import SummaryFeed
from lasso_rpc.dashboard.page import DashboardPage
from lasso_rpc.dashboard.summary import StatsSummary
from lasso_rpc.observability.events import (
    Attempt,
    BreakerChanged,
    EventBus,
    RequestFinished,
    event_to_dict,
    is_provider_fault,
)
from lasso_rpc.observability.logs import event_level
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.router import Router
from lasso_rpc.routing.decision import Decision

CONFIG = """
name: T
slug: local
chains:
  ethereum:
    chain_id: 1
    providers:
      - {id: alpha, url: "http://127.0.0.1:1/k"}
      - {id: beta, url: "http://127.0.0.1:2/k"}
"""


def _router(clock: FakeClock, extra: str = "") -> Router:
    return Router(load_config_text([("t.yaml", CONFIG + extra)]), clock=clock)


def _feed(router: Router, **kw: Any) -> tuple[SummaryFeed, PrometheusMetrics]:
    """A feed and the metrics it reads; calls go to ``metrics.on_event`` as the bus does."""
    metrics = PrometheusMetrics(router)
    return SummaryFeed(router, metrics, **kw), metrics


def _finished(n: int, latency_ms: float, *attempts: Attempt, **kw: Any) -> RequestFinished:
    last_ok = [a.provider for a in attempts if a.outcome == "ok"]
    return RequestFinished(
        ts=1000.0 + n,
        request_id=f"r{n}",
        profile="local",
        chain="ethereum",
        method="eth_getBalance",
        strategy="fastest",
        transport="http",
        status=kw.pop("status", "ok"),
        error_class=None,
        latency_ms=latency_ms,
        attempts=attempts,
        provider=last_ok[-1] if last_ok else None,
        decision=Decision(order=("alpha", "beta"), strategy="fastest", reason="lowest latency"),
        **kw,
    )


def _ok(p: str, ms: float = 10.0, hedged: bool = False) -> Attempt:
    return Attempt(provider=p, outcome="ok", latency_ms=ms, hedged=hedged)


def test_a_tick_sums_up_the_interval_and_starts_the_next() -> None:
    clock = FakeClock()
    router = _router(clock)
    feed, metrics = _feed(router, node="test:1")
    for i in range(18):
        metrics.on_event(_finished(i, 10.0 + i, _ok("alpha")))
    metrics.on_event(
        _finished(
            100,
            300.0,
            Attempt(provider="alpha", outcome="timeout", latency_ms=200.0),
            _ok("beta", 90.0),
            failover=True,
        )
    )
    metrics.on_event(
        _finished(
            101,
            400.0,
            Attempt(provider="alpha", outcome="cancelled", latency_ms=30.0),
            _ok("beta", 25.0, hedged=True),
            hedged=True,
        )
    )
    router.resolve("ethereum").providers["beta"].breaker.force_open("test")
    clock.advance(500)
    s = feed.tick()
    assert isinstance(s, StatsSummary) and s.node == "test:1" and s.interval_s == 0.5
    [chain] = s.chains
    assert (chain.requests, chain.errors, chain.failovers, chain.hedged) == (20, 0, 1, 1)
    # Interpolated in the histogram's buckets: 15 calls in (10, 25] ms hold the median (the
    # 10th of 20, 9 of them past 10 ms: 10 + 15 * 9/15); 2 in (250, 500] the 19th (250 + 250/2).
    assert (chain.p50_ms, chain.p95_ms) == (19.0, 375.0) and chain.ready is False
    alpha, beta = s.providers
    assert (alpha.attempts, alpha.failures, alpha.answered, alpha.hedges) == (20, 1, 18, 0)
    assert (beta.attempts, beta.failures, beta.answered, beta.hedges) == (2, 0, 2, 1)
    assert beta.breaker == "open" and not beta.usable and "breaker open" in beta.health
    assert alpha.health == "no health poll answered yet"
    # Every failover and failed call, and the last call, oldest first, with the explanation.
    ids = [d.request_id for d in s.decisions]
    assert ids == ["r100", "r101"]
    fo = s.decisions[-2]
    assert fo.failover and fo.attempts == (("alpha", "timeout", 200.0), ("beta", "ok", 90.0))
    assert fo.explanation == "fastest: alpha (lowest latency) over beta"
    clock.advance(250)
    empty = feed.tick()
    assert empty.interval_s == 0.25 and empty.chains[0].requests == 0
    assert empty.chains[0].p50_ms is None and empty.decisions == ()
    assert empty.providers[0].attempts == 0


def test_provider_counts_match_their_definition_for_every_shape_of_request() -> None:
    """Attempts, faults, answered calls and hedges per provider, read from the metrics' tables
    (keyed by method and outcome, or by status), give what their definitions say."""
    rng = random.Random(7)
    outcomes = ("ok", "ok", "ok", "client_error", "timeout", "cancelled", "rate_limited")
    clock = FakeClock()
    feed, metrics = _feed(_router(clock), node="n")
    want = {p: [0, 0, 0, 0] for p in ("alpha", "beta")}
    for i in range(400):
        attempts = tuple(
            Attempt(
                provider=rng.choice(("alpha", "beta")),
                outcome=rng.choice(outcomes),
                latency_ms=1.0,
                hedged=rng.random() < 0.2,
            )
            for _ in range(rng.choice((0, 1, 1, 1, 2, 3)))
        )
        answered = [a.provider for a in attempts if a.outcome in ("ok", "client_error")]
        status = rng.choice(("ok", "client_error", "error"))
        provider = answered[-1] if answered and status != "error" else None
        hedged = any(a.hedged for a in attempts)
        ev = _finished(i, 1.0, *attempts, status=status, hedged=hedged)
        ev = msgspec.structs.replace(ev, provider=provider)
        metrics.on_event(ev)
        for a in attempts:
            n = want[a.provider]
            n[0] += 1
            n[1] += is_provider_fault(a.outcome)
            n[3] += a.hedged
        if provider is not None:
            want[provider][2] += 1  # a call answered with this provider's answer
    clock.advance(250)
    got = {
        p.provider: [p.attempts, p.failures, p.answered, p.hedges] for p in feed.tick().providers
    }
    assert got == want and want["alpha"][0] > 100


def test_cache_outcomes_come_from_the_cache_counters_of_cached_profiles_only() -> None:
    clock = FakeClock()
    router = _router(clock, "cache: {enabled: true}\n")
    feed, _ = _feed(router, node="n")
    stats = router.shaper.stats[("local", "ethereum")]
    stats.hits["finalized"] += 2
    stats.hits["realtime"] += 1
    stats.misses["unfinalized"] += 1
    stats.bypassed += 4
    clock.advance(250)
    assert feed.tick().chains[0].cache == {"HIT": 3, "MISS": 1, "BYPASS": 4}
    clock.advance(250)
    assert feed.tick().chains[0].cache == {"HIT": 0, "MISS": 0, "BYPASS": 0}
    plain, _ = _feed(_router(clock), node="n")
    assert plain.tick().chains[0].cache == {}


def test_the_summary_is_plain_json_and_logged_only_at_debug() -> None:
    clock = FakeClock()
    feed, metrics = _feed(_router(clock), node="n")
    metrics.on_event(_finished(1, 5.0, _ok("alpha")))
    clock.advance(250)
    s = feed.tick()
    d = orjson.loads(orjson.dumps(event_to_dict(s)))  # as /api/events sends it
    assert d["type"] == "stats.summary" and d["chains"][0]["requests"] == 1
    assert d["decisions"][0]["attempts"] == [["alpha", "ok", 10.0]]
    assert event_level(s) == 10  # DEBUG: four a second would drown an info log


async def test_the_feed_ticks_only_while_held() -> None:
    clock = FakeClock()
    router = _router(clock)
    feed, metrics = _feed(router, node="n", interval_ms=5)
    router.bus.subscribe(metrics.on_event)
    got: list[StatsSummary] = []
    router.bus.subscribe(lambda ev: got.append(ev) if isinstance(ev, StatsSummary) else None)
    router.bus.publish(_finished(0, 5.0, _ok("alpha")))
    assert not feed.active
    with feed.hold(), feed.hold():  # two pages share one ticker
        assert feed.active
        router.bus.publish(_finished(1, 5.0, _ok("alpha")))
        async with asyncio.timeout(5):
            while True:
                if got:
                    break
                await asyncio.sleep(0.005)
    assert got[0].chains[0].requests == 1  # the call published before the hold is not counted
    async with asyncio.timeout(5):
        while True:
            if not feed.active:
                break
            await asyncio.sleep(0.005)
    n = len(got)
    await asyncio.sleep(0.03)
    assert len(got) == n  # no ticks once nobody holds it
    await feed.aclose()


def _request(remote: str) -> Any:
    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (remote, 5555) if name == "peername" else default

    return make_mocked_request("GET", "/dashboard", transport=Transport())


def test_the_page_is_for_loopback_unless_enabled() -> None:
    closed = DashboardPage(DashboardConfig())
    assert closed.allowed(_request("127.0.0.1")) and closed.allowed(_request("::1"))
    assert not closed.allowed(_request("10.1.2.3"))
    assert DashboardPage(DashboardConfig(enabled=True)).allowed(_request("10.1.2.3"))


def test_bus_streams_of_some_kinds_get_only_those() -> None:
    bus = EventBus()
    call = _finished(1, 5.0, _ok("alpha"))
    opened = BreakerChanged(
        ts=1.0, chain="ethereum", provider="alpha", transport="http",
        from_state="closed", to_state="open", reason="x",
    )  # fmt: skip
    with (
        bus.stream(kinds={"breaker.changed"}) as breakers,
        bus.stream(kinds={"breaker.changed", "request.finished"}) as both,
        bus.stream() as everything,
    ):
        bus.publish(call)
        bus.publish(opened)
        assert breakers._queue.qsize() == 1 and breakers._queue.get_nowait()[1] is opened
        assert both._queue.qsize() == 2 and everything._queue.qsize() == 2
    assert bus._by_kind == {} and bus._unfiltered == [] and bus._streams == []
    bus.publish(call)  # nothing left to feed
