"""Battle truth, piece by piece (no sockets, no sleeps): a feed judged against the chain, the
router's event stream numbered, telemetry loss and generator lag making a run invalid, the
independent upstream view, the process-figure refusal, the time series' last bucket."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from lasso_rpc.battle import Scenario, Workload
from lasso_rpc.battle.load.feed_truth import ChainTruth, FeedLog, judge_feed
from lasso_rpc.battle.measure.analyzer import analyze
from lasso_rpc.battle.measure.collector import Collector
from lasso_rpc.battle.measure.event_source import EventStream as Follower
from lasso_rpc.battle.measure.upstream_view import ProviderCalls, provider_calls, upstream_view
from lasso_rpc.battle.measure.validity import LoadSummary, Telemetry, judge_validity
from lasso_rpc.battle.providers.spec import MockFleetSpec
from lasso_rpc.battle.records import SystemSample
from lasso_rpc.observability.events import ChaosEvent, EventBus, ProviderHealth
from tests.unit.test_analyzer import WALL0, fin, rec

# --------------------------------------------------------------------------- feed truth


def chain(n: int, every: float = 1.0, t0: float = 100.0) -> dict[int, float]:
    """Blocks 1..n mined every ``every`` s from ``t0``."""
    return {i: t0 + (i - 1) * every for i in range(1, n + 1)}


def test_a_feed_that_stops_counts_every_block_it_missed() -> None:
    mined = chain(20)  # blocks 1..20 at 100..119 s
    log = FeedLog()
    log.subscribed(100.5)
    for i in range(2, 9):  # got 2..8 right away, then nothing
        log.got(i, mined[i] + 0.01)
    f = judge_feed(log, mined, end=120.0)
    assert f is not None
    # expected: mined after the subscription, up to 1 s before the end: 2..20
    assert f.expected == 19 and f.missed == 12  # 9..20
    assert f.max_stall_s == pytest.approx(12.0)  # block 9 (108 s) waited until the end
    assert f.behind_s == pytest.approx(12.0)
    # down from 109 s (block 9 one second late) to 120 s: 11 s of 19.5 s subscribed
    assert f.uptime == pytest.approx(1 - 11.0 / 19.5)
    # the old count looked between deliveries only: no jump, no gap
    assert [list(r) for r in log.ranges] == [[2, 8]]


def test_a_healthy_feed_and_one_that_catches_up_late() -> None:
    mined = chain(10)
    healthy, late = FeedLog(), FeedLog()
    for log in (healthy, late):
        log.subscribed(99.9)
    for i in range(1, 11):
        healthy.got(i, mined[i] + 0.005)
    for i in range(1, 5):
        late.got(i, mined[i] + 0.005)
    for i in range(5, 11):  # 5..7 back-filled at 107.5 s, then live
        late.got(i, max(mined[i], 107.5) + 0.005)
    h = judge_feed(healthy, mined, end=110.0)
    lt = judge_feed(late, mined, end=110.0)
    assert h is not None and lt is not None
    assert (h.missed, h.max_stall_s, h.behind_s, h.uptime) == (0, 0.005, 0.0, 1.0)
    assert lt.missed == 0 and lt.max_stall_s == pytest.approx(3.505)
    # late from 105 s (block 5 one second old) to 107.505 s
    assert lt.uptime == pytest.approx(1 - 2.505 / 10.1)


def test_a_block_mined_right_after_the_confirmation_is_owed_and_a_dead_feed_misses_all() -> None:
    mined = {0: 99.99, 1: 100.02, 2: 100.6, 3: 101.0, 4: 101.4}
    raced, dead = FeedLog(), FeedLog()
    for log in (raced, dead):
        log.subscribed(100.0)
    for n in (2, 3, 4):  # block 1 came 20 ms after the confirmation, while the router subscribed
        raced.got(n, mined[n] + 0.01)
    f = judge_feed(raced, mined, end=103.0)
    g = judge_feed(dead, mined, end=103.0)
    assert f is not None and g is not None
    assert (f.expected, f.missed) == (4, 1)  # block 0, mined before it, is owed to no one
    assert (g.expected, g.missed, g.behind_s) == (4, 4, pytest.approx(2.98))
    # A polled truth saw block 1 in an answer to a poll sent 0.25 s before the one that showed
    # it: it may have been mined before the confirmation, so it is owed only past that doubt.
    f = judge_feed(raced, mined, end=103.0, doubt_s=0.25)
    assert f is not None and (f.expected, f.missed) == (3, 0)


def test_a_client_whose_subscription_was_never_confirmed_missed_everything() -> None:
    assert judge_feed(FeedLog(), chain(3), end=200.0) is None  # it never even tried
    refused = FeedLog()
    refused.trying(99.0)
    f = judge_feed(refused, chain(10), end=110.0)
    assert f is not None and (f.expected, f.missed, f.uptime) == (10, 10, pytest.approx(2 / 11))


def test_polled_truth_fills_the_numbers_a_poll_skipped_and_ignores_reorgs() -> None:
    truth = ChainTruth("poll")
    truth.saw(10, 1.0)
    truth.saw(13, 2.0)  # 11, 12 were mined between two polls
    truth.saw(13, 3.0)
    truth.saw(12, 4.0)  # a reorg re-mines a number: it existed already
    assert truth.mined == {10: 1.0, 11: 2.0, 12: 2.0, 13: 2.0} and truth.top == 13


def test_logs_feeds_only_owe_blocks_with_a_matching_log() -> None:
    mined = chain(10)
    log = FeedLog()
    log.subscribed(99.0)
    log.got(2, mined[2])
    f = judge_feed(log, mined, end=110.0, only=lambda n: n in (2, 6))
    assert f is not None and (f.expected, f.missed) == (2, 1)


# --------------------------------------------------------------------------- event stream


async def test_the_bus_stream_numbers_what_it_lets_in_and_drops_the_oldest() -> None:
    bus = EventBus()
    health = ProviderHealth(ts=1.0, chain="c", provider="p", head=1, lag=0, cordoned=False)
    chaos = ChaosEvent(ts=1.0, action="kill_provider", target="p")
    with bus.stream(3, accept=lambda ev: isinstance(ev, ProviderHealth)) as s:
        for _ in range(5):
            bus.publish(health)
            bus.publish(chaos)  # filtered out: neither numbered nor queued
        got = [await s.get_numbered() for _ in range(3)]
        assert [n for n, _ in got] == [3, 4, 5] and s.dropped == 2
        assert all(ev is health for _, ev in got)


def test_the_collector_counts_events_lost_from_gaps_in_seq() -> None:
    seen: list[object] = []
    f = Follower("ws://127.0.0.1:9/api/events", seen.append, types=["provider.health"])
    frame = {"type": "provider.health", "ts": 1.0, "chain": "c", "provider": "p", "head": 1,
             "lag": 0, "cordoned": False}  # fmt: skip
    for seq in (1, 2, 5, 6, 9):
        f._on_frame(orjson.dumps({**frame, "seq": seq}))
    f._on_frame(b"{not json")
    assert (f.lost, f.frames, f.decode_errors, len(seen)) == (4, 6, 1, 5)


# --------------------------------------------------------------------------- validity


def test_a_run_with_lost_events_or_a_lagging_generator_is_invalid() -> None:
    ok = Telemetry("stream", 0, 0, 0, 0, router_requests=100, answered_by_router=100)
    load = LoadSummary(0, "loadgen", "http", 100, 100, 0, 0, 2.0, 5.0)
    assert judge_validity(telemetry=ok, loads=[load], upstream=None).valid
    lossy = Telemetry("stream", 7, 1, 2, 3, router_requests=90, answered_by_router=100)
    lagging = LoadSummary(0, "loadgen", "http", 100, 100, 0, 0, 180.0, 300.0)
    v = judge_validity(telemetry=lossy, loads=[lagging], upstream=None, max_generator_lag_ms=100)
    assert not v.valid
    text = "\n".join(v.reasons)
    for phrase in ("dropped 7 events", "reconnected 1 times", "2 event frames",
                   "3 router events fell outside", "reported 90 requests but answered 100",
                   "p99 180.0 ms > 100 ms"):  # fmt: skip
        assert phrase in text
    sidecar = LoadSummary(0, "sidecar", "viem", 10, 10, 0, 0, None, 120.0)
    v = judge_validity(telemetry=None, loads=[sidecar], upstream=None, max_generator_lag_ms=100)
    assert not v.valid and "max 120.0 ms" in v.reasons[0]
    deaf = Telemetry("none", 0, 0, 0, 0, router_requests=0, answered_by_router=12)
    assert judge_validity(telemetry=deaf, loads=[], upstream=None).reasons == (
        "the router reported 0 requests but answered 12: its ground truth is incomplete",
    )


def test_a_killed_router_node_may_take_its_last_few_events_with_it() -> None:
    short = Telemetry("stream", 0, 0, 0, 0, router_requests=995, answered_by_router=1000)
    assert not judge_validity(telemetry=short, loads=[], upstream=None).valid
    assert judge_validity(telemetry=short, loads=[], upstream=None, killed_router_nodes=1).valid
    lost = Telemetry("stream", 0, 0, 0, 0, router_requests=900, answered_by_router=1000)
    v = judge_validity(telemetry=lost, loads=[], upstream=None, killed_router_nodes=1)
    assert not v.valid and "reported 900 requests but answered 1000" in v.reasons[0]


def test_the_upstream_view_catches_calls_the_router_did_not_report() -> None:
    before = ({"eth_blockNumber": 3, "eth_chainId": 1}, {"eth_blockNumber": 2})
    after = ({"eth_blockNumber": 60, "eth_chainId": 1, "eth_call": 9}, {"eth_blockNumber": 12})
    alpha = provider_calls(before, after)
    assert alpha == ProviderCalls({"eth_blockNumber": 57, "eth_call": 9}, {"eth_blockNumber": 10})
    beta = ProviderCalls({"eth_blockNumber": 20}, {})
    honest = upstream_view(
        methods={"eth_blockNumber"},
        received={"alpha": alpha, "beta": beta},
        attempts_by_method={"alpha": {"eth_blockNumber": 50}, "beta": {"eth_blockNumber": 25}},
        requests=60,
    )
    assert honest.received == {"alpha": 47, "beta": 20} and honest.consistent
    assert honest.to_dict()["calls_per_request"] == pytest.approx(67 / 60, abs=1e-4)
    hiding = upstream_view(
        methods={"eth_blockNumber"},
        received={"alpha": alpha, "beta": beta},
        attempts_by_method={"alpha": {"eth_blockNumber": 40}, "beta": {"eth_blockNumber": 20}},
        requests=60,
        unanswered=3,
    )
    assert hiding.unclaimed == 7 and not hiding.consistent
    v = judge_validity(telemetry=None, loads=[], upstream=hiding)
    assert not v.valid and "received 7 calls the router does not report" in v.reasons[0]


def test_analyze_marks_the_run_and_carries_the_figures() -> None:
    c = Collector(start=0.0, wall_start=WALL0)
    for i in range(20):
        c.record(rec(i / 10, 10.0))
        c.on_event(fin(i / 10, 10.0, [("alpha", "ok")], hedged=i % 4 == 0))
    c.record(rec(2.0, 10.0, outcome="error", error_class="timeout"))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=2.5, load_s=2.0)
    assert a.validity is not None and a.validity.valid
    assert a.telemetry is not None
    assert (a.telemetry.router_requests, a.telemetry.answered_by_router) == (20, 20)
    assert a.timeseries.hedged == (3, 2, 0)
    d = a.to_dict()
    assert d["validity"]["valid"] and d["telemetry"]["source"] == "none"


# --------------------------------------------------------------------------- time series


def test_the_last_bucket_does_not_drop_to_zero() -> None:
    """30 s of 10 req/s; the run (with its drain) took 30.4 s: the series covers the load
    window, so no bucket of the drain shows 0 req/s."""
    c = Collector(start=0.0, wall_start=WALL0)
    for i in range(300):
        c.record(rec(i / 10, 5.0))
        # the router's clock puts the last few a little later: past the window
        c.on_event(fin(i / 10 + (0.3 if i > 296 else 0.0), 5.0, [("alpha", "ok")]))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=30.4, load_s=30.0)
    assert len(a.timeseries.t) == 30 and set(a.timeseries.throughput_rps) == {10.0}
    assert a.summary.throughput_rps == 10.0
    assert len(a.timeseries.provider_share["alpha"]) == 30  # folded into the last bucket
    assert a.providers["alpha"].requests == 300
    # a load window ending mid-bucket: the last bucket's rate is over its own 0.5 s
    c = Collector(start=0.0, wall_start=WALL0)
    for i in range(295):
        c.record(rec(i / 10, 5.0))
    a = analyze(c.snapshot(), chaos=[], subscriptions=None, duration_s=30.2, load_s=29.5)
    assert len(a.timeseries.t) == 30 and a.timeseries.throughput_rps[-1] == 10.0


# --------------------------------------------------------------------------- process figures


def test_rss_slos_are_refused_for_an_in_process_router() -> None:
    sc = (
        Scenario("rss")
        .providers(MockFleetSpec.of(alpha={}))
        .workload(Workload.constant(10, 1.0))
        .slo(success_rate=0.9, max_rss_mb=500)
    )
    with pytest.raises(ValueError, match="max_rss_mb measure the router's own process"):
        sc.validate()
    sc.router(process=True).validate()  # in a process of its own: measured for the router alone


def test_in_process_system_samples_are_not_the_routers() -> None:
    c = Collector(start=0.0, wall_start=WALL0)
    c.record(rec(0.1, 5.0))
    snap = c.snapshot()
    snap = dataclasses.replace(snap, system=(SystemSample(0.0, 300.0, 50.0),) * 3)
    shared = analyze(snap, chaos=[], subscriptions=None, duration_s=1.0, own_process=False)
    own = analyze(snap, chaos=[], subscriptions=None, duration_s=1.0)
    assert shared.summary.router_rss_mb_max is None and shared.process_scope == "battle"
    assert shared.to_dict()["system_scope"] == "battle" and len(shared.system) == 3
    assert own.summary.router_rss_mb_max == 300.0


def test_the_router_process_is_sampled_with_its_workers() -> None:
    """``serve --workers N`` is a process tree: RSS and CPU are summed over it."""
    import os
    import subprocess
    import sys

    import psutil

    from lasso_rpc.battle.measure.sampler import SystemSampler

    code = "import sys; b = b'x' * 60 * 2**20; print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        sampler = SystemSampler(os.getpid())
        own = psutil.Process().memory_info().rss / 2**20
        sample = sampler.sample(0.0)
        assert sample is not None and sample.rss_mb >= own + 55
    finally:
        child.kill()
        child.wait()
