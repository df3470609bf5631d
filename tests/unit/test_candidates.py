"""The candidate filters on their own: skip reasons, half-open providers, panic mode, pins."""

from __future__ import annotations

import random

from lasso_rpc.clock import FakeClock
from lasso_rpc.config.models import MethodsConfig, ProviderConfig, RoutingConfig
from lasso_rpc.routing.candidates import SkipReason, decide, skip_reason
from lasso_rpc.routing.decision import Decision
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.routing.strategies import PriorityOrder
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.upstream.provider import ProviderRuntime

ROUTING = RoutingConfig(max_lag_blocks=8)


class _NoNetwork:
    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        raise AssertionError("the filters never send")

    async def aclose(self) -> None:
        return None


def provider(
    pid: str, clock: FakeClock, *, priority: int = 100, methods: MethodsConfig | None = None
) -> ProviderRuntime:
    pc = ProviderConfig(
        id=pid, url=f"http://{pid}.example", priority=priority, methods=methods or MethodsConfig()
    )
    return ProviderRuntime("eth", pc, ROUTING, _NoNetwork(), clock=clock, rng=random.Random(1))


def trip(p: ProviderRuntime) -> None:
    p.breaker.force_open("test")


def run(
    providers: list[ProviderRuntime],
    clock: FakeClock,
    req: RouteRequest,
    method: str = "eth_getBalance",
) -> Decision:
    pinned = None if req.pin is None else next(p for p in providers if p.id == req.pin)
    return decide(
        providers,
        PriorityOrder(),
        req,
        method,
        head_sensitive=True,
        max_lag=ROUTING.max_lag_blocks,
        now_ms=clock.now_ms(),
        pinned=pinned,
    )


def test_each_skip_reason_keeps_its_text() -> None:
    clock = FakeClock()
    deny = MethodsConfig(deny=["eth_getBalance"])
    cordoned, denied, tripped, backing, lagging, ok = (
        provider(pid, clock, priority=n, methods=deny if pid == "b" else None)
        for n, pid in enumerate("abcdef")
    )
    cordoned.cordoned = True
    trip(tripped)
    backing.backoff_until_ms = clock.now_ms() + 1000
    lagging.lag = 12

    d = run([cordoned, denied, tripped, backing, lagging, ok], clock, RouteRequest("priority"))

    assert d.order == ("f",)
    assert d.skipped == (
        ("a", "cordoned"),
        ("b", "method not supported"),
        ("c", "breaker open"),
        ("d", "rate limited (backing off)"),
        ("e", "lagging 12 blocks"),
    )
    assert "skipped: a (cordoned), b (method not supported)" in d.explain()


def test_lag_only_matters_for_head_sensitive_calls() -> None:
    clock = FakeClock()
    p = provider("a", clock)
    p.lag = 100

    assert skip_reason(p, "eth_chainId", head_sensitive=False, max_lag=8, now_ms=0.0) is None
    assert (
        skip_reason(p, "eth_call", head_sensitive=True, max_lag=8, now_ms=0.0) is SkipReason.LAGGING
    )


def test_half_open_provider_is_kept_back_while_a_healthy_one_remains() -> None:
    clock = FakeClock()
    healthy, probing = provider("a", clock), provider("b", clock)
    trip(probing)
    clock.advance(ROUTING.breaker.max_recovery_ms * 2)  # past the recovery delay: half-open

    d = run([healthy, probing], clock, RouteRequest("priority"))

    assert d.order == ("a",) and not d.last_resort
    assert d.skipped == (("b", "breaker half_open (background probe)"),)


def test_only_half_open_providers_left_is_a_last_resort() -> None:
    clock = FakeClock()
    probing = provider("a", clock)
    trip(probing)
    clock.advance(ROUTING.breaker.max_recovery_ms * 2)

    d = run([probing], clock, RouteRequest("priority"))

    assert d.order == ("a",) and d.last_resort and d.skipped == ()


def test_panic_mode_tries_tripped_providers_but_not_one_held_open() -> None:
    clock = FakeClock()
    a, b, held = (provider(pid, clock, priority=n) for n, pid in enumerate("abc"))
    trip(a)
    trip(b)
    held.breaker.force_open("operator", hold=True)

    d = run([a, b, held], clock, RouteRequest("priority"))

    assert d.order == ("a", "b") and d.last_resort  # "c" stays out


def test_pin_without_failover_is_the_whole_order_even_with_an_open_breaker() -> None:
    clock = FakeClock()
    a, b = provider("a", clock), provider("b", clock)
    trip(b)

    d = run([a, b], clock, RouteRequest("priority", pin="b"))

    assert d.order == ("b",) and d.strategy == "provider"


def test_pin_with_failover_leads_and_the_rest_follow() -> None:
    clock = FakeClock()
    a, b, c = (provider(pid, clock, priority=n) for n, pid in enumerate("abc"))

    d = run([a, b, c], clock, RouteRequest("priority", pin="c", failover=True))

    assert d.order == ("c", "a", "b")
    assert d.reason == "pinned to c, failover allowed"


def test_pinned_provider_that_denies_the_method_gets_nothing() -> None:
    clock = FakeClock()
    p = provider("a", clock, methods=MethodsConfig(deny=["trace_*"]))

    d = run([p], clock, RouteRequest("priority", pin="a"), "trace_block")

    assert d.order == () and d.skipped == (("a", "method not supported"),)
