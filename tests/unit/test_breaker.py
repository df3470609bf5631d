"""The circuit breaker state machine, driven by a fake clock: no sleeps, no timers."""

from __future__ import annotations

import dataclasses
import random

import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.config.models import BreakerConfig
from lasso_rpc.resilience.breaker import BreakerState, BreakerTransition, CircuitBreaker
from lasso_rpc.resilience.classify import ErrorClass

P = ErrorClass.PROVIDER
R = ErrorClass.RATE_LIMITED
CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(
    *,
    seed: int = 1,
    clock: FakeClock | None = None,
    **overrides: float,
) -> tuple[CircuitBreaker, FakeClock, list[BreakerTransition]]:
    settings: dict[str, float] = {
        "failure_threshold": 3,
        "rate_limit_threshold": 2,
        "recovery_ms": 1000,
        "max_recovery_ms": 8000,
        "jitter": 0.0,
        "half_open_successes": 2,
        "half_open_max_in_flight": 1,
    }
    settings.update(overrides)
    clock = clock or FakeClock()
    events: list[BreakerTransition] = []
    breaker = CircuitBreaker(
        BreakerConfig.model_validate(settings),
        clock=clock,
        rng=random.Random(seed),
        on_change=events.append,
        name="mainnet/alchemy/http",
    )
    return breaker, clock, events


def trip(breaker: CircuitBreaker, n: int = 3) -> None:
    for _ in range(n):
        breaker.record(P)


def to_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    until = breaker.open_until_ms
    assert until is not None
    clock.advance(until - clock.now_ms())
    assert breaker.state is HALF


# -- closed ------------------------------------------------------------------------------------


def test_a_new_breaker_is_closed_and_admits() -> None:
    b, _, events = make()
    assert b.state is CLOSED
    assert b.state == "closed"
    assert b.admits() and b.acquire()
    assert b.open_until_ms is None
    assert events == []


def test_opens_after_failure_threshold_consecutive_provider_faults() -> None:
    b, clock, events = make()
    clock.advance(500)
    trip(b, 2)
    assert b.state is CLOSED
    b.record(P)
    assert b.state is OPEN
    assert not b.admits() and not b.acquire()
    assert b.open_until_ms == 1500
    assert events == [BreakerTransition(CLOSED, OPEN, "3 consecutive provider faults", 500)]


def test_opens_after_rate_limit_threshold_consecutive_rate_limits() -> None:
    b, _, events = make()
    b.record(R)
    assert b.state is CLOSED
    b.record(R)
    assert b.state is OPEN
    assert events[-1].reason == "2 consecutive rate limits"


@pytest.mark.parametrize(
    "alive",
    [None, ErrorClass.CLIENT, ErrorClass.CAPABILITY, ErrorClass.LAGGING],
)
def test_an_answer_from_a_live_provider_resets_both_counts(alive: ErrorClass | None) -> None:
    b, _, _ = make()
    b.record(P)
    b.record(P)
    b.record(R)
    b.record(alive)
    b.record(P)
    b.record(P)
    b.record(R)
    assert b.state is CLOSED
    snap = b.snapshot()
    assert (snap.consecutive_failures, snap.consecutive_rate_limits) == (2, 1)


@pytest.mark.parametrize("outcome", [ErrorClass.CLIENT, ErrorClass.CAPABILITY, ErrorClass.LAGGING])
def test_client_capability_and_lagging_never_open_it(outcome: ErrorClass) -> None:
    b, _, events = make()
    for _ in range(100):
        b.record(outcome)
    assert b.state is CLOSED
    assert events == []


def test_faults_and_rate_limits_count_separately() -> None:
    b, _, events = make(failure_threshold=3, rate_limit_threshold=3)
    for outcome in (P, R, P, R):
        b.record(outcome)
    assert b.state is CLOSED
    b.record(P)
    assert b.state is OPEN
    assert events[-1].reason == "3 consecutive provider faults"


# -- open --------------------------------------------------------------------------------------


