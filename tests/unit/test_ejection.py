"""Outlier ejection on a fake clock: the detector, the ejection state and its return, and what
the candidate filters do with ejected and rate-capped providers."""

from __future__ import annotations

import random

import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.config.models import EjectionConfig, ProviderConfig, RoutingConfig
from lasso_rpc.observability.events import Event, EventBus, ProviderEjection
from lasso_rpc.resilience.ejection import EjectionSnapshot
from lasso_rpc.resilience.outliers import OutlierDetector
from lasso_rpc.routing.candidates import decide
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.routing.strategies import PriorityOrder
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.upstream.provider import EjectionEvents, ProviderRuntime

M = "eth_getBalance"


class _NoNetwork:
    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        raise AssertionError("nothing is sent here")

    async def aclose(self) -> None:
        return None


class Fleet:
    """Providers a, b, c (priority in that order) with their ejection changes recorded."""

    def __init__(self, *ids: str, rps: float | None = None, **ejection: float) -> None:
        self.clock = FakeClock()
        self.routing = RoutingConfig(ejection=EjectionConfig.model_validate(ejection))
        self.changes: dict[str, list[EjectionSnapshot]] = {}
        self.p: dict[str, ProviderRuntime] = {}
        for n, pid in enumerate(ids or ("a", "b", "c")):
            pc = ProviderConfig(id=pid, url=f"http://{pid}.example", priority=n, rate_limit_rps=rps)
            log = self.changes[pid] = []
            self.p[pid] = ProviderRuntime(
                "eth",
                pc,
                self.routing,
                _NoNetwork(),
                clock=self.clock,
                rng=random.Random(n),
                on_ejection_change=log.append,
            )
        self.detector = OutlierDetector(self.p, self.routing.ejection)

    def tick(self, ms: float) -> float:
        self.clock.advance(ms)
        return self.clock.now_ms()

    def decide(self) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], bool]:
        d = decide(
            self.p.values(),
            PriorityOrder(),
            RouteRequest("priority"),
            M,
            head_sensitive=False,
            max_lag=8,
            now_ms=self.clock.now_ms(),
        )
        return d.order, d.skipped, d.last_resort


def test_a_hung_provider_is_ejected_after_five_lost_races_within_a_second() -> None:
    f = Fleet()
    a = f.p["a"]
    for _ in range(50):  # healthy history does not slow the decision down
        f.detector.ok(a, M, "http", 50.0, f.tick(20))
    # Hung: at 50 req/s a third of the calls try a first; each loses to its hedge at ~175 ms.
    ejected_at = None
    for _ in range(10):
        f.detector.slow(a, f.tick(60), "cancelled (another attempt answered first) after 175 ms")
        if a.ejection.ejected and ejected_at is None:
            ejected_at = f.clock.now_ms()
    assert ejected_at == 50 * 20 + 5 * 60  # the fifth lost race, 300 ms after the hang
    (snap,) = f.changes["a"]
    assert snap.ejected and snap.streak == 1 and snap.until_ms == ejected_at + 5_000
    assert snap.reason is not None and snap.reason.startswith("5 slow attempts in a row")
    order, skipped, _ = f.decide()
    assert order == ("b", "c") and skipped == (("a", "ejected (outlier)"),)


def test_an_answer_between_slow_attempts_restarts_the_count() -> None:
    f = Fleet()
    a = f.p["a"]
    for _ in range(3):
        for _ in range(4):
            f.detector.slow(a, f.tick(10), "timed out after 1000 ms")
        f.detector.ok(a, M, "http", 50.0, f.tick(10))
    assert not a.ejection.ejected and f.changes["a"] == []


def test_a_hedge_that_loses_says_nothing_about_its_provider() -> None:
    """Only slow outcomes count: the pipeline reports a late-started loser as nothing at all,
    and a fault is the breaker's business, not a slow run."""
    f = Fleet(min_requests=1000)
    b = f.p["b"]
    for _ in range(20):
        f.detector.fault(b, f.tick(10))
    assert not b.ejection.ejected


