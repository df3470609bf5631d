"""SLO verdicts: every key passing and failing, unknown keys, figures the run could not measure."""

from __future__ import annotations

import dataclasses

import pytest

from lasso_rpc.battle.measure.analysis import Analysis
from lasso_rpc.battle.measure.analyzer import analyze
from lasso_rpc.battle.measure.collector import Collector
from lasso_rpc.battle.measure.slo import SLO, SLO_KEYS, SloVerdict, all_passed
from lasso_rpc.battle.measure.staleness import TruthFigures
from lasso_rpc.battle.records import ChaosRecord, SubscriptionRecord, SystemSample
from tests.unit.test_analyzer import WALL0, fin, rec


def run_analysis(
    *,
    chaos: bool = True,
    subscriptions: bool = True,
    system: bool = True,
    failovers: bool = True,
    requests: bool = True,
) -> Analysis:
    """10 s at 10 req/s; latencies are 1..100 ms, each once; the two requests at k=0,1 of
    bucket 5 fail (chaos at 5 s) so recovery comes 1 s later; failovers take 50, 80, 120 ms."""
    c = Collector(start=0.0, wall_start=WALL0)
    for b in range(10 if requests else 0):
        for k in range(10):
            bad = b == 5 and k < 2
            c.record(rec(b + k / 10, 10 * k + b + 1.0, outcome="error" if bad else "ok"))
    for i, lat in enumerate((50.0, 80.0, 120.0) if failovers else ()):
        c.on_event(fin(i + 0.5, lat, [("alpha", "provider"), ("beta", "ok")]))
    c.on_event(fin(0.1, 30.0, [("beta", "ok")]))
    if chaos:  # after the chaos (5 s) and its 2 s to settle: 1 of 5 attempts still to alpha
        for t in (7.2, 8.2, 9.2):
            c.on_event(fin(t, 20.0, [("beta", "ok")]))
        c.on_event(fin(7.5, 90.0, [("alpha", "cancelled"), ("beta", "ok")], hedged=True))
    snap = c.snapshot()
    if system:
        samples = tuple(SystemSample(float(i), 100.0 + i, 5.0) for i in range(10))
        snap = dataclasses.replace(snap, system=samples)
    # judged against the chain's truth: client 0 missed 2 blocks, stalled 3 s and is 2 s
    # behind at the end (uptime 0.8); client 1 got everything (uptime 1.0)
    subs = [
        SubscriptionRecord(0, "newHeads", 100, 2, 1, 0, connected_s=9.0, duration_s=10.0,
                           truth="chain", expected_blocks=98, gaps_in_stream=0,
                           max_stall_s=3.0, behind_s=2.0, uptime=0.8),
        SubscriptionRecord(1, "newHeads", 100, 0, 0, 0, connected_s=9.0, duration_s=10.0,
                           truth="chain", expected_blocks=98, gaps_in_stream=0,
                           max_stall_s=0.02, behind_s=0.0, uptime=1.0),
    ]  # fmt: skip
    return analyze(
        snap,
        chaos=[ChaosRecord("error_rate", "alpha", 5.0, None)] if chaos else [],
        subscriptions=subs if subscriptions else None,
        duration_s=10.0,
        truth=TruthFigures(100, 40, answers_checked=50, stale_answers=3, reorgs=1),
    )


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    return run_analysis()


CASES = {
    # key: (actual, a target that passes, a target that fails)
    "success_rate": (0.98, 0.98, 0.99),
    "p50_latency_ms": (50.0, 51.0, 49.0),
    "p90_latency_ms": (90.0, 91.0, 89.0),
    "p95_latency_ms": (95.0, 96.0, 94.0),
    "p99_latency_ms": (99.0, 100.0, 98.0),
    "max_latency_ms": (100.0, 100.0, 99.9),
    "max_failover_latency_ms": (120.0, 120.0, 119.9),
    "max_recovery_s": (1.0, 1.0, 0.5),
    "max_gap_count": (2.0, 2.0, 1.0),
    "max_duplicate_count": (1.0, 1.0, 0.0),
    "min_ws_uptime": (0.9, 0.9, 0.95),  # the mean of 0.8 and 1.0 (blocks arriving)
    "max_rss_mb": (109.0, 109.0, 108.0),
    "max_rss_growth_pct": (9.0, 9.5, 8.0),
    "min_throughput_rps": (10.0, 10.0, 10.5),
    "max_error_count": (2.0, 2.0, 1.0),
    "max_feed_stall_s": (3.0, 3.0, 2.9),
    "max_stalled_clients": (1.0, 1.0, 0.0),
    "max_stale_answers": (3.0, 3.0, 2.0),
    "max_chaos_target_share": (0.2, 0.2, 0.19),
}