def test_answers_arriving_while_open_change_nothing() -> None:
    b, clock, events = make()
    trip(b)
    for outcome in (None, ErrorClass.CLIENT, P, R):
        b.record(outcome)
    b.release()
    assert b.state is OPEN
    assert len(events) == 1
    clock.advance(999)
    assert b.state is OPEN


def test_an_answer_to_a_call_sent_while_open_is_a_probe_that_can_close_it() -> None:
    """Panic mode sends to an open breaker when nothing else is left: those answers are news."""
    b, clock, events = make()
    trip(b)
    b.record(None, fresh=True)
    assert b.state is HALF and b.snapshot().probe_successes == 1
    assert events[-1].reason == "a request sent in panic mode was answered"
    b.record(ErrorClass.CLIENT, fresh=True)  # a client error proves it alive too
    assert b.state is CLOSED and b.consecutive_opens == 0
    assert clock.now_ms() == 0.0  # without waiting for the recovery delay


@pytest.mark.parametrize("outcome", [P, R])
def test_a_failed_call_sent_while_open_changes_nothing(outcome: ErrorClass) -> None:
    b, _, events = make()
    trip(b)
    until = b.open_until_ms
    b.record(outcome, fresh=True)
    assert b.state is OPEN and b.open_until_ms == until and len(events) == 1


def test_a_breaker_held_open_stays_open_whatever_panic_traffic_says() -> None:
    b, _, _ = make()
    b.force_open("operator", hold=True)
    b.record(None, fresh=True)
    assert b.state is OPEN and b.snapshot().held


def test_the_default_recovery_starts_short_and_backs_off() -> None:
    """A brief burst of 429s costs about a second, not 30 s; a provider that stays down is
    probed less and less often (1, 2, 4 ... 60 s)."""
    clock = FakeClock()
    b = CircuitBreaker(BreakerConfig(jitter=0.0), clock=clock, rng=random.Random(1))
    for _ in range(3):
        b.record(R)
    assert b.state is OPEN and b.open_until_ms == 1_000
    delays = []
    for _ in range(9):
        until = b.open_until_ms
        assert until is not None
        delays.append(until - clock.now_ms())
        to_half_open(b, clock)
        b.record(P)
    assert delays == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
    to_half_open(b, clock)
    b.record(None)
    b.record(None)
    assert b.state is CLOSED


def test_open_becomes_half_open_lazily_when_the_delay_has_passed() -> None:
    b, clock, events = make()
    trip(b)
    clock.advance(999)
    assert b.state is OPEN and not b.admits()
    clock.advance(5000)
    assert len(events) == 1  # no timer: nothing happens until someone looks
    assert b.admits()
    assert b.state is HALF
    assert events[-1] == BreakerTransition(OPEN, HALF, "recovery delay elapsed", 5999)
    assert b.open_until_ms is None


def test_admits_has_no_side_effect_on_probe_slots() -> None:
    b, clock, _ = make()
    trip(b)
    clock.advance(1000)
    for _ in range(5):
        assert b.admits()
    assert b.snapshot().probes_in_flight == 0


# -- half open ---------------------------------------------------------------------------------


def test_half_open_admits_at_most_max_in_flight_probes() -> None:
    b, clock, _ = make(half_open_max_in_flight=2)
    trip(b)
    to_half_open(b, clock)
    assert b.acquire() and b.acquire()
    assert not b.acquire()
    assert not b.admits()
    assert b.snapshot().probes_in_flight == 2
    b.release()
    assert b.admits()
    assert b.acquire()
    assert not b.acquire()


def test_recording_a_probe_frees_its_slot() -> None:
    b, clock, _ = make(half_open_successes=3)
    trip(b)
    to_half_open(b, clock)
    assert b.acquire()
    assert not b.acquire()
    b.record(None)
    assert b.state is HALF
    assert b.acquire()


def test_slots_never_go_below_zero() -> None:
    b, clock, _ = make(half_open_successes=5)
    trip(b)
    to_half_open(b, clock)
    b.release()
    b.record(None)  # an answer to a request sent before the breaker opened
    assert b.snapshot().probes_in_flight == 0
    assert b.acquire()
    assert not b.acquire()