@pytest.mark.parametrize(("fail_every", "ejected"), [(2, True), (4, False)])
def test_failure_rate_over_the_window(fail_every: int, ejected: bool) -> None:
    f = Fleet(min_requests=20, failure_rate=0.5, window_ms=10_000)
    a = f.p["a"]
    for i in range(40):
        now = f.tick(100)
        if i % fail_every == 0:
            f.detector.fault(a, now)
        else:
            f.detector.ok(a, M, "http", 50.0, now)
    assert a.ejection.ejected is ejected
    if ejected:
        reason = f.changes["a"][0].reason or ""
        assert reason == "11 of 21 attempts failed or slow within 10000 ms"


def test_old_failures_leave_the_window() -> None:
    f = Fleet(min_requests=10, failure_rate=0.5, window_ms=1_000)
    a = f.p["a"]
    for _ in range(8):
        f.detector.fault(a, f.tick(10))  # 8 faults, too few to judge
    f.tick(2_000)
    for _ in range(10):
        f.detector.ok(a, M, "http", 50.0, f.tick(10))
    f.detector.fault(a, f.tick(10))
    assert not a.ejection.ejected  # 1 of 11 within the window, not 9 of 19


@pytest.mark.parametrize(("latency", "ejected"), [(400.0, True), (250.0, False)])
def test_answers_far_slower_than_the_peers_are_slow(latency: float, ejected: bool) -> None:
    f = Fleet(latency_factor=3.0, latency_margin_ms=100.0)
    for pid in ("b", "c"):
        f.p[pid].stats.seed(M, "http", 100.0, 1.0, 20, now_ms=0.0)
    a = f.p["a"]
    for _ in range(5):
        f.detector.ok(a, M, "http", latency, f.tick(10))
    assert a.ejection.ejected is ejected
    assert f.detector.peer_median_ms(a, M, "http") == 100.0
    if ejected:
        assert "400 ms for eth_getBalance where the others take 100 ms" in (
            f.changes["a"][0].reason or ""
        )


def test_the_last_usable_provider_is_never_ejected() -> None:
    f = Fleet("a", "b")
    f.p["b"].breaker.force_open("down")
    a = f.p["a"]
    for _ in range(20):
        f.detector.slow(a, f.tick(10), "timed out")
    assert not a.ejection.ejected


def test_at_most_max_ejected_percent_at_once_but_always_one() -> None:
    f = Fleet("a", "b", "c", "d", max_ejected_percent=10.0)
    for pid in ("a", "b"):
        for _ in range(5):
            f.detector.slow(f.p[pid], f.tick(10), "timed out")
    assert f.p["a"].ejection.ejected and not f.p["b"].ejection.ejected


def test_a_disabled_detector_ejects_nobody() -> None:
    f = Fleet(enabled=False)
    for _ in range(50):
        f.detector.slow(f.p["a"], f.tick(10), "timed out")
    assert not f.p["a"].ejection.ejected


# -- the ejection itself: return, re-ejection, explicit changes --------------------------


def test_back_once_the_time_is_up_and_its_poll_answers() -> None:
    f = Fleet()
    a = f.p["a"]
    a.ejection.eject_for("test")
    f.tick(1_000)
    a.ejection.probe(True)  # answering, but the time is not up
    assert a.ejection.active(f.clock.now_ms())
    f.tick(4_000)
    a.ejection.probe(True)
    assert not a.ejection.ejected
    assert [s.ejected for s in f.changes["a"]] == [True, False]
    assert f.changes["a"][1].reason == "ejection over, health poll answering"
    assert f.decide()[0] == ("a", "b", "c")


def test_still_failing_its_poll_means_ejected_again_for_twice_as_long() -> None:
    f = Fleet()
    a = f.p["a"]
    a.ejection.eject_for("test")
    f.tick(2_000)
    a.ejection.probe(False)
    f.tick(3_000)  # the end of the first ejection, noticed by the next look
    assert a.ejection.active(f.clock.now_ms())
    again = f.changes["a"][-1]
    assert again.streak == 2 and again.until_ms == f.clock.now_ms() + 10_000
    assert again.reason == "still failing its health poll"
    # The poll fails again right at the end: 20 s this time, the change seen by the probe.
    f.tick(10_000)
    a.ejection.probe(False)
    assert f.changes["a"][-1].until_ms == f.clock.now_ms() + 20_000
    f.tick(20_000)
    a.ejection.probe(True)
    assert not a.ejection.ejected
    # Back for a while: the next ejection is short again.
    f.tick(120_000)
    assert a.ejection.next_length_ms(f.clock.now_ms()) == 5_000