def test_every_key_is_covered() -> None:
    assert set(CASES) == set(SLO_KEYS)


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_key_passes_and_fails(analysis: Analysis, key: str) -> None:
    actual, ok_target, bad_target = CASES[key]
    (good,) = SLO(**{key: ok_target}).evaluate(analysis)
    (bad,) = SLO(**{key: bad_target}).evaluate(analysis)
    assert good.passed, good.message
    assert not bad.passed, bad.message
    assert good.actual == pytest.approx(actual, rel=1e-3)
    assert good.key == bad.key == key and good.target == ok_target
    assert good.message.endswith("(ok)") and bad.message.endswith("(violated)")
    assert good.op == (
        ">=" if key in ("success_rate", "min_ws_uptime", "min_throughput_rps") else "<="
    )


def test_messages_say_which_way_a_target_was_missed(analysis: Analysis) -> None:
    lat = dataclasses.replace(analysis.summary.latency_ms, p95=312.4)
    slow = dataclasses.replace(
        analysis, summary=dataclasses.replace(analysis.summary, latency_ms=lat)
    )
    (v,) = SLO(p95_latency_ms=250).evaluate(slow)
    assert v.message == "p95_latency_ms: 312.4 > 250 (violated)"
    (v,) = SLO(success_rate=0.999).evaluate(analysis)
    assert v.message == "success_rate: 0.98 < 0.999 (violated)"
    (v,) = SLO(success_rate=0.9).evaluate(analysis)
    assert v.message == "success_rate: 0.98 >= 0.9 (ok)"
    assert v.to_dict() == {
        "key": "success_rate",
        "op": ">=",
        "target": 0.9,
        "actual": 0.98,
        "passed": True,
        "message": "success_rate: 0.98 >= 0.9 (ok)",
        "applicable": True,
        "optional": False,
    }


def test_several_targets_give_one_verdict_each_in_order(analysis: Analysis) -> None:
    verdicts = SLO(success_rate=0.9, p95_latency_ms=50, max_error_count=5).evaluate(analysis)
    assert [(v.key, v.passed) for v in verdicts] == [
        ("success_rate", True),
        ("p95_latency_ms", False),
        ("max_error_count", True),
    ]
    assert not all_passed(verdicts)
    assert all_passed([verdicts[0], verdicts[2]])