def test_half_open_closes_after_enough_successful_probes() -> None:
    b, clock, events = make()
    trip(b)
    to_half_open(b, clock)
    assert b.acquire()
    b.record(None)
    assert b.state is HALF
    assert b.acquire()
    b.record(None)
    assert b.state is CLOSED
    assert events[-1].reason == "2 successful probes"
    assert b.consecutive_opens == 0


@pytest.mark.parametrize("alive", [ErrorClass.CLIENT, ErrorClass.CAPABILITY, ErrorClass.LAGGING])
def test_client_capability_and_lagging_probes_prove_the_provider_alive(alive: ErrorClass) -> None:
    b, clock, _ = make()
    trip(b)
    to_half_open(b, clock)
    for _ in range(2):
        assert b.acquire()
        b.record(alive)
    assert b.state is CLOSED


@pytest.mark.parametrize("failure", [P, R])
def test_a_failed_probe_reopens_with_a_longer_delay(failure: ErrorClass) -> None:
    b, clock, events = make()
    trip(b)
    to_half_open(b, clock)
    now = clock.now_ms()
    assert b.acquire()
    b.record(failure)
    assert b.state is OPEN
    assert events[-1] == BreakerTransition(HALF, OPEN, f"probe failed: {failure}", now)
    assert b.open_until_ms == now + 2000
    assert b.consecutive_opens == 2


def test_closing_resets_the_growth_of_the_delay() -> None:
    b, clock, _ = make()
    trip(b)
    to_half_open(b, clock)
    b.record(P)  # reopen: 2000 ms
    to_half_open(b, clock)
    b.record(None)
    b.record(None)
    assert b.state is CLOSED
    trip(b)
    assert b.open_until_ms == clock.now_ms() + 1000


# -- delays --------------------------------------------------------------------------------------


def test_delay_doubles_per_open_and_stops_at_the_cap() -> None:
    b, clock, _ = make(recovery_ms=1000, max_recovery_ms=8000)
    trip(b)
    delays = []
    for _ in range(6):
        until = b.open_until_ms
        assert until is not None
        delays.append(until - clock.now_ms())
        to_half_open(b, clock)
        b.record(P)
    assert delays == [1000, 2000, 4000, 8000, 8000, 8000]


def test_a_very_long_outage_does_not_overflow_the_delay() -> None:
    b, clock, _ = make(recovery_ms=1000, max_recovery_ms=300_000)
    trip(b)
    for _ in range(200):
        to_half_open(b, clock)
        b.record(P)
    until = b.open_until_ms
    assert until is not None
    assert until - clock.now_ms() == 300_000
    assert b.consecutive_opens == 201


@pytest.mark.parametrize("jitter", [0.1, 0.2, 0.5, 1.0])
def test_jitter_keeps_every_delay_within_its_band(jitter: float) -> None:
    seen: set[float] = set()
    for seed in range(200):
        b, clock, _ = make(seed=seed, jitter=jitter, recovery_ms=1000, max_recovery_ms=4000)
        trip(b)
        for base in (1000, 2000, 4000, 4000):
            until = b.open_until_ms
            assert until is not None
            delay = until - clock.now_ms()
            assert base * (1 - jitter) <= delay <= base * (1 + jitter)
            seen.add(round(delay / base, 6))
            clock.advance(delay)
            assert b.state is HALF
            b.record(P)
    assert len(seen) > 100  # the factor really varies, so breakers do not probe in step


def test_the_same_seed_gives_the_same_delays() -> None:
    def delays(seed: int) -> list[float]:
        b, clock, _ = make(seed=seed, jitter=0.3)
        out = []
        trip(b)
        for _ in range(4):
            until = b.open_until_ms
            assert until is not None
            out.append(until - clock.now_ms())
            to_half_open(b, clock)
            b.record(P)
        return out

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


# -- control API ---------------------------------------------------------------------------------


def test_force_open_uses_the_normal_recovery_delay() -> None:
    b, clock, events = make()
    b.force_open("control api")
    assert b.state is OPEN
    assert events[-1] == BreakerTransition(CLOSED, OPEN, "forced open: control api", 0)
    assert b.open_until_ms == 1000
    clock.advance(1000)
    assert b.state is HALF


