"""Passive benchmarks: EWMA, percentiles, success decay, fallbacks and bounded memory."""

from __future__ import annotations

import math
import random

import pytest

from lasso_rpc.routing.latency import HINT_EVERY, LatencyStats
from lasso_rpc.routing.stats import OTHER_METHODS, ProviderStats

M = "eth_blockNumber"


def test_ewma_notices_a_provider_going_from_50_to_400_ms_within_a_few_samples() -> None:
    s = ProviderStats()
    now = 0.0
    for _ in range(50):
        now += 10.0
        s.record(M, "http", 50.0, True, now)
    assert s.latency_ms(M, "http") == pytest.approx(50.0)
    seen = []
    for _ in range(5):
        now += 10.0
        s.record(M, "http", 400.0, True, now)
        seen.append(s.latency_ms(M, "http"))
    assert seen[0] is not None and seen[0] > 100.0  # one slow answer already doubles it
    assert seen[2] is not None and seen[2] > 200.0
    assert seen[4] is not None and seen[4] > 280.0


def test_after_a_pause_one_fresh_sample_moves_the_ewma_most_of_the_way() -> None:
    s = ProviderStats()
    for i in range(20):
        s.record(M, "http", 400.0, True, float(i))
    s.record(M, "http", 50.0, True, 19.0 + 30_000.0)
    ewma = s.latency_ms(M, "http")
    assert ewma is not None and ewma < 160.0  # plain alpha=0.2 would leave 330


def test_percentiles_match_nearest_rank_over_the_last_ring_size_samples() -> None:
    rng = random.Random(7)
    s = LatencyStats(ring_size=128)
    values = [rng.uniform(1.0, 500.0) for _ in range(500)]
    for i, v in enumerate(values):
        s.record(v, True, float(i))
    window = sorted(values[-128:])
    for q in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
        expected = window[max(math.ceil(q * len(window)) - 1, 0)]
        assert s.percentile(q) == expected


def test_percentile_cache_is_dropped_by_the_next_record() -> None:
    s = LatencyStats()
    for i in range(10):
        s.record(10.0, True, float(i))
    assert s.percentile(0.5) == 10.0
    assert s.percentile(0.5) == 10.0  # served from the cached sort
    for i in range(20):
        s.record(90.0, True, 10.0 + i)
    assert s.percentile(0.5) == 90.0


def test_percentile_hint_follows_within_hint_every_samples() -> None:
    s = LatencyStats(ring_size=128)
    assert s.percentile_hint(0.9) is None
    s.record(10.0, True, 0.0)
    assert s.percentile_hint(0.9) == 10.0
    # While the ring is small every new sample counts: a hedge delay is right from the start.
    s.record(30.0, True, 1.0)
    assert s.percentile_hint(1.0) == 30.0
    for i in range(200):
        s.record(10.0, True, 2.0 + i)
    assert s.percentile_hint(0.99) == 10.0
    # A slow spell shows after at most HINT_EVERY samples, not after every one.
    seen = []
    for i in range(HINT_EVERY):
        s.record(900.0, True, 300.0 + i)
        seen.append(s.percentile_hint(0.99))
    assert seen[-1] == 900.0 == s.percentile(0.99)
    assert seen[0] == 10.0  # served from the sort made before the slow spell


def test_provider_percentile_hint_falls_back_to_all_methods() -> None:
    s = ProviderStats()
    assert s.percentile_hint(M, "http", 0.9) is None
    s.record("eth_call", "http", 40.0, True, 0.0)
    assert s.percentile_hint(M, "http", 0.9) == 40.0
    s.record(M, "http", 5.0, True, 1.0)
    assert s.percentile_hint(M, "http", 0.9) == 5.0


def test_percentile_takes_a_fraction_and_none_without_samples() -> None:
    s = ProviderStats()
    assert s.percentile(M, "http", 0.9) is None
    with pytest.raises(ValueError):
        LatencyStats().percentile(95)


