"""Collector + analyzer on synthetic records and events: every figure checked against a hand count.

No sockets, no sleeps: the collector is fed directly, with a fixed wall-clock origin.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time

import msgspec
import orjson
import pytest

from lasso_rpc.battle.measure.analyzer import analyze
from lasso_rpc.battle.measure.collector import Collector
from lasso_rpc.battle.measure.event_source import event_from_dict
from lasso_rpc.battle.measure.histograms import decode_histogram
from lasso_rpc.battle.records import ChaosRecord, RequestRecord, SubscriptionRecord, SystemSample
from lasso_rpc.observability.events import (
    Attempt,
    BreakerChanged,
    ChaosEvent,
    ProviderHealth,
    RequestFinished,
    SubscriptionFailover,
    event_to_dict,
)

WALL0 = 1_700_000_000.0


def rec(
    intended_s: float,
    latency_ms: float,
    *,
    outcome: str = "ok",
    provider: str | None = "alpha",
    attempts: int = 1,
    error_class: str | None = None,
    hedged: bool = False,
) -> RequestRecord:
    return RequestRecord(
        method="eth_blockNumber",
        transport="http",
        intended_s=intended_s,
        start_s=intended_s,
        end_s=intended_s + latency_ms / 1000.0,
        outcome=outcome,  # type: ignore[arg-type]
        error_class=error_class,
        provider=provider,
        attempts=attempts,
        hedged=hedged,
        failover=attempts > 1,
    )


def fin(
    start_s: float,
    latency_ms: float,
    tries: list[tuple[str, str]],
    *,
    provider: str | None = None,
    status: str = "ok",
    error_class: str | None = None,
    hedged: bool = False,
) -> RequestFinished:
    """A ``request.finished`` for a request that started ``start_s`` after the scenario start."""
    if provider is None and status == "ok" and tries:
        provider = tries[-1][0]
    return RequestFinished(
        ts=WALL0 + start_s + latency_ms / 1000.0,
        request_id="r",
        profile="local",
        chain="ethereum",
        method="eth_blockNumber",
        strategy="fastest",
        transport="http",
        status=status,
        error_class=error_class,
        latency_ms=latency_ms,
        attempts=tuple(Attempt(p, o, 1.0) for p, o in tries),
        hedged=hedged,
        failover=len(tries) > 1
        and any(o not in ("ok", "cancelled", "client_error") for _, o in tries),
        provider=provider,
    )


def collector(**kw: object) -> Collector:
    return Collector(start=0.0, wall_start=WALL0, **kw)  # type: ignore[arg-type]


def rank(sorted_values: list[float], p: float) -> float:
    """The percentile HDR reports: the value at rank round(p/100 * n) (nearest rank)."""
    n = len(sorted_values)
    return sorted_values[max(1, int(p / 100 * n + 0.5)) - 1]


def close3(actual: float, expected: float) -> bool:
    """Equal to 3 significant digits (HDR, 3 digits) after rounding to whole µs."""
    return abs(actual - expected) <= 1e-3 * expected + 0.0005


# -- client view ----------------------------------------------------------------------------


def test_latency_percentiles_counts_and_rates_match_a_sorted_list() -> None:
    rng = random.Random(7)
    c = collector()
    records = []
    for i in range(2000):
        lat = min(50_000.0, 1.0 + rng.lognormvariate(3.0, 1.2))
        roll = rng.random()
        outcome = "error" if roll < 0.03 else "client_error" if roll < 0.05 else "ok"
        err = ("timeout" if i % 2 else "-32603") if outcome == "error" else None
        r = rec(i * 0.01, lat, outcome=outcome, error_class=err)
        records.append(r)
        c.record(r)
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=20.0)
    s = a.summary
    lats = sorted(r.latency_ms for r in records)
    errors = sum(r.outcome == "error" for r in records)
    client_errors = sum(r.outcome == "client_error" for r in records)
    assert (s.requests, s.errors, s.client_errors) == (2000, errors, client_errors)
    assert s.ok == 2000 - errors - client_errors
    assert s.success_rate == pytest.approx((2000 - errors) / 2000)
    assert s.throughput_rps == pytest.approx(100.0)
    for name, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        got = getattr(s.latency_ms, name)
        assert close3(got, rank(lats, p)), (name, got, rank(lats, p))
    assert s.latency_ms.max == pytest.approx(lats[-1])
    assert s.latency_ms.mean == pytest.approx(sum(lats) / len(lats))
    by_class = {
        k: sum(1 for r in records if r.outcome == "error" and r.error_class == k)
        for k in ("timeout", "-32603")
    }
    assert dict(a.errors_by_class) == {k: v for k, v in by_class.items() if v}
    # per-bucket figures: 100 requests per 1 s bucket
    ts = a.timeseries
    assert ts.t == tuple(float(i) for i in range(20))
    assert ts.requests == (100,) * 20
    assert ts.throughput_rps == (100.0,) * 20
    for i in range(20):
        in_bucket = [r for r in records if i <= r.intended_s < i + 1]
        bl = sorted(r.latency_ms for r in in_bucket)
        assert ts.errors[i] == sum(r.outcome == "error" for r in in_bucket)
        assert close3(ts.p50_ms[i] or 0, rank(bl, 50))
        assert close3(ts.p95_ms[i] or 0, rank(bl, 95))
        assert close3(ts.p99_ms[i] or 0, rank(bl, 99))
    # the report's histogram is the overall client latency
    assert decode_histogram(a.histogram).get_total_count() == 2000


def test_empty_buckets_have_no_percentiles_and_run_to_the_duration() -> None:
    c = collector()
    c.record(rec(0.5, 10.0))
    c.record(rec(2.5, 30.0))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=5.0)
    ts = a.timeseries
    assert ts.requests == (1, 0, 1, 0, 0)
    assert ts.p50_ms[1] is None and ts.p95_ms[3] is None and ts.p99_ms[4] is None
    assert close3(ts.p95_ms[2] or 0, 30.0)


def test_heuristic_count_is_reported_apart_from_ground_truth() -> None:
    c = collector()
    for i in range(90):
        c.record(rec(i * 0.01, 10.0))
    for i in range(10):
        c.record(rec(1 + i * 0.01, 100.0))  # mean 19 ms: these 10 are > 2 x mean
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=2.0)
    assert a.summary.failover_heuristic_count == 10
    assert a.summary.failovers == 0  # no router event had more than one attempt
    assert a.summary.failovers_client_view == 0


def test_raw_records_are_kept_only_when_asked() -> None:
    plain, raw = collector(), collector(keep_raw=True)
    records = [rec(i * 0.1, 5.0 + i) for i in range(10)] + [rec(1.5, 500.0)]
    for r in records:
        plain.record(r)
        raw.record(r)
        raw.on_event(fin(r.intended_s, r.latency_ms, [("alpha", "ok")]))
    assert plain.snapshot().raw_records == ()
    snap = raw.snapshot()
    assert snap.raw_records == tuple(records)
    assert len(snap.raw_events) == 11
    a = analyze(snap, chaos=[], subscriptions=None, duration_s=2.0)
    mean = sum(r.latency_ms for r in records) / len(records)
    assert a.summary.failover_heuristic_count == sum(r.latency_ms > 2 * mean for r in records)


# -- router view ----------------------------------------------------------------------------


def test_failovers_are_exactly_the_events_the_router_flagged() -> None:
    rng = random.Random(3)
    c = collector()
    events = []
    for i in range(1500):
        n = rng.choice([1, 1, 1, 2, 3])
        tries = [(p, "provider") for p in ("alpha", "beta")[: n - 1]] + [("gamma", "ok")]
        ev = fin(i * 0.01, rng.uniform(2.0, 400.0), tries, hedged=(n > 1 and i % 7 == 0))
        events.append(ev)
        c.on_event(ev)
        c.record(rec(i * 0.01, ev.latency_ms, provider="gamma", attempts=n))
    # a local answer (no upstream attempt) is not a failover
    c.on_event(fin(0.0, 0.1, []))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=15.0)
    failed_over = [e for e in events if len(e.attempts) > 1]
    assert a.summary.failovers == len(failed_over)
    assert a.summary.failovers_client_view == len(failed_over)
    assert a.summary.hedged == sum(e.hedged for e in events)
    assert a.summary.router_requests == 1501
    for i in range(15):
        in_bucket = [e for e in failed_over if i <= e.ts - WALL0 - e.latency_ms / 1000 < i + 1]
        assert a.timeseries.failovers[i] == len(in_bucket)
    fl = sorted(e.latency_ms for e in failed_over)
    f = a.summary.failover_latency_ms
    assert close3(f.p50, rank(fl, 50)) and close3(f.p95, rank(fl, 95))
    assert close3(f.p99, rank(fl, 99))
    assert f.max == pytest.approx(fl[-1])
    # attempt outcomes per provider
    assert a.providers["alpha"].attempt_errors == len(failed_over)
    assert a.providers["beta"].attempt_errors == sum(len(e.attempts) == 3 for e in events)
    assert a.providers["gamma"].attempt_errors == 0
    assert a.providers["gamma"].requests == 1500 and a.providers["gamma"].share == 1.0


def test_no_failover_means_zero_failover_latency() -> None:
    c = collector()
    c.on_event(fin(0.1, 20.0, [("alpha", "ok")]))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=1.0)
    f = a.summary.failover_latency_ms
    assert (a.summary.failovers, f.p50, f.p95, f.p99, f.max) == (0, 0.0, 0.0, 0.0, 0.0)


def test_provider_share_per_bucket_from_the_router_view() -> None:
    c = collector()
    for p in ("alpha", "alpha", "alpha", "beta"):
        c.on_event(fin(0.2, 5.0, [(p, "ok")]))
    c.on_event(fin(1.2, 5.0, [("alpha", "rate_limited"), ("beta", "ok")]))
    c.on_event(fin(1.3, 5.0, [("beta", "ok")]))
    c.on_event(fin(1.4, 5.0, [("alpha", "provider")], status="error", error_class="upstream"))
    c.on_event(fin(3.5, 5.0, [("gamma", "cancelled"), ("alpha", "ok")], hedged=True))
    # the client view disagrees on purpose: the router's ``provider`` is ground truth
    c.record(rec(0.2, 5.0, provider="gamma"))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=4.0)
    ts = a.timeseries
    assert ts.provider_share_source == "router"
    assert ts.provider_share == {
        "alpha": (0.75, 0.0, 0.0, 1.0),
        "beta": (0.25, 1.0, 0.0, 0.0),
        "gamma": (0.0, 0.0, 0.0, 0.0),
    }
    assert a.providers["alpha"].requests == 4 and a.providers["alpha"].share == pytest.approx(4 / 7)
    assert a.providers["beta"].requests == 3
    assert a.providers["alpha"].attempt_errors == 2  # rate_limited + provider
    assert a.providers["alpha"].attempts == 6
    assert a.providers["gamma"].attempt_errors == 0  # a cancelled hedge is no provider error
    assert dict(a.router_errors_by_class) == {"upstream": 1}
    assert a.summary.router_errors == 1 and a.summary.hedged == 1


def test_provider_share_falls_back_to_the_client_view() -> None:
    c = collector()
    c.record(rec(0.1, 5.0, provider="alpha"))
    c.record(rec(0.2, 5.0, provider="beta"))
    c.record(rec(0.3, 5.0, provider="beta"))
    c.record(rec(1.1, 5.0, provider=None, outcome="error", error_class="timeout"))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=2.0)
    assert a.timeseries.provider_share_source == "client"
    assert a.timeseries.provider_share == {"alpha": (1 / 3, 0.0), "beta": (2 / 3, 0.0)}


# -- recovery -------------------------------------------------------------------------------


def outage_collector() -> Collector:
    """10 req/s for 30 s; 10 ms normally; 50 % errors in 10..15 s; 100 ms in 15..17 s; no
    traffic at all in bucket 18."""
    c = collector()
    for b in range(30):
        if b == 18:
            continue
        for k in range(10):
            t = b + k / 10
            if 10 <= b < 15 and k % 2:
                c.record(rec(t, 5.0, outcome="error", error_class="no_provider"))
            elif b in (15, 16):
                c.record(rec(t, 100.0))
            else:
                c.record(rec(t, 10.0 + k * 0.1))
    return c


def test_recovery_after_an_outage_follows_the_documented_rule() -> None:
    chaos = [
        ChaosRecord("kill_provider", "alpha", 10.0, 15.0),
        ChaosRecord("inject_latency", "beta", 25.5, None, {"latency_ms": 5}),
    ]
    a = analyze(outage_collector().snapshot(), chaos=chaos, subscriptions=None, duration_s=30.0)
    assert a.baseline_error_rate == 0.0
    assert close3(a.baseline_p95_ms or 0, 10.9)
    kill, lat = a.chaos
    # buckets 17, (18 empty: skipped), 19, 20 are the first 3 healthy ones after 10 s
    assert kill.recovery_s == pytest.approx(7.0)
    assert kill.recovery_after_revert_s == pytest.approx(2.0)
    # no effect: recovered at once; no revert → no after-revert figure
    assert lat.recovery_s == 0.0 and lat.recovery_after_revert_s is None
    d = a.to_dict()
    assert d["chaos"][0] == {
        "action": "kill_provider",
        "target": "alpha",
        "at_s": 10.0,
        "end_s": 15.0,
        "details": {},
        "recovery_s": pytest.approx(7.0),
        "recovery_after_revert_s": pytest.approx(2.0),
        "target_share": None,  # no router telemetry in this run
        "target_first_share": None,
    }
    assert d["chaos"][1]["details"] == {"latency_ms": 5}


def test_errors_within_one_percent_of_baseline_count_as_recovered() -> None:
    c = collector()
    for b in range(10):
        for k in range(100):
            bad = (b < 3 and k < 2) or (b in (3, 4) and k < 50) or (b >= 5 and k < 3)
            c.record(rec(b + k / 100, 10.0, outcome="error" if bad else "ok"))
    chaos = [ChaosRecord("error_rate", "alpha", 3.0, None, {"p": 0.5})]
    a = analyze(c.snapshot(), chaos=chaos, subscriptions=None, duration_s=10.0)
    assert a.baseline_error_rate == pytest.approx(0.02)
    assert a.chaos[0].recovery_s == pytest.approx(2.0)  # 3 % ≤ 2 % + 1 %


def test_no_recovery_is_none() -> None:
    c = collector()
    for b in range(10):
        for k in range(10):
            bad = b >= 4 and k < 5
            c.record(rec(b + k / 10, 10.0, outcome="error" if bad else "ok"))
    chaos = [ChaosRecord("blackhole", "alpha", 4.0, 9.0)]
    a = analyze(c.snapshot(), chaos=chaos, subscriptions=None, duration_s=10.0)
    assert a.chaos[0].recovery_s is None
    assert a.chaos[0].recovery_after_revert_s is None
    assert a.to_dict()["chaos"][0]["recovery_s"] is None


# -- timelines, system, websockets ------------------------------------------------------------


def test_breaker_health_subscription_and_chaos_timelines() -> None:
    c = collector()
    c.on_event(
        BreakerChanged(
            ts=WALL0 + 3.25,
            chain="ethereum",
            provider="alpha",
            transport="http",
            from_state="closed",
            to_state="open",
            reason="5 consecutive failures",
        )
    )
    c.on_event(ProviderHealth(ts=WALL0 + 4, chain="ethereum", provider="beta", head=10, lag=2, cordoned=False))  # fmt: skip
    c.on_event(
        SubscriptionFailover(
            ts=WALL0 + 5,
            chain="ethereum",
            subscription="newHeads",
            from_provider="alpha",
            to_provider="beta",
            backfilled=2,
            gap=False,
        )
    )
    c.on_event(ChaosEvent(ts=WALL0 + 2, action="kill_provider", target="alpha"))
    c.on_event(ChaosEvent(ts=WALL0 + 6, action="kill_provider", target="alpha", reverted=True))
    snap = c.snapshot()
    assert [(h.t_s, h.provider, h.lag) for h in snap.health] == [(4.0, "beta", 2)]
    assert [(s.t_s, s.to_provider, s.backfilled) for s in snap.subscription_failovers] == [
        (5.0, "beta", 2)
    ]
    assert [(m.t_s, m.reverted) for m in snap.chaos_marks] == [(2.0, False), (6.0, True)]
    a = analyze(snap, chaos=[], subscriptions=None, duration_s=10.0)
    assert a.to_dict()["breakers"] == [
        {
            "t_s": 3.25,
            "provider": "alpha",
            "from": "closed",
            "to": "open",
            "reason": "5 consecutive failures",
            "transport": "http",
        }
    ]


def test_collect_names_select_what_is_kept() -> None:
    with pytest.raises(ValueError, match="unknown collect names \\['latency'\\]"):
        collector(collect={"requests", "latency"})
    c = collector(collect={"breakers"})
    c.on_event(fin(0.1, 5.0, [("alpha", "ok")]))
    c.record(rec(0.1, 5.0))
    c.on_event(ProviderHealth(ts=WALL0 + 1, chain="ethereum", provider="beta", head=1, lag=0, cordoned=False))  # fmt: skip
    c.on_event(
        BreakerChanged(
            ts=WALL0 + 1,
            chain="ethereum",
            provider="alpha",
            transport="http",
            from_state="closed",
            to_state="open",
            reason="x",
        )
    )
    snap = c.snapshot()
    assert (snap.router_requests, snap.client_requests, len(snap.health)) == (0, 0, 0)
    assert len(snap.breakers) == 1
    assert snap.collected == frozenset({"breakers"})


def test_system_and_websocket_summaries() -> None:
    c = collector()
    sample = c.sample_once(t_s=0.5)  # our own process: the in-process router's pid
    assert c.router_pid == os.getpid()
    assert sample is not None and sample.rss_mb > 1
    samples = tuple(SystemSample(float(i), 100.0 + i, 10.0 * (i % 3)) for i in range(20))
    snap = dataclasses.replace(c.snapshot(), system=samples)
    subs = [
        SubscriptionRecord(0, "newHeads", 100, 2, 1, 0, connected_s=9.0, duration_s=10.0),
        SubscriptionRecord(1, "logs", 50, 0, 3, 1, connected_s=10.0, duration_s=10.0),
    ]
    a = analyze(snap, chaos=[], subscriptions=subs, duration_s=20.0)
    s = a.summary
    assert s.router_rss_mb_max == 119.0
    assert s.router_rss_mb_mean == pytest.approx(109.5)
    assert s.router_cpu_pct_mean == pytest.approx(sum(10.0 * (i % 3) for i in range(20)) / 20)
    assert s.router_rss_growth_pct == pytest.approx((118.5 - 100.5) / 100.5 * 100)
    assert s.ws is not None
    assert (s.ws.clients, s.ws.events, s.ws.gaps, s.ws.duplicates, s.ws.reorgs) == (2, 150, 2, 4, 1)
    assert s.ws.uptime == pytest.approx(0.95)
    empty = analyze(collector().snapshot(), chaos=[], subscriptions=[], duration_s=1.0)
    assert empty.summary.ws is None and empty.summary.router_rss_mb_max is None
    assert empty.to_dict()["summary"]["ws"] is None


# -- plumbing -------------------------------------------------------------------------------


def test_stream_frames_decode_to_the_same_counts_as_bus_events() -> None:
    bus_view, stream_view = collector(), collector()
    evs = [
        fin(0.1, 5.0, [("alpha", "ok")]),
        fin(0.2, 9.0, [("alpha", "provider"), ("beta", "ok")], hedged=True),
        fin(1.1, 2.0, [("beta", "provider")], status="error", error_class="upstream"),
        ChaosEvent(ts=WALL0 + 1, action="drop_websockets", target=None, reverted=True),
    ]
    for ev in evs:
        bus_view.on_event(ev)
        decoded = event_from_dict(orjson.loads(orjson.dumps(event_to_dict(ev), default=str)))
        assert decoded is not None
        stream_view.on_event(decoded)
    assert event_from_dict({"type": "config.reloaded", "ts": 1.0, "ok": True}) is None
    a, b = bus_view.snapshot(), stream_view.snapshot()
    assert a.router_buckets == b.router_buckets
    assert a.chaos_marks == b.chaos_marks and b.chaos_marks[0].reverted


def test_old_buckets_are_compacted_and_late_records_still_count() -> None:
    c = collector()
    for b in range(50):
        c.record(rec(b + 0.5, 10.0))
    c.record(rec(2.5, 20.0))  # arrives late, for a long-closed bucket
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=50.0)
    assert a.timeseries.requests[2] == 2
    assert close3(a.timeseries.p99_ms[2] or 0, 20.0)
    assert sum(a.timeseries.requests) == 51


def test_event_times_map_to_scenario_time_through_the_wall_clock() -> None:
    c = Collector(start=time.monotonic() - 5.0)  # the scenario started 5 s ago
    c.on_event(msgspec.structs.replace(fin(0.0, 0.0, [("alpha", "ok")]), ts=time.time()))
    buckets = c.snapshot().router_buckets
    assert len(buckets) in (5, 6) and buckets[-1].requests == 1


def test_to_dict_has_the_report_structure_and_is_json() -> None:
    c = outage_collector()
    c.on_event(fin(1.0, 5.0, [("alpha", "provider"), ("beta", "ok")]))
    a = analyze(c.snapshot(), chaos=[ChaosRecord("kill_provider", "alpha", 10.0, 15.0)],
                subscriptions=[SubscriptionRecord(0, "newHeads", 1, 0, 0, 0, 1.0, 1.0)],
                duration_s=30.0)  # fmt: skip
    d = a.to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d) >= {"summary", "chaos", "timeseries", "breakers", "providers",
                      "errors_by_class", "system", "histogram"}  # fmt: skip
    s = d["summary"]
    assert set(s) >= {
        "requests", "ok", "errors", "client_errors", "success_rate", "throughput_rps",
        "latency_ms", "failovers", "failovers_client_view", "failover_heuristic_count",
        "failover_latency_ms", "hedged", "router_rss_mb_max", "router_rss_mb_mean",
        "router_cpu_pct_mean", "ws",
    }  # fmt: skip
    assert set(s["latency_ms"]) == {"p50", "p90", "p95", "p99", "p999", "max", "mean"}
    assert set(s["failover_latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert set(s["ws"]) == {
        "clients", "events", "gaps", "duplicates", "reorgs", "uptime", "truth", "gaps_in_stream",
        "expected_blocks", "max_stall_s", "stalled_clients", "connected",
    }  # fmt: skip
    assert s["ws"]["truth"] is None and s["ws"]["uptime"] == s["ws"]["connected"]
    assert isinstance(s["requests"], int) and isinstance(s["failovers"], int)
    assert set(d["chaos"][0]) == {"action", "target", "at_s", "end_s", "details", "recovery_s",
                                  "recovery_after_revert_s", "target_share",
                                  "target_first_share"}  # fmt: skip
    ts = d["timeseries"]
    n = len(ts["t"])
    assert n == 30 and ts["bucket_s"] == 1.0
    keys = ("requests", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "failovers",
            "hedged")  # fmt: skip
    for key in keys:
        assert isinstance(ts[key], list) and len(ts[key]) == n, key
    assert all(len(v) == n for v in ts["provider_share"].values())
    assert set(d["providers"]["beta"]) >= {"requests", "share", "attempt_errors"}
    assert d["errors_by_class"] == {"no_provider": 25}
    assert math.isclose(sum(v["share"] for v in d["providers"].values()), 1.0)


def test_recovery_to_a_slower_provider_counts_once_latency_settles() -> None:
    """Baseline p95 ~50 ms; degraded at 5 s; traffic settles on a 100 ms provider at 8 s."""
    c = collector()
    for b in range(15):
        lat = 50.0 if b < 5 else (400.0 if b < 8 else 100.0)
        for k in range(20):
            c.record(rec(b + k / 20, lat + k * 0.1))
    chaos = [ChaosRecord("degrade_provider", "alpha", 5.0, None, {})]
    a = analyze(c.snapshot(), chaos=chaos, subscriptions=None, duration_s=15.0)
    assert a.chaos[0].recovery_s == pytest.approx(3.0)
