"""Routing strategies, driven by simulated traffic with a fake clock and a seeded Random."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.routing.stats import ProviderStats
from lasso_rpc.routing.strategies import (
    Decision,
    Fastest,
    LatencyWeighted,
    LoadBalanced,
    PriorityOrder,
    RoutingStrategy,
    make_strategy,
)

M = "eth_blockNumber"


@dataclass(frozen=True)
class Cand:
    id: str
    priority: int = 100
    weight: float = 1.0
    stats: ProviderStats = field(default_factory=ProviderStats)


def fleet(*ids: str) -> list[Cand]:
    return [Cand(i) for i in ids]


def simulate(
    strategy: RoutingStrategy,
    cands: Sequence[Cand],
    true_ms: dict[str, float],
    *,
    n: int,
    step_ms: float = 10.0,
    clock: FakeClock | None = None,
    seed: int = 1,
) -> list[str]:
    """Send n requests; the chosen provider answers in its true latency ±20 % noise."""
    rng = random.Random(seed)
    clock = clock or FakeClock()
    chosen = []
    for _ in range(n):
        clock.advance(step_ms)
        d = strategy.rank(cands, M, "http", clock.now_ms())
        pid = d.order[0]
        chosen.append(pid)
        lat = true_ms[pid] * rng.uniform(0.8, 1.2)
        next(c for c in cands if c.id == pid).stats.record(M, "http", lat, True, clock.now_ms())
    return chosen


def seed(c: Cand, ms: float, now: float, *, success: float = 1.0, samples: int = 40) -> None:
    c.stats.seed(M, "http", ms, success, samples, now_ms=now)


# -- fastest -------------------------------------------------------------------------------


def test_fastest_sends_almost_all_traffic_to_the_really_fastest_after_warm_up() -> None:
    cands = fleet("alpha", "beta", "gamma")
    picks = simulate(Fastest(), cands, {"alpha": 100.0, "beta": 50.0, "gamma": 200.0}, n=1000)
    share = Counter(picks)["beta"] / len(picks)
    assert share >= 0.98, Counter(picks)
    assert all(p == "beta" for p in picks[20:])


def test_fastest_warm_up_tries_every_cold_provider_in_rotation() -> None:
    cands = fleet("alpha", "beta", "gamma")
    picks = simulate(Fastest(min_samples=3), cands, {"alpha": 10, "beta": 20, "gamma": 30}, n=9)
    assert picks[:3] == ["alpha", "beta", "gamma"]
    assert Counter(picks) == {"alpha": 3, "beta": 3, "gamma": 3}
    # A provider added later is cold and gets its samples before the leader resumes.
    late = Cand("delta")
    cands.append(late)
    more = simulate(Fastest(min_samples=3), cands, {"alpha": 10, "beta": 20, "delta": 5}, n=4)
    assert more[:3] == ["delta"] * 3
    assert more[3] == "delta"  # and it is the fastest


def test_fastest_reprobes_a_stale_provider_once_per_period() -> None:
    clock = FakeClock()
    fast, slow = fleet("fast", "slow")
    seed(fast, 50.0, 0.0)
    seed(slow, 100.0, 0.0)
    strat = Fastest(stale_after_ms=30_000.0)
    times: list[float] = []
    picks = []
    for _ in range(1200):  # 120 s of traffic, one request every 100 ms
        clock.advance(100.0)
        d = strat.rank([fast, slow], M, "http", clock.now_ms())
        picks.append(d.order[0])
        if d.order[0] == "slow":
            times.append(clock.now_ms())
            assert d.reason.startswith("re-probing")
        chosen = fast if d.order[0] == "fast" else slow
        chosen.stats.record(M, "http", 50.0 if chosen is fast else 100.0, True, clock.now_ms())
    assert 3 <= len(times) <= 4, times
    assert all(b - a > 30_000.0 for a, b in itertools.pairwise(times))
    assert picks.count("fast") / len(picks) > 0.99


def test_fastest_reprobe_rediscovers_a_recovered_provider() -> None:
    clock = FakeClock()
    a, b = fleet("a", "b")
    seed(a, 80.0, 0.0)
    seed(b, 400.0, 0.0)  # b was slow, now it answers in 20 ms
    picks = simulate(Fastest(), [a, b], {"a": 80.0, "b": 20.0}, n=1500, step_ms=100, clock=clock)
    assert picks[-100:] == ["b"] * 100
    assert picks.index("b") >= 290  # first re-probe only after the 30 s stale period


def test_fastest_does_not_reprobe_when_no_traffic_flows() -> None:
    a, b = fleet("a", "b")
    seed(a, 50.0, 0.0)
    seed(b, 90.0, 0.0)
    d = Fastest().rank([a, b], M, "http", 600_000.0)  # a rare method: everyone is stale
    assert d.order == ("a", "b")
    assert d.reason == "lowest latency"


def test_fastest_penalises_failures_and_breaks_ties_by_success_then_priority() -> None:
    a, b, c = Cand("a", priority=2), Cand("b", priority=1), Cand("c", priority=3)
    seed(a, 50.0, 0.0, success=0.5)  # effective 200 ms
    seed(b, 100.0, 0.0)
    seed(c, 100.0, 0.0)
    d = Fastest().rank([a, b, c], M, "http", 1.0)
    assert d.order == ("b", "c", "a")
    a2, b2 = Cand("a2", priority=5), Cand("b2", priority=1)
    seed(a2, 70.0, 0.0)
    seed(b2, 70.0, 0.0)
    assert Fastest().rank([a2, b2], M, "http", 1.0).order == ("b2", "a2")


# -- load-balanced -------------------------------------------------------------------------


def test_load_balanced_equal_weights_rotate_exactly() -> None:
    cands = fleet("a", "b", "c")
    picks = simulate(
        make_strategy("round-robin", rng=random.Random(0), clock=FakeClock()),
        cands,
        {"a": 10.0, "b": 200.0, "c": 50.0},
        n=999,
    )
    assert Counter(picks) == {"a": 333, "b": 333, "c": 333}
    assert picks[:6] == ["a", "b", "c", "a", "b", "c"]


def test_load_balanced_respects_weights_smoothly() -> None:
    cands = [Cand("light", weight=1.0), Cand("heavy", weight=3.0)]
    picks = simulate(LoadBalanced(), cands, {"light": 10.0, "heavy": 10.0}, n=1000)
    assert Counter(picks) == {"light": 250, "heavy": 750}
    assert "light" in picks[:4] and "light" in picks[4:8]  # spread, not bunched


def test_load_balanced_keeps_unhealthy_providers_for_failover_only() -> None:
    good1, good2, bad = fleet("good1", "good2", "bad")
    seed(bad, 10.0, 0.0, success=0.5)
    strat = LoadBalanced()
    firsts: Counter[str] = Counter()
    for t in range(100):
        d = strat.rank([good1, good2, bad], M, "http", float(t))
        firsts[d.order[0]] += 1
        assert d.order[-1] == "bad"
    assert firsts == {"good1": 50, "good2": 50}
    # With nobody healthy, everyone is in the rotation again.
    seed(good1, 10.0, 0.0, success=0.5)
    seed(good2, 10.0, 0.0, success=0.5)
    d = strat.rank([good1, good2, bad], M, "http", 200.0)
    assert d.reason == "weighted round-robin (no healthy tier)"


def test_load_balanced_takes_a_failed_provider_back_once_its_failures_are_forgiven() -> None:
    a, b = fleet("a", "b")
    for t in range(10):
        b.stats.record(M, "http", 10.0, False, float(t))
    strat = LoadBalanced()
    assert [strat.rank([a, b], M, "http", 100.0 + t).order for t in range(4)] == [("a", "b")] * 4
    # A minute without news about b (its breaker was open, say): it is in the rotation again.
    later = Counter(strat.rank([a, b], M, "http", 60_000.0 + t).order[0] for t in range(10))
    assert later == {"a": 5, "b": 5}


# -- latency-weighted ----------------------------------------------------------------------


def test_latency_weighted_prefers_faster_but_still_uses_slower() -> None:
    fast, slow = fleet("fast", "slow")
    seed(fast, 50.0, 0.0)
    seed(slow, 100.0, 0.0)
    strat = LatencyWeighted(rng=random.Random(42))
    picks = Counter(strat.rank([fast, slow], M, "http", 1.0).order[0] for _ in range(10_000))
    # P ∝ 1/latency²: 4:1
    assert 0.77 < picks["fast"] / 10_000 < 0.83
    assert picks["slow"] > 1_500


def test_latency_weighted_tries_cold_providers_at_the_mean_latency() -> None:
    a, b, cold = fleet("a", "b", "cold")
    seed(a, 50.0, 0.0)
    seed(b, 150.0, 0.0)
    strat = LatencyWeighted(rng=random.Random(3))
    picks = Counter(strat.rank([a, b, cold], M, "http", 1.0).order[0] for _ in range(3_000))
    # cold is scored at 100 ms: 1/2500 : 1/22500 : 1/10000 = 36 : 4 : 9 (of 49)
    assert 0.12 < picks["cold"] / 3_000 < 0.25
    d = strat.rank([a, b, cold], M, "http", 1.0)
    assert d.order[1:] == tuple(x for x in ("a", "cold", "b") if x != d.order[0])


def test_latency_weighted_keeps_every_provider_at_one_percent_at_least() -> None:
    """1/latency² alone would give a 100x slower provider 0.01 %: its stats would go stale."""
    fast, slow = fleet("fast", "slow")
    seed(fast, 10.0, 0.0)
    seed(slow, 1000.0, 0.0)
    strat = LatencyWeighted(rng=random.Random(5))
    picks = Counter(strat.rank([fast, slow], M, "http", 1.0).order[0] for _ in range(20_000))
    assert 0.007 < picks["slow"] / 20_000 < 0.014
    d = strat.rank([fast, slow], M, "http", 1.0)
    assert d.order[1:] == tuple(x for x in ("fast", "slow") if x != d.order[0])
    no_floor = LatencyWeighted(rng=random.Random(5), min_share=0.0)
    picks = Counter(no_floor.rank([fast, slow], M, "http", 1.0).order[0] for _ in range(20_000))
    assert picks["slow"] < 20


def test_latency_weighted_is_deterministic_with_a_seeded_random() -> None:
    def run() -> list[str]:
        a, b = fleet("a", "b")
        seed(a, 50.0, 0.0)
        seed(b, 60.0, 0.0)
        strat = LatencyWeighted(rng=random.Random(9))
        return [strat.rank([a, b], M, "http", 1.0).order[0] for _ in range(50)]

    assert run() == run()


# -- priority ------------------------------------------------------------------------------


def test_priority_orders_by_priority_then_latency_then_id() -> None:
    p1 = Cand("p1", priority=1)
    p2_slow, p2_fast = Cand("p2-slow", priority=2), Cand("p2-fast", priority=2)
    z, y = Cand("z", priority=3), Cand("y", priority=3)
    seed(p1, 500.0, 0.0)
    seed(p2_slow, 90.0, 0.0)
    seed(p2_fast, 30.0, 0.0)
    d = PriorityOrder().rank([z, p2_slow, y, p1, p2_fast], M, "http", 1.0)
    assert d.order == ("p1", "p2-fast", "p2-slow", "y", "z")
    assert d.reason == "lowest priority value"


# -- every strategy ------------------------------------------------------------------------

NAMES = ["fastest", "load-balanced", "round-robin", "latency-weighted", "priority"]


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_handles_zero_and_one_candidate(name: str) -> None:
    strat = make_strategy(name, rng=random.Random(0), clock=FakeClock())
    none = strat.rank([], M, "http", 0.0)
    assert none.order == ()
    assert none.reason == "no candidates"
    only = Cand("solo")
    one = strat.rank([only], M, "http", 0.0)
    assert one.order == ("solo",)
    assert one.reason == "only candidate"
    assert "solo" in one.explain()


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_returns_each_candidate_exactly_once(name: str) -> None:
    strat = make_strategy(name, rng=random.Random(0), clock=FakeClock())
    cands = fleet(*(f"p{i}" for i in range(10)))
    for i, c in enumerate(cands):
        seed(c, 10.0 + i, 0.0, success=1.0 if i % 3 else 0.8)
    for t in range(20):
        d = strat.rank(cands, M, "http", 1.0 + t)
        assert sorted(d.order) == sorted(c.id for c in cands)
        assert d.strategy == strat.name


def test_unknown_strategy_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown routing strategy"):
        make_strategy("cheapest", rng=random.Random(0), clock=FakeClock())


# -- explanations --------------------------------------------------------------------------


def test_explain_names_the_choice_the_runner_up_and_the_skipped() -> None:
    alpha, beta, gamma = fleet("alpha", "beta", "gamma")
    seed(alpha, 51.2, 0.0)
    seed(beta, 101.0, 0.0, success=0.9)
    seed(gamma, 300.0, 0.0)
    d = Fastest().rank([alpha, beta, gamma], M, "http", 1.0)
    d = d.with_skipped([("delta", "breaker open")])
    assert d.skipped == (("delta", "breaker open"),)
    text = d.explain()
    assert text.startswith("fastest: alpha (lowest latency; ewma 51.2ms, 40 samples)")
    assert "over beta (ewma 101.0ms, 40 samples, success 90.0%, effective 124.7ms)" in text
    assert ", then gamma" in text
    assert text.endswith("; skipped: delta (breaker open)")


def test_explain_for_each_strategy_shows_its_own_figure() -> None:
    a, b = Cand("a", priority=1, weight=3.0), Cand("b", priority=2)
    seed(a, 50.0, 0.0)
    seed(b, 100.0, 0.0)
    assert "weight 3" in LoadBalanced().rank([a, b], M, "http", 1.0).explain()
    assert "priority 1" in PriorityOrder().rank([a, b], M, "http", 1.0).explain()
    lw = LatencyWeighted(rng=random.Random(0)).rank([a, b], M, "http", 1.0).explain()
    assert "p=0.92" in lw or "p=0.08" in lw  # 3/2500 : 1/10000 = 12 : 1
    empty = Decision((), "fastest", "no candidates", (("x", "cordoned"),))
    assert empty.explain() == "fastest: no candidates; skipped: x (cordoned)"
