"""Issue 11 through the pipeline with fake transports (no sockets, real time in ms): ejection of
a hung provider, the hedge budget, the hedge delay, rate caps, panic mode re-decided."""

from __future__ import annotations

import asyncio

import pytest

from lasso_rpc.errors import ConnectError, RateLimited
from lasso_rpc.jsonrpc.codec import Call
from lasso_rpc.observability.events import Event, ProviderEjection
from lasso_rpc.resilience.budget import TokenBucket
from lasso_rpc.resilience.call import CallContext, CallOutcome
from lasso_rpc.resilience.classify import ErrorClass
from lasso_rpc.routing.request import RouteRequest
from tests.integration.test_pipeline_paths import OK, _call, _fake, _router

pytestmark = pytest.mark.asyncio

HANG = (5.0, OK[1])  # answers after 5 s: far beyond any hedge


async def test_a_hung_provider_is_ejected_after_five_lost_races_and_gets_nothing_more() -> None:
    router = _router({"a": [HANG], "b": [OK], "c": [OK]}, "{hedge: {after: 10}}")
    seen: list[Event] = []
    router.bus.subscribe(seen.append)
    for _ in range(5):
        out, _ = await _call(router)
        assert isinstance(out, CallOutcome) and out.provider == "b" and out.hedged
        assert [a.outcome for a in out.attempts] == ["cancelled", "ok"]
    a = router.chains()[0].providers["a"]
    assert a.ejection.ejected
    (ev,) = [e for e in seen if isinstance(e, ProviderEjection)]
    assert ev.provider == "a" and ev.ejected and ev.duration_ms == pytest.approx(5000, abs=50)
    assert ev.reason.startswith("5 slow attempts in a row (last: cancelled")
    sent = _fake(router, "a").sent
    for _ in range(5):
        out, _ = await _call(router)
        assert isinstance(out, CallOutcome) and out.provider == "b" and not out.hedged
        assert out.decision.skipped == (("a", "ejected (outlier)"),)
    assert _fake(router, "a").sent == sent == 5


async def test_an_empty_hedge_budget_waits_for_the_first_answer_and_says_so() -> None:
    slow = (0.2, OK[1])  # far beyond the hedge delay, even on a busy machine
    routing = "{hedge: {after: 10, budget_percent: 0, min_per_second: 0}}"
    router = _router({"a": [slow], "b": [OK]}, routing)
    out, events = await _call(router)
    assert isinstance(out, CallOutcome) and out.provider == "a" and not out.hedged
    assert out.hedge_denied and events[0].hedge_denied and len(out.attempts) == 1
    assert _fake(router, "b").sent == 0
    assert router.chains()[0].hedge_budget.exhausted == 1


async def test_a_denied_hedge_goes_out_once_the_late_provider_is_ejected() -> None:
    """A hang makes every call in flight to it late at once, more than the budget holds: once
    the provider is ejected (other calls lost their races), hedging away from it is a
    failover and needs no token, so the call does not wait for its attempt's timeout."""
    routing = "{hedge: {after: 10, budget_percent: 0, min_per_second: 0}}"
    router = _router({"a": [HANG], "b": [OK]}, routing)
    a = router.chains()[0].providers["a"]
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, a.ejection.eject_for, "five lost races elsewhere")
    t0 = loop.time()
    out, events = await _call(router)
    assert isinstance(out, CallOutcome) and out.provider == "b"
    assert out.hedged and out.hedge_denied and events[0].hedge_denied
    assert [a.outcome for a in out.attempts] == ["cancelled", "ok"]
    assert loop.time() - t0 < 1.0  # asked again at 10, 20, 40, 80 ms after the first: hedged
    assert router.chains()[0].hedge_budget.exhausted == 1  # one call, counted once


async def test_a_provider_gone_silent_is_hedged_away_from_without_a_token() -> None:
    """Two calls outstanding at a hung provider and no answer since: the hedges are failovers
    and need no token, so the hang is found (lost races) even with an empty budget."""
    routing = "{hedge: {after: 10, budget_percent: 0, min_per_second: 0}}"
    router = _router({"a": [HANG], "b": [OK]}, routing)
    outs = await asyncio.gather(_call(router), _call(router))
    for out, _ in outs:
        assert isinstance(out, CallOutcome) and out.provider == "b" and out.hedged
        assert out.latency_ms < 500.0
    assert router.chains()[0].hedge_budget.exhausted == 0