def test_the_length_grows_to_the_cap() -> None:
    f = Fleet(base_ms=1_000, max_ms=4_000)
    a = f.p["a"]
    lengths = []
    for _ in range(5):
        a.ejection.eject_for("x")
        snap = f.changes["a"][-1]
        assert snap.until_ms is not None
        lengths.append(snap.until_ms - f.clock.now_ms())
        f.tick(lengths[-1])
        a.ejection.restore("x")
    assert lengths == [1_000, 2_000, 4_000, 4_000, 4_000]


def test_eject_and_restore_from_outside_emit_one_event_each() -> None:
    clock = FakeClock()
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    routing = RoutingConfig()
    p = ProviderRuntime(
        "eth",
        ProviderConfig(id="a", url="http://a.example"),
        routing,
        _NoNetwork(),
        clock=clock,
        rng=random.Random(1),
        on_ejection_change=EjectionEvents(bus, clock, "eth", "a"),
    )
    p.eject(clock.now_ms() + 7_000, "replicated from node 2")
    p.eject(clock.now_ms() + 9_000, "extended")
    p.restore("operator")
    p.restore("again: nothing to do")
    assert [type(e) for e in seen] == [ProviderEjection] * 3
    first, extended, back = seen
    assert isinstance(first, ProviderEjection) and isinstance(back, ProviderEjection)
    assert first.ejected and first.duration_ms == 7_000 and first.reason == "replicated from node 2"
    assert first.until_s == pytest.approx(first.ts + 7.0)
    assert isinstance(extended, ProviderEjection) and extended.duration_ms == 9_000
    assert not back.ejected and back.until_s is None and back.reason == "operator"
    assert "ejected=False" in repr(p)


# -- the candidate filters ---------------------------------------------------------------


def test_panic_mode_uses_an_ejected_provider_when_nothing_else_is_left() -> None:
    f = Fleet("a", "b")
    f.p["a"].ejection.eject_for("slow")
    f.p["b"].breaker.force_open("down")
    order, skipped, last_resort = f.decide()
    assert set(order) == {"a", "b"} and last_resort and skipped == ()


def test_a_provider_at_its_rate_limit_is_skipped_for_the_call() -> None:
    f = Fleet("a", "b", rps=2.0)
    cap = f.p["a"].rate_cap
    assert cap is not None
    assert cap.take() and cap.take()  # burst: one second's worth
    order, skipped, _ = f.decide()
    assert order == ("b",) and skipped == (("a", "at its rate_limit_rps"),)
    f.tick(500)  # one token back
    assert f.decide()[0] == ("a", "b")


def test_a_subscription_is_not_moved_for_the_http_rate_but_is_for_an_ejection() -> None:
    from lasso_rpc.config import load_config_text
    from lasso_rpc.router import Router
    from lasso_rpc.server.app import subscription_manager
    from lasso_rpc.subscriptions.manager import FeedKey

    text = (
        "name: T\nslug: t\nchains:\n  eth:\n    chain_id: 1\n    providers:\n"
        "      - {id: a, url: 'http://a.example', ws_url: 'ws://a.example', priority: 1,"
        " rate_limit_rps: 1}\n"
        "      - {id: b, url: 'http://b.example', ws_url: 'ws://b.example', priority: 2}\n"
    )
    router = Router(load_config_text([("t.yaml", text)]))
    manager = subscription_manager(router)
    key = FeedKey("t", "eth", "newHeads")
    a = router.chains()[0].providers["a"]
    assert a.rate_cap is not None and a.rate_cap.take()  # its HTTP rate is spent
    assert set(manager.candidates(key)) == {"a", "b"}
    a.ejection.eject_for("slow")
    assert manager.candidates(key) == ["b"]