def test_recent_outcomes_outweigh_an_old_outage() -> None:
    s = ProviderStats()
    for i in range(100):
        s.record(M, "http", 5.0, False, float(i))
    assert s.success_rate(M, "http") == 0.0
    # Then steady good traffic, ten answers a second: the outage weighs less and less.
    rates = {}
    for i in range(1, 301):
        s.record(M, "http", 50.0, True, 100.0 * i)
        rates[i // 10] = s.success_rate(M, "http")
    assert rates[5] < 0.5  # not forgotten in an instant
    assert 0.7 < rates[20] < 0.9
    assert rates[30] > 0.9
    assert s.samples(M, "http") == 400  # warm-up counts every outcome, undecayed


def test_silence_forgives_an_old_outage_and_new_failures_count_at_once() -> None:
    s = ProviderStats()
    for i in range(100):
        s.record(M, "http", 5.0, False, float(i))
    assert s.success_rate(M, "http", now_ms=9_000.0) == 0.0  # within a half-life: still judged
    forgiven = s.success_rate(M, "http", now_ms=60_000.0)
    assert forgiven > 0.9  # no traffic for a minute (breaker open, out of a tier)
    s.record(M, "http", 50.0, True, 60_000.0)
    assert s.success_rate(M, "http") >= forgiven  # the record agrees with what was read
    for i in range(5):
        s.record(M, "http", 5.0, False, 60_001.0 + i)
    assert s.success_rate(M, "http") < 0.5  # failing again is noticed at once


def test_success_rate_is_one_without_data_and_counts_recent_failures() -> None:
    s = ProviderStats()
    assert s.success_rate(M, "http") == 1.0
    for i in range(9):
        s.record(M, "http", 50.0, True, float(i))
    s.record(M, "http", 50.0, False, 9.0)
    assert s.success_rate(M, "http") == pytest.approx(0.9, abs=0.01)


def test_failures_do_not_touch_latency_but_timeouts_raise_the_ewma_only() -> None:
    s = ProviderStats()
    for i in range(10):
        s.record(M, "http", 50.0, True, float(i))
    s.record(M, "http", 1.0, False, 10.0)  # a fast 429 says nothing about speed
    assert s.latency_ms(M, "http") == pytest.approx(50.0)
    s.record(M, "http", 5_000.0, False, 11.0, timed_out=True)
    ewma = s.latency_ms(M, "http")
    assert ewma is not None and ewma > 1_000.0
    assert s.percentile(M, "http", 0.99) == 50.0  # hedge delays stay sized on real answers


def test_unknown_method_falls_back_to_the_transport_aggregate_then_none() -> None:
    s = ProviderStats()
    s.record("eth_call", "http", 80.0, True, 0.0)
    s.record("eth_getBalance", "http", 40.0, True, 1.0)
    fallback = s.latency_ms("eth_getLogs", "http")
    assert fallback is not None and 40.0 < fallback < 80.0
    assert s.percentile("eth_getLogs", "http", 1.0) == 80.0
    assert s.latency_ms("eth_getLogs", "ws") is None
    assert s.samples("eth_getLogs", "http") == 0
    assert s.last_sample_ms("eth_call", "http") == 0.0
    assert s.last_sample_ms("eth_getLogs", "http") is None


def test_transports_are_kept_apart_and_unknown_ones_rejected() -> None:
    s = ProviderStats()
    s.record(M, "http", 20.0, True, 0.0)
    s.record(M, "ws", 5.0, True, 0.0)
    assert s.latency_ms(M, "http") == 20.0
    assert s.latency_ms(M, "ws") == 5.0
    with pytest.raises(ValueError, match="transport"):
        s.record(M, "grpc", 1.0, True, 0.0)


def test_methods_per_transport_are_capped_and_the_rest_share_one_key() -> None:
    s = ProviderStats(max_methods=4)
    for i in range(100):
        s.record(f"m{i}", "http", float(i), True, float(i))
    methods = s.snapshot()["http"]["methods"]
    assert len(methods) == 5
    assert set(methods) == {"m0", "m1", "m2", "m3", OTHER_METHODS}
    assert methods[OTHER_METHODS]["samples"] == 96
    assert s.samples("m99", "http") == 96  # an overflowed method reads the shared key
    assert s.snapshot()["http"]["all"]["samples"] == 100


def test_ring_memory_is_bounded() -> None:
    s = LatencyStats(ring_size=16)
    for i in range(10_000):
        s.record(float(i), True, float(i))
    assert s.percentile(0.0) == 10_000.0 - 16
    assert s.samples == 10_000


def test_seed_sets_a_known_benchmark() -> None:
    s = ProviderStats()
    s.seed(M, "http", 75.0, 0.95, 40, now_ms=1_000.0)
    assert s.latency_ms(M, "http") == 75.0
    assert s.success_rate(M, "http") == pytest.approx(0.95)
    assert s.samples(M, "http") == 40
    assert s.last_sample_ms(M, "http") == 1_000.0
    assert s.percentile(M, "http", 0.5) == 75.0
    assert s.latency_ms("eth_call", "http") == 75.0  # the aggregate is seeded too


def test_snapshot_rows_for_the_providers_api() -> None:
    s = ProviderStats()
    for i in range(1, 101):
        s.record(M, "http", float(i), i % 10 != 0, float(i))
    row = s.snapshot()["http"]["methods"][M]
    assert set(row) == {"p50", "p95", "ewma", "success_rate", "samples", "censored"}
    assert row["samples"] == 100
    assert 0.85 < row["success_rate"] < 0.95
    assert row["p50"] == 49.0  # 45th of the 90 answered: 1..99 without multiples of ten
    assert repr(s).startswith("ProviderStats(http: 1 methods")


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        ProviderStats(alpha=0.0)
    with pytest.raises(ValueError):
        ProviderStats(max_methods=0)
    with pytest.raises(ValueError):
        ProviderStats().seed(M, "http", 10.0, 1.5, 10, now_ms=0.0)


def test_a_censored_sample_is_a_lower_bound_on_latency() -> None:
    """An attempt cancelled after 400 ms (its hedge won) took at least 400 ms: the EWMA moves
    up toward it, never down; percentiles (hedge delays) and success rate are untouched."""
    s = ProviderStats()
    for i in range(20):
        s.record(M, "http", 50.0, True, float(i))
    before = s.get(M, "http")
    assert before is not None and before.ewma_ms == pytest.approx(50.0)
    for i in range(5):
        s.censored(M, "http", 400.0, 20.0 + i)
    after = s.get(M, "http")
    assert after is not None
    ewma = after.ewma_ms
    assert ewma is not None and 250.0 < ewma < 400.0
    assert s.percentile(M, "http", 0.99) == 50.0 and s.success_rate(M, "http") == 1.0
    assert s.samples(M, "http") == 20
    s.censored(M, "http", 10.0, 30.0)  # a lower bound below the estimate says nothing
    assert after.ewma_ms == ewma
    assert s.snapshot()["http"]["methods"][M]["censored"] == 6
    assert s.snapshot()["http"]["all"]["censored"] == 6
    s.censored("eth_call", "http", 400.0, 31.0)  # no estimate yet: the bound is the first
    assert s.latency_ms("eth_call", "http") == 400.0 and s.samples("eth_call", "http") == 0