async def test_late_calls_at_a_provider_that_still_answers_need_a_token() -> None:
    """Two slow calls outstanding, but a third answered since they were sent: not silent."""
    routing = "{hedge: {after: 100, budget_percent: 0, min_per_second: 0}}"
    slow = (0.4, OK[1])
    router = _router({"a": [slow, slow, OK], "b": [OK]}, routing)
    first = asyncio.ensure_future(_call(router))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(_call(router))
    await asyncio.sleep(0.02)
    third, _ = await _call(router)  # answered at once, while the first two wait
    assert isinstance(third, CallOutcome) and third.provider == "a"
    for out, _ in (await first, await second):
        assert isinstance(out, CallOutcome) and out.provider == "a"
        assert out.hedge_denied and not out.hedged
    assert _fake(router, "b").sent == 0


async def test_the_budget_allows_its_reserve_then_refuses() -> None:
    slow = (0.12, OK[1])
    routing = "{hedge: {after: 5, budget_percent: 0, min_per_second: 0.2}}"  # 2 per 10 s
    router = _router({"a": [slow], "b": [(0.5, OK[1])]}, routing)
    hedged = []
    for _ in range(4):
        out, _ = await _call(router)
        assert isinstance(out, CallOutcome) and out.provider == "a"
        hedged.append((out.hedged, out.hedge_denied))
    assert hedged == [(True, False), (True, False), (False, True), (False, True)]
    assert _fake(router, "b").sent == 2


async def test_the_hedge_delay_is_the_tail_but_at_least_a_multiple_of_the_median() -> None:
    router = _router({"a": [OK], "b": [OK]}, "{hedge: {after: p95, median_factor: 1.5}}")
    chain = router.chains()[0]
    p = chain.providers["a"]
    ctx = CallContext("r", chain, RouteRequest("priority"))
    call = Call("eth_getBalance", b"[]", b"1")
    assert router.pipeline.hedge_delay(p, call, ctx) == 500.0  # no data yet
    for i in range(100):  # tight: 50..51 ms
        p.stats.record("eth_getBalance", "http", 50.0 + (i % 2), True, float(i))
    assert router.pipeline.hedge_delay(p, call, ctx) == pytest.approx(75.0)  # not p95's 51
    for i in range(100):  # wide: a tail at 300 ms
        lat = 300.0 if i % 10 == 0 else 50.0
        p.stats.record("eth_getBalance", "http", lat, True, 100.0 + i)
    assert router.pipeline.hedge_delay(p, call, ctx) == 300.0


async def test_a_provider_at_its_rate_limit_is_passed_over_then_the_call_is_refused() -> None:
    providers = {"a": [OK], "b": [OK]}
    router = _router(providers, "{hedge: {enabled: false}}")
    chain = router.chains()[0]
    for pid in providers:  # rate_limit_rps: 1, no burst
        chain.providers[pid].rate_cap = TokenBucket(1.0, 1.0, clock=router.clock)
    first, _ = await _call(router)
    second, _ = await _call(router)
    third, events = await _call(router)
    assert isinstance(first, CallOutcome) and first.provider == "a"
    assert isinstance(second, CallOutcome) and second.provider == "b"
    assert second.decision.skipped == (("a", "at its rate_limit_rps"),)
    assert isinstance(third, RateLimited) and "rate_limit_rps" in third.message
    assert events[0].error_class == "rate_limited"
    assert _fake(router, "a").sent == _fake(router, "b").sent == 1


async def test_a_retry_that_finds_the_breaker_just_opened_is_sent_in_panic_mode() -> None:
    """The single-provider stall: the first attempt's fault opened the breaker; re-deciding
    finds panic mode, so the retry is sent, and its answer closes the breaker again."""
    routing = "{hedge: {enabled: false}, breaker: {failure_threshold: 1, half_open_successes: 1}}"
    router = _router({"a": [(0.0, ConnectError("refused")), OK]}, routing)
    out, _ = await _call(router)
    assert isinstance(out, CallOutcome) and out.ok, out
    assert [a.outcome for a in out.attempts] == ["provider", "ok"]
    breaker = router.chains()[0].providers["a"].breaker
    assert breaker.closed
    assert breaker.snapshot().last_reason == "1 successful probes"


async def test_a_timed_out_attempt_counts_as_slow_for_ejection() -> None:
    routing = "{hedge: {enabled: false}, attempt_timeout_ms: 20, breaker: {failure_threshold: 99}}"
    router = _router({"a": [HANG], "b": [OK]}, routing)
    for _ in range(5):
        out, _ = await _call(router)
        assert isinstance(out, CallOutcome) and out.provider == "b"
        assert out.attempts[0].outcome == str(ErrorClass.PROVIDER)
    await asyncio.sleep(0)
    assert router.chains()[0].providers["a"].ejection.ejected
