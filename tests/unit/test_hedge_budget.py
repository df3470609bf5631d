"""The hedge budget (a share of reads plus a reserve, deposits expiring) and a provider's own
rate (rate_limit_rps), on a fake clock."""

from __future__ import annotations

import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.resilience.budget import HedgeBudget, TokenBucket


def hedges_allowed(budget: HedgeBudget, *, reads_per_s: int, seconds: int) -> int:
    """Reads at an even rate, each one asking for a hedge: how many were granted."""
    step = 1000.0 / reads_per_s
    granted = 0
    for i in range(reads_per_s * seconds):
        now = i * step
        budget.deposit(now)
        granted += budget.try_withdraw(now)
    return granted


def test_at_steady_traffic_hedges_are_the_percentage_plus_the_reserve() -> None:
    b = HedgeBudget(percent=5.0, min_per_second=1.0, window_ms=10_000)
    # 50 reads/s for 60 s, every one late: 5 % of 3000 reads + 1/s, the reserve's first window
    # (10 tokens) aside.
    granted = hedges_allowed(b, reads_per_s=50, seconds=60)
    assert 150 + 60 <= granted <= 150 + 60 + 10 + 1
    assert b.exhausted == 3000 - granted and b.granted == granted and b.reads == 3000


def test_without_a_reserve_the_percentage_is_a_hard_cap() -> None:
    b = HedgeBudget(percent=5.0, min_per_second=0.0, window_ms=10_000)
    granted = hedges_allowed(b, reads_per_s=100, seconds=30)
    assert granted == pytest.approx(0.05 * 3000, abs=2)


def test_a_quiet_chain_still_hedges_at_the_reserve_rate() -> None:
    b = HedgeBudget(percent=5.0, min_per_second=1.0, window_ms=10_000)
    # 2 reads/s: 5 % would be one hedge in 10 s; the reserve allows about one per second.
    granted = hedges_allowed(b, reads_per_s=2, seconds=60)
    assert 60 <= granted <= 60 + 10 + 6


def test_deposits_expire_so_a_quiet_hour_saves_no_burst() -> None:
    b = HedgeBudget(percent=50.0, min_per_second=0.0, window_ms=10_000)
    for i in range(1000):  # 500 tokens deposited within the first second
        b.deposit(i)
    assert b.balance(1_000) == pytest.approx(500.0)
    assert b.balance(9_999) == pytest.approx(500.0)
    assert b.balance(11_000) == 0.0  # the window moved past them
    assert not b.try_withdraw(3_600_000) and b.exhausted == 1


def test_withdrawals_expire_too() -> None:
    b = HedgeBudget(percent=0.0, min_per_second=1.0, window_ms=10_000)  # 10 in reserve
    assert sum(b.try_withdraw(0.0) for _ in range(12)) == 10
    assert not b.try_withdraw(9_000.0)
    assert b.try_withdraw(10_500.0)  # the first withdrawals left the window


def test_zero_percent_and_no_reserve_never_hedges() -> None:
    b = HedgeBudget(percent=0.0, min_per_second=0.0, window_ms=10_000)
    assert hedges_allowed(b, reads_per_s=100, seconds=5) == 0


@pytest.mark.parametrize(
    "kw",
    [
        {"percent": -1.0, "min_per_second": 1.0, "window_ms": 10.0},
        {"percent": 101.0, "min_per_second": 1.0, "window_ms": 10.0},
        {"percent": 5.0, "min_per_second": -1.0, "window_ms": 10.0},
        {"percent": 5.0, "min_per_second": 1.0, "window_ms": 0.0},
    ],
)
def test_bad_settings_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HedgeBudget(**kw)


def test_snapshot_and_repr_show_the_state() -> None:
    b = HedgeBudget(percent=5.0, min_per_second=1.0, window_ms=10_000)
    b.deposit(0.0)
    assert b.try_withdraw(0.0)
    assert b.snapshot(0.0) == {"balance": 9.05, "reads": 1, "hedges": 1, "exhausted": 0}
    assert "hedges=1" in repr(b)


# -- a provider's own rate ---------------------------------------------------------------


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    tb = TokenBucket(10.0, 5.0, clock=clock)
    assert sum(tb.take() for _ in range(20)) == 5
    assert tb.refused == 15 and not tb.available()
    clock.advance(100.0)  # one token per 100 ms
    assert tb.available() and tb.take() and not tb.take()
    clock.advance(60_000.0)
    assert tb.tokens == 5.0  # never more than the burst


def test_token_bucket_charge_goes_below_zero_and_delays_the_next_send() -> None:
    clock = FakeClock()
    tb = TokenBucket(1.0, 1.0, clock=clock)
    assert tb.take()
    tb.charge()  # a head poll: sent anyway
    clock.advance(1000.0)
    assert not tb.available()  # the poll's token is paid back first
    clock.advance(1000.0)
    assert tb.take()


def test_token_bucket_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1.0, clock=FakeClock())
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0.5, clock=FakeClock())