def test_force_open_with_hold_stays_open_until_force_close() -> None:
    b, clock, events = make()
    b.force_open("maintenance", hold=True)
    clock.advance(10_000_000)
    assert b.state is OPEN
    assert b.open_until_ms is None
    assert b.snapshot().held
    assert "held" in repr(b)
    b.force_close("maintenance over")
    assert b.state is CLOSED
    assert not b.snapshot().held
    assert events[-1] == BreakerTransition(
        OPEN, CLOSED, "forced close: maintenance over", 10_000_000
    )


def test_force_open_on_an_open_breaker_can_only_add_a_hold() -> None:
    b, clock, events = make()
    trip(b)
    b.force_open("again")
    assert len(events) == 1
    b.force_open("pin it", hold=True)
    assert len(events) == 1
    clock.advance(1_000_000)
    assert b.state is OPEN


def test_force_open_from_half_open_grows_the_delay() -> None:
    b, clock, events = make()
    trip(b)
    to_half_open(b, clock)
    b.force_open("operator")
    assert events[-1].from_state is HALF and events[-1].to_state is OPEN
    assert b.open_until_ms == clock.now_ms() + 2000


def test_force_close_from_open_forgets_history() -> None:
    b, clock, events = make()
    trip(b)
    to_half_open(b, clock)
    b.record(P)
    b.force_close("control api")
    assert b.state is CLOSED
    assert b.consecutive_opens == 0
    assert events[-1] == BreakerTransition(
        OPEN, CLOSED, "forced close: control api", clock.now_ms()
    )
    trip(b)
    assert b.open_until_ms == clock.now_ms() + 1000


def test_force_close_on_a_closed_breaker_only_clears_the_counts() -> None:
    b, _, events = make()
    trip(b, 2)
    b.force_close("control api")
    assert events == []
    trip(b, 2)
    assert b.state is CLOSED


# -- observation -------------------------------------------------------------------------------


def test_on_change_sees_a_whole_cycle_with_reasons() -> None:
    b, clock, events = make()
    trip(b)
    clock.advance(1000)
    assert b.acquire()
    b.record(R)
    clock.advance(2000)
    b.acquire()
    b.record(None)
    b.acquire()
    b.record(ErrorClass.CLIENT)
    assert [(e.from_state, e.to_state, e.reason, e.at_ms) for e in events] == [
        (CLOSED, OPEN, "3 consecutive provider faults", 0),
        (OPEN, HALF, "recovery delay elapsed", 1000),
        (HALF, OPEN, "probe failed: rate_limited", 1000),
        (OPEN, HALF, "recovery delay elapsed", 3000),
        (HALF, CLOSED, "2 successful probes", 3000),
    ]
    assert str(events[0].to_state) == "open"


def test_works_without_an_observer() -> None:
    b = CircuitBreaker(BreakerConfig(), clock=FakeClock(), rng=random.Random(0))
    for _ in range(5):
        b.record(P)
    assert b.state is OPEN


def test_snapshot_is_a_frozen_value_for_the_api() -> None:
    b, clock, _ = make()
    trip(b)
    snap = b.snapshot()
    assert dataclasses.asdict(snap) == {
        "name": "mainnet/alchemy/http",
        "state": "open",
        "consecutive_failures": 0,
        "consecutive_rate_limits": 0,
        "consecutive_opens": 1,
        "open_until_ms": 1000,
        "held": False,
        "probes_in_flight": 0,
        "probe_successes": 0,
        "last_reason": "3 consecutive provider faults",
        "last_change_ms": 0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = CLOSED  # type: ignore[misc]
    to_half_open(b, clock)
    b.acquire()
    assert b.snapshot().probes_in_flight == 1


def test_repr_shows_the_state() -> None:
    b, _, _ = make()
    b.record(P)
    assert repr(b) == (
        "CircuitBreaker('mainnet/alchemy/http', state=closed, failures=1/3, rate_limits=0/2, "
        "opens=0)"
    )
    trip(b, 2)
    assert "state=open" in repr(b) and "open_until_ms=1000" in repr(b)