def test_unknown_key_is_an_error_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown SLO keys \\['p95_ms'\\]") as exc:
        SLO(p95_ms=200)
    for key in SLO_KEYS:
        assert key in str(exc.value)


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        ({"p95_latency_ms": "fast"}, "must be a number"),
        ({"p95_latency_ms": True}, "must be a number"),
        ({"max_error_count": -1}, ">= 0"),
        ({"success_rate": 99.9}, "fraction within 0..1"),
        ({"max_rss_mb": float("nan")}, "finite"),
    ],
)
def test_bad_targets_are_errors(targets: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SLO(**targets)  # type: ignore[arg-type]


def test_no_targets_never_pass(analysis: Analysis) -> None:
    slo = SLO()
    verdicts = slo.evaluate(analysis)
    assert len(verdicts) == 1 and not verdicts[0].passed
    assert "no SLO targets" in verdicts[0].message
    assert not all_passed(verdicts) and not all_passed([])


def test_no_failover_is_no_failover_latency_and_fails_unless_optional() -> None:
    """A run where nothing failed over measured no failover latency: it cannot pass the
    target vacuously (it used to read 0 ms and pass)."""
    a = run_analysis(failovers=False)
    v, nothing = SLO(max_failover_latency_ms=1e9).evaluate(a)
    assert not v.passed and v.actual is None and not v.applicable
    assert v.message == (
        "max_failover_latency_ms: not measured (no request failed over) (violated)"
    )
    assert nothing.key == "slo" and not nothing.passed
    # named optional, it is "not applicable" and passes, next to a target that did measure
    verdicts = SLO(
        max_failover_latency_ms=300, success_rate=0.9, optional=["max_failover_latency_ms"]
    ).evaluate(a)
    assert [(x.key, x.passed, x.applicable, x.optional) for x in verdicts] == [
        ("max_failover_latency_ms", True, False, True),
        ("success_rate", True, True, False),
    ]
    assert verdicts[0].message == (
        "max_failover_latency_ms: not applicable (no request failed over) (optional)"
    )
    assert all_passed(verdicts)


def test_when_nothing_applies_the_run_fails_even_if_every_target_is_optional() -> None:
    a = run_analysis(failovers=False, subscriptions=False)
    verdicts = SLO(
        max_failover_latency_ms=300, max_gap_count=0,
        optional=["max_failover_latency_ms", "max_gap_count"],
    ).evaluate(a)  # fmt: skip
    assert [v.passed for v in verdicts] == [True, True, False]
    assert verdicts[-1].message.startswith("no SLO target applied to this run")
    assert not all_passed(verdicts)


def test_error_count_without_requests_does_not_pass() -> None:
    (v, _) = SLO(max_error_count=0).evaluate(run_analysis(requests=False))
    assert not v.passed and v.message == "max_error_count: not measured (no requests) (violated)"
    (v, _) = SLO(min_throughput_rps=0).evaluate(run_analysis(requests=False))
    assert not v.passed


def test_optional_must_name_a_target() -> None:
    with pytest.raises(ValueError, match="not among the targets"):
        SLO(success_rate=0.9, optional=["max_gap_count"])
    slo = SLO(success_rate=0.9, max_gap_count=0, optional="max_gap_count")
    assert slo.to_dict() == {
        "success_rate": 0.9,
        "max_gap_count": 0.0,
        "optional": ["max_gap_count"],
    }
    assert slo == SLO(**slo.to_dict()) and slo != SLO(success_rate=0.9, max_gap_count=0)


def test_feed_truth_slos_need_the_chain_truth(analysis: Analysis) -> None:
    ws = analysis.summary.ws
    assert ws is not None
    blind = dataclasses.replace(
        analysis,
        summary=dataclasses.replace(
            analysis.summary, ws=dataclasses.replace(ws, truth=None, max_stall_s=None)
        ),
    )
    (v, _) = SLO(max_feed_stall_s=10).evaluate(blind)
    assert v.message == (
        "max_feed_stall_s: not measured (no chain truth for the subscribers) (violated)"
    )


@pytest.mark.parametrize(
    ("kw", "key", "why"),
    [
        ({"subscriptions": False}, "max_gap_count", "no WebSocket subscriptions"),
        ({"subscriptions": False}, "max_duplicate_count", "no WebSocket subscriptions"),
        ({"subscriptions": False}, "min_ws_uptime", "no WebSocket subscriptions"),
        ({"subscriptions": False}, "max_feed_stall_s", "no WebSocket subscriptions"),
        ({"chaos": False}, "max_recovery_s", "no chaos events"),
        ({"chaos": False}, "max_chaos_target_share", "no chaos event aimed at a provider"),
        ({"system": False}, "max_rss_mb", "no system samples"),
        ({"system": False}, "max_rss_growth_pct", "fewer than 2 system samples"),
        ({"requests": False}, "success_rate", "no requests"),
        ({"requests": False}, "p99_latency_ms", "no requests"),
        ({"failovers": False}, "max_failover_latency_ms", "no request failed over"),
    ],
)
def test_what_was_not_measured_fails_and_says_so(kw: dict[str, bool], key: str, why: str) -> None:
    v, nothing = SLO(**{key: 1e9 if key.startswith("max") else 0.0}).evaluate(run_analysis(**kw))
    assert v == SloVerdict(
        key, v.op, v.target, None, False, f"{key}: not measured ({why}) (violated)", False
    )
    assert not nothing.passed and nothing.key == "slo"


def test_a_chaos_event_that_never_recovers_fails_max_recovery(analysis: Analysis) -> None:
    never = dataclasses.replace(analysis.chaos[0], recovery_s=None)
    a = dataclasses.replace(analysis, chaos=(*analysis.chaos, never))
    (v,) = SLO(max_recovery_s=1e6).evaluate(a)
    assert not v.passed and v.actual is None
    assert v.message == "max_recovery_s: never recovered after error_rate at 5.00 s (violated)"


def test_target_share_needs_traffic_after_the_settling_time(analysis: Analysis) -> None:
    late = dataclasses.replace(analysis.chaos[0], at_s=9.5, target_share=None)
    a = dataclasses.replace(analysis, chaos=(late,))
    v, nothing_applied = SLO(max_chaos_target_share=1.0).evaluate(a)
    assert not v.passed and v.actual is None and not nothing_applied.passed
    assert "no upstream attempts after error_rate at 9.50 s" in v.message


def test_the_first_attempt_share_is_reported_beside_it(analysis: Analysis) -> None:
    (c,) = analysis.chaos
    assert c.target_share == pytest.approx(0.2)  # 1 of 5 attempts (the hedged call's loser)
    assert c.target_first_share == pytest.approx(0.25)  # 1 of 4 calls tried alpha first
    assert analysis.to_dict()["chaos"][0]["target_first_share"] == pytest.approx(0.25)


def test_slo_value_semantics() -> None:
    assert SLO(p95_latency_ms=200) == SLO(p95_latency_ms=200.0)
    assert dict(SLO(p95_latency_ms=200).targets) == {"p95_latency_ms": 200.0}
    assert repr(SLO(success_rate=0.999)) == "SLO(success_rate=0.999)"


@pytest.mark.parametrize(
    ("truth", "why"),
    [
        (None, "answers are checked against a mock fleet's chain only"),
        (TruthFigures(10, None, None, None, 0), "answers are checked against a mock fleet"),
        (TruthFigures(10, 10, 0, 0, 1), "no answer named a block"),
    ],
)
def test_stale_answers_not_measured_fails(
    analysis: Analysis, truth: TruthFigures | None, why: str
) -> None:
    v, *_ = SLO(max_stale_answers=0).evaluate(dataclasses.replace(analysis, truth=truth))
    assert v.key == "max_stale_answers" and not v.applicable
    assert not v.passed and v.actual is None and why in v.message
