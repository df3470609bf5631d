"""The battle reporter: Markdown, JUnit, validation, baseline compare and the files it writes.

Everything is rendered from ``tests/fixtures/battle_result_sample.json``, a passing run of the
"Provider failover" scenario (alpha killed at 10 s, its breaker opens at 10.4 s); failing and
regressed variants are built here by editing a copy of that dict.
"""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from lasso_rpc.battle.measure.baseline import ScenarioMismatch, Thresholds, compare
from lasso_rpc.battle.report.files import save_baseline, write_reports
from lasso_rpc.battle.report.junit import render_junit
from lasso_rpc.battle.report.markdown import render_markdown
from lasso_rpc.battle.report.schema import SCHEMA, InvalidResult, load_result, validate_result
from lasso_rpc.errors import ConfigError

FIXTURE = Path(__file__).parent.parent / "fixtures" / "battle_result_sample.json"
_SAMPLE: dict[str, Any] = json.loads(FIXTURE.read_text())


@pytest.fixture
def sample() -> dict[str, Any]:
    return copy.deepcopy(_SAMPLE)


def failing(d: dict[str, Any]) -> dict[str, Any]:
    """The sample with its p95 SLO violated (250 ms against 200 ms)."""
    slo = next(s for s in d["slos"] if s["key"] == "p95_latency_ms")
    slo.update(actual=250.4, passed=False, message="p95_latency_ms 250.4 > 200")
    d["passed"] = False
    return d


def row(rows: list[Any], metric: str) -> Any:
    return next(r for r in rows if r.metric == metric)


# --------------------------------------------------------------------------- the fixture


def test_sample_fixture_is_a_consistent_passing_run(sample: dict[str, Any]) -> None:
    validate_result(sample)
    s, ts = sample["summary"], sample["timeseries"]
    assert sample["passed"] and all(x["passed"] for x in sample["slos"])
    assert set(sample["providers"]) == {"alpha", "beta", "gamma"}
    assert len(ts["t"]) == 30 and sum(ts["requests"]) == s["requests"]
    assert s["ok"] + s["errors"] == s["requests"]
    assert sum(ts["failovers"]) == s["failovers"] and ts["failovers"][10] > 30
    assert (
        sample["chaos"][0] | {"action": "kill_provider", "target": "alpha", "at_s": 10.0}
        == (sample["chaos"][0])
    )
    assert sample["breakers"][0]["t_s"] == 10.4 and sample["breakers"][0]["to"] == "open"


# --------------------------------------------------------------------------- markdown


def test_markdown_shows_verdict_slos_and_numbers(sample: dict[str, Any]) -> None:
    md = render_markdown(sample)
    assert md.startswith("# Battle: Provider failover — PASS ✅")
    assert "provider-failover-20260509T073525Z-3fa1" in md
    assert "seed 42" in md and "strategy fastest" in md
    assert "| `success_rate` | ≥ 0.999 | 0.999333 | ✅ |" in md
    assert "| `p95_latency_ms` | ≤ 200 | 93.85 | ✅ |" in md
    assert "❌" not in md
    assert "| requests | 3000 (ok 2998, errors 2, client errors 2) |" in md
    assert "| success rate | 0.999333 (99.933 %) |" in md
    assert "| throughput | 97.29 req/s |" in md
    assert "| latency p50 / p95 / p99 / max | 73.27 / 93.85 / 240.8 / 814.5 ms |" in md
    assert "| failovers | 39 (client view 39, latency heuristic 41) |" in md
    assert "| hedged | 0 |" in md
    assert "| router RSS max / mean | 97.7 / 91.4 MB |" in md


def test_markdown_timelines_share_and_errors(sample: dict[str, Any]) -> None:
    md = render_markdown(sample)
    chaos = md.split("## Chaos timeline")[1].split("##")[0]
    assert (
        "| 10 s | 20 s | kill_provider | alpha | mode=stop, duration_s=10.0 | 0.42 s | 5.52 s |"
        in chaos
    )
    assert "| 22 s | — | inject_latency | beta | latency_ms=150 | 0 s | — |" in chaos
    breakers = md.split("## Breaker timeline")[1].split("##")[0]
    assert (
        "| 10.4 s | alpha | closed → open | 5 provider faults in a row (connect_error) |"
        in breakers
    )
    assert breakers.count("| alpha |") == 5
    assert "| gamma | 1528 | 51.0 % | 0 |" in md
    assert "| `all_attempts_failed` | 2 |" in md


def test_markdown_of_a_failing_run_names_the_violation(sample: dict[str, Any]) -> None:
    md = render_markdown(failing(sample))
    assert md.startswith("# Battle: Provider failover — FAIL ❌")
    assert "| `p95_latency_ms` | ≤ 200 | 250.4 | ❌ | p95_latency_ms 250.4 > 200 |" in md
    assert md.count("✅") == 4


def test_markdown_escapes_cells_and_shows_websocket_and_lanes(sample: dict[str, Any]) -> None:
    sample["slos"][0].update(passed=False, message="a | b\nc")
    sample["summary"]["ws"] = {"clients": 5, "events": 1500, "gaps": 0, "duplicates": 1}
    sample["breakers"].append(
        {"t_s": 12.0, "provider": "alpha", "from": "closed", "to": "open", "reason": "dropped",
         "transport": "ws"}
    )  # fmt: skip
    md = render_markdown(sample)
    assert "a \\| b c |" in md
    assert "| WebSocket | clients 5, events 1500, gaps 0, duplicates 1 |" in md
    assert "| 12 s | alpha (ws) | closed → open | dropped |" in md


def test_markdown_without_chaos_breakers_or_slos(sample: dict[str, Any]) -> None:
    sample.update(chaos=[], breakers=[], slos=[], errors_by_class={})
    md = render_markdown(sample)
    assert "## SLOs\n\n(none)" in md
    for section in ("Chaos timeline", "Breaker timeline", "Errors by class"):
        assert section not in md


# --------------------------------------------------------------------------- junit


def test_junit_is_valid_xml_with_one_testcase_per_slo(sample: dict[str, Any]) -> None:
    root = ET.fromstring(render_junit(sample))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "Provider failover"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "0", "0")
    assert float(suite.get("time", "0")) == pytest.approx(sample["duration_s"])
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases][:2] == ["success_rate >= 0.999", "p95_latency_ms <= 200"]
    assert {c.get("classname") for c in cases} == {"battle.provider-failover"}
    assert suite.findall(".//failure") == []
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["id"] == sample["id"] and props["seed"] == "42"


def test_junit_failure_carries_the_message(sample: dict[str, Any]) -> None:
    root = ET.fromstring(render_junit(failing(sample)))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and root.get("failures") == "1"
    (case,) = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert case.get("name") == "p95_latency_ms <= 200"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "p95_latency_ms 250.4 > 200"
    assert "actual 250.4" in (failure.text or "")


def test_junit_survives_control_characters_and_markup(sample: dict[str, Any]) -> None:
    sample["scenario"]["name"] = "A <b>&\x00\x1b name"
    failing(sample)["slos"][1]["message"] = "bad\x07 </failure> & <x>"
    root = ET.fromstring(render_junit(sample))
    failure = root.find(".//failure")
    assert failure is not None and failure.get("message") == "bad? </failure> & <x>"
    assert root.find("testsuite").get("name") == "A <b>&?? name"  # type: ignore[union-attr]


def test_junit_fails_a_failed_run_even_without_a_failed_slo(sample: dict[str, Any]) -> None:
    sample.update(passed=False, slos=[])
    root = ET.fromstring(render_junit(sample))
    assert root.get("tests") == "1" and root.get("failures") == "1"
    assert root.find(".//testcase").get("name") == "verdict"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- validation


def test_validate_rejects_another_schema_version(sample: dict[str, Any]) -> None:
    assert SCHEMA == "lasso-rpc.battle/2" and sample["schema"] == "lasso-rpc.battle/1"
    validate_result(sample)  # version 1 results are still read
    sample["schema"] = "lasso-rpc.battle/3"
    with pytest.raises(InvalidResult, match="this lasso-rpc reads") as e:
        validate_result(sample)
    assert e.value.errors == [
        "schema: unsupported 'lasso-rpc.battle/3'; this lasso-rpc reads "
        "lasso-rpc.battle/1 and lasso-rpc.battle/2"
    ]
    with pytest.raises(InvalidResult, match="schema: unsupported None"):
        validate_result({})
    with pytest.raises(InvalidResult, match="must be an object, got list"):
        validate_result([])


def test_validate_lists_every_problem_with_its_path(sample: dict[str, Any]) -> None:
    del sample["summary"]["latency_ms"]["p95"]
    del sample["breakers"][0]["to"]
    sample["passed"] = "yes"
    sample["summary"]["requests"] = True
    sample["timeseries"]["p95_ms"] = sample["timeseries"]["p95_ms"][:-1]
    sample["timeseries"]["provider_share"]["beta"].append(0.5)
    del sample["errors_by_class"]
    with pytest.raises(InvalidResult) as e:
        validate_result(sample)
    assert sorted(e.value.errors) == sorted(
        [
            "passed: must be a boolean (got str)",
            "errors_by_class: missing",
            "summary.requests: must be an integer (got bool)",
            "summary.latency_ms.p95: missing",
            "breakers[0].to: missing",
            "timeseries.p95_ms: must be a list as long as timeseries.t (30)",
            "timeseries.provider_share.beta: must be a list as long as timeseries.t (30)",
        ]
    )
    assert "invalid battle result:\n  " in str(e.value)


@pytest.mark.parametrize("bad_id", ["../etc/passwd", "a/b", ".hidden", ""])
def test_validate_rejects_ids_that_are_not_file_names(sample: dict[str, Any], bad_id: str) -> None:
    sample["id"] = bad_id
    with pytest.raises(InvalidResult, match="is not a safe file name"):
        validate_result(sample)


def test_validate_accepts_null_percentiles_and_extra_keys(sample: dict[str, Any]) -> None:
    sample["summary"]["latency_ms"] = dict.fromkeys(sample["summary"]["latency_ms"])
    sample["timeseries"]["p50_ms"][3] = None
    sample["something_new"] = {"x": 1}
    validate_result(sample)
    assert "| latency p50 / p95 / p99 / max | — / — / — / — ms |" in render_markdown(sample)


# --------------------------------------------------------------------------- compare


def test_compare_identical_results_is_ok(sample: dict[str, Any]) -> None:
    cmp = compare(sample, copy.deepcopy(sample), Thresholds())
    assert not cmp.regressed and cmp.regressions == ()
    metrics = [r.metric for r in cmp.rows]
    assert metrics[:8] == [
        "success_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput_rps",
        "failovers", "failover_latency_p95_ms", "router_rss_mb_max",
    ]  # fmt: skip
    assert "recovery_s kill_provider alpha@10s" in metrics
    assert "recovery_after_revert_s kill_provider alpha@10s" in metrics
    text = cmp.render()
    assert text.splitlines()[-1] == "verdict: OK" and "REGRESSED" not in text


def _compare_with(sample: dict[str, Any], path: str, base: float, new: float) -> Any:
    """Compare ``sample`` with ``path`` set to ``new`` against a baseline where it is ``base``."""
    baseline, fresh = copy.deepcopy(sample), copy.deepcopy(sample)
    *parents, leaf = path.split(".")
    for d, value in ((baseline, base), (fresh, new)):
        target: Any = d
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[leaf] = value
    return compare(fresh, baseline)


@pytest.mark.parametrize(
    ("path", "metric", "base", "ok", "bad"),
    [
        # success rate may drop by 0.001 (absolute)
        ("summary.success_rate", "success_rate", 0.9995, 0.9985, 0.9984),
        # latency may grow by 20 % ...
        ("summary.latency_ms.p95", "latency_p95_ms", 100.0, 120.0, 120.01),
        ("summary.latency_ms.p99", "latency_p99_ms", 250.0, 300.0, 300.5),
        # ... but 2 ms of noise on tiny numbers never counts
        ("summary.latency_ms.p50", "latency_p50_ms", 1.0, 3.0, 3.01),
        # throughput may drop by 15 %
        ("summary.throughput_rps", "throughput_rps", 100.0, 85.0, 84.9),
        # failovers may grow by 25 %, and by at least one
        ("summary.failovers", "failovers", 40, 50, 51),
        ("summary.failovers", "failovers", 0, 1, 2),
        # recovery may take 25 % longer, and at least one second longer
        ("chaos.0.recovery_s", "recovery_s kill_provider alpha@10s", 0.42, 1.42, 1.43),
        ("chaos.0.recovery_after_revert_s", "recovery_after_revert_s kill_provider alpha@10s",
         8.0, 10.0, 10.01),
        # RSS may grow by 20 %
        ("summary.router_rss_mb_max", "router_rss_mb_max", 100.0, 120.0, 120.1),
    ],
)  # fmt: skip
def test_compare_threshold_edges(
    sample: dict[str, Any], path: str, metric: str, base: float, ok: float, bad: float
) -> None:
    at_edge = _compare_with(sample, path, base, ok)
    assert not row(at_edge.rows, metric).regressed, at_edge.render()
    assert not at_edge.regressed
    beyond = _compare_with(sample, path, base, bad)
    r = row(beyond.rows, metric)
    assert r.regressed and beyond.regressed and beyond.regressions == (r,)
    assert (r.baseline, r.new) == (base, bad) and r.delta == pytest.approx(bad - base)
    assert re.search(rf"^{re.escape(metric)} .* REGRESSED$", beyond.render(), re.M)
    assert beyond.render().splitlines()[-1] == "verdict: REGRESSED (1 metric)"


def test_compare_improvements_never_regress(sample: dict[str, Any]) -> None:
    better = copy.deepcopy(sample)
    s = better["summary"]
    s["success_rate"], s["throughput_rps"], s["failovers"] = 1.0, 500.0, 0
    s["latency_ms"] = {k: 1.0 for k in s["latency_ms"]}
    better["chaos"][0]["recovery_s"] = 0.0
    assert not compare(better, sample).regressed


def test_compare_never_recovered_is_a_regression(sample: dict[str, Any]) -> None:
    cmp = _compare_with(sample, "chaos.0.recovery_s", 0.42, None)  # type: ignore[arg-type]
    r = row(cmp.rows, "recovery_s kill_provider alpha@10s")
    assert r.regressed and r.new is None and r.delta is None and r.limit == pytest.approx(1.42)


def test_compare_a_metric_missing_from_the_new_run_is_a_regression(sample: dict[str, Any]) -> None:
    # the baseline measured RSS, the new run did not: that is no longer "fine"
    cmp = _compare_with(sample, "summary.router_rss_mb_max", 100.0, None)  # type: ignore[arg-type]
    r = row(cmp.rows, "router_rss_mb_max")
    assert cmp.regressed and r.regressed and r.new is None
    # a metric only the new run has is noted, not compared
    base = copy.deepcopy(sample)
    base["summary"]["router_rss_mb_max"] = None
    cmp = compare(sample, base)
    assert not cmp.regressed and any("router_rss_mb_max" in n for n in cmp.notes)


def test_compare_covers_errors_websocket_figures_and_every_slo(sample: dict[str, Any]) -> None:
    ws = {"clients": 2, "events": 100, "gaps": 0, "duplicates": 0, "reorgs": 0, "uptime": 1.0,
          "max_stall_s": 0.1, "stalled_clients": 0}  # fmt: skip
    base, new = copy.deepcopy(sample), copy.deepcopy(sample)
    base["summary"]["ws"], new["summary"]["ws"] = ws, dict(ws, gaps=3, duplicates=1)
    new["summary"]["errors"] = 40  # 2 in the baseline
    new["slos"][1].update(passed=False)  # p95 passed in the baseline
    del new["slos"][0]  # success_rate: no verdict at all any more
    cmp = compare(new, base)
    regressed = {r.metric for r in cmp.regressions}
    assert regressed == {"ws_gaps", "ws_duplicates", "errors", "slo success_rate",
                         "slo p95_latency_ms"}  # fmt: skip
    assert not row(cmp.rows, "ws_uptime").regressed
    assert "slo p95_latency_ms" in cmp.render()
    # an invalid run after a valid baseline regresses too
    new = copy.deepcopy(sample)
    new["validity"] = {"valid": False, "reasons": ["the generator lagged"]}
    assert {r.metric for r in compare(new, sample).regressions} == {"valid"}


def test_compare_refuses_different_scenarios(sample: dict[str, Any]) -> None:
    other = copy.deepcopy(sample)
    other["scenario"]["name"] = "Something else"
    with pytest.raises(ScenarioMismatch, match="different scenarios: 'Something else'"):
        compare(other, sample)


def test_compare_notes_different_chaos(sample: dict[str, Any]) -> None:
    other = copy.deepcopy(sample)
    other["chaos"] = other["chaos"][:1]
    cmp = compare(other, sample)
    assert cmp.notes == ("chaos events differ; only events matching by position are compared",)
    assert "note: chaos events differ" in cmp.render()
    assert not any("inject_latency" in r.metric for r in cmp.rows)


def test_thresholds_from_dict_overrides_and_rejects_unknown_keys(sample: dict[str, Any]) -> None:
    th = Thresholds.from_dict({"latency_growth": 0.5, "latency_floor_ms": 0})
    assert th.latency_growth == 0.5 and th.latency_floor_ms == 0.0
    assert th.throughput_drop == Thresholds().throughput_drop
    looser = copy.deepcopy(sample)
    looser["summary"]["latency_ms"]["p95"] = sample["summary"]["latency_ms"]["p95"] * 1.5
    assert compare(looser, sample).regressed
    assert not compare(looser, sample, th).regressed
    assert Thresholds.from_dict(None) == Thresholds.from_dict({}) == Thresholds()
    with pytest.raises(ConfigError) as e:
        Thresholds.from_dict(
            {
                "latency_grwoth": 0.5,
                "throughput_drop": -1,
                "rss_growth": True,
                "rss_floor_mb": float("inf"),
            }
        )
    assert e.value.errors[0].startswith("thresholds.latency_grwoth: unknown key (known: ")
    assert e.value.errors[1:] == [
        "thresholds.throughput_drop: must be a non-negative number, got -1",
        "thresholds.rss_growth: must be a non-negative number, got True",
        "thresholds.rss_floor_mb: must be a non-negative number, got inf",
    ]
    with pytest.raises(ConfigError, match="thresholds: must be a mapping"):
        Thresholds.from_dict([1])  # type: ignore[arg-type]


def test_compare_validates_both_results(sample: dict[str, Any]) -> None:
    broken = copy.deepcopy(sample)
    del broken["summary"]
    with pytest.raises(InvalidResult, match="summary: missing"):
        compare(sample, broken)


# --------------------------------------------------------------------------- html (no browser)


@pytest.fixture(scope="module")
def page() -> str:
    from lasso_rpc.battle.report.html import render_html

    return render_html(_SAMPLE)


def _figure(page: str, chart_id: str) -> dict[str, Any]:
    """The data and layout plotly.newPlot receives for one chart."""
    start = page.index(f'Plotly.newPlot(                        "{chart_id}",')
    decoder = json.JSONDecoder()
    rest = page[page.index("[", start) :]
    data, end = decoder.raw_decode(rest)
    layout, _ = decoder.raw_decode(rest[end:].lstrip(", \n"))
    return {"data": data, "layout": layout}


def test_html_is_self_contained_with_plotly_js_once(page: str) -> None:
    from plotly.offline import get_plotlyjs

    banner = get_plotlyjs()[:40]
    assert banner.startswith("/**\n* plotly.js v") and page.count(banner) == 1
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link[^>]*href=", page, re.I)
    assert 6_000_000 > len(page.encode()) > 4_500_000
    for chart_id in ("chart-latency", "chart-throughput", "chart-share", "chart-breakers",
                     "chart-system"):  # fmt: skip
        assert page.count(f'id="{chart_id}"') == 1
    assert "<title>Battle: Provider failover — PASS</title>" in page
    assert '<td class="ok">pass</td>' in page and "93.85" in page


def test_html_charts_carry_the_data_and_chaos_windows(page: str) -> None:
    latency = _figure(page, "chart-latency")
    assert [t["name"] for t in latency["data"]] == ["p50", "p95", "p99"]
    assert latency["data"][2]["y"] == _SAMPLE["timeseries"]["p99_ms"]
    shapes = latency["layout"]["shapes"]
    assert {(s["type"], s["x0"], s["x1"]) for s in shapes} == {
        ("rect", 10.0, 20.0),
        ("line", 22.0, 22.0),
    }
    labels = {a["text"] for a in latency["layout"]["annotations"]}
    assert labels == {"kill_provider alpha", "inject_latency beta"}
    share = _figure(page, "chart-share")
    assert [t["name"] for t in share["data"]] == ["alpha", "beta", "gamma"]
    assert {t["stackgroup"] for t in share["data"]} == {"share"}
    assert share["data"][0]["y"][5] == pytest.approx(
        _SAMPLE["timeseries"]["provider_share"]["alpha"][5] * 100
    )
    throughput = _figure(page, "chart-throughput")
    assert [t["name"] for t in throughput["data"]] == ["throughput (req/s)", "errors", "failovers"]
    assert len(throughput["layout"]["shapes"]) == 2
    breakers = _figure(page, "chart-breakers")
    assert [t["name"] for t in breakers["data"]] == ["closed", "half_open", "open"]
    opened = breakers["data"][2]
    assert opened["y"] == ["alpha", "alpha"] and opened["base"] == [10.4, 15.41]


def test_breaker_segments_cover_the_run_per_lane() -> None:
    from lasso_rpc.battle.report.html import breaker_segments

    segs = breaker_segments(_SAMPLE, ["alpha", "beta"])
    alpha = [(s, a, b) for p, s, a, b, _ in segs if p == "alpha"]
    assert alpha == [
        ("closed", 0.0, 10.4), ("open", 10.4, 15.4), ("half_open", 15.4, 15.41),
        ("open", 15.41, 25.41), ("half_open", 25.41, 25.52),
        ("closed", 25.52, _SAMPLE["duration_s"]),
    ]  # fmt: skip
    assert [(p, s) for p, s, *_ in segs if p == "beta"] == [("beta", "closed")]
    ws = {
        **_SAMPLE,
        "breakers": [
            {"t_s": 3.0, "provider": "beta", "from": "open", "to": "closed", "transport": "ws"}
        ],
    }
    assert [s[:4] for s in breaker_segments(ws, ["beta (ws)"])] == [
        ("beta (ws)", "open", 0.0, 3.0),
        ("beta (ws)", "closed", 3.0, _SAMPLE["duration_s"]),
    ]


def test_html_without_system_samples_or_chaos(sample: dict[str, Any]) -> None:
    from lasso_rpc.battle.report.html import render_html

    sample.update(system=[], chaos=[], breakers=[])
    sample["timeseries"]["p95_ms"][4] = None
    for values in sample["timeseries"]["provider_share"].values():
        values[-1] = 0.0  # nobody answered in the last bucket
    page = render_html(failing(sample))
    share = _figure(page, "chart-share")
    assert len(share["data"][0]["x"]) == 29 and share["data"][0]["x"][-1] == 28
    assert 'id="chart-system"' not in page and 'id="chart-breakers"' in page
    assert '<span class="badge fail">FAIL</span>' in page
    assert '<td class="bad">FAIL</td><td>p95_latency_ms 250.4 &gt; 200</td>' in page


def test_an_empty_run_still_renders_everywhere(sample: dict[str, Any], tmp_path: Path) -> None:
    """A run that sent nothing (the router never came up): every format still renders."""
    sample.update(passed=False, duration_s=0.0, chaos=[], breakers=[], system=[], providers={})
    sample["summary"].update(requests=0, ok=0, errors=0, success_rate=0.0, throughput_rps=0.0)
    sample["summary"]["latency_ms"] = dict.fromkeys(sample["summary"]["latency_ms"])
    sample["timeseries"] = {"bucket_s": 1.0, "t": [], "requests": [], "provider_share": {}}
    sample["slos"] = [
        {"key": "success_rate", "op": ">=", "target": 0.999, "actual": None, "passed": False,
         "message": "no requests were answered"}
    ]  # fmt: skip
    paths = write_reports(sample, tmp_path)
    assert "| `success_rate` | ≥ 0.999 | — | ❌ | no requests were answered |" in (
        paths.markdown.read_text()
    )
    assert ET.parse(paths.junit).getroot().get("failures") == "1"
    assert 'id="chart-breakers"' in paths.html.read_text()


# --------------------------------------------------------------------------- files


def test_write_reports_writes_every_format_and_latest_copies(
    sample: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "battle_results"
    paths = write_reports(sample, out)
    rid = sample["id"]
    assert {p.name for p in out.iterdir()} == {
        f"{rid}.json", f"{rid}.md", f"{rid}.html", f"{rid}.junit.xml",
        "latest.json", "latest.md", "latest.html",
    }  # fmt: skip
    assert paths.json == out / f"{rid}.json" and paths.latest_html == out / "latest.html"
    assert json.loads(paths.json.read_text()) == sample
    assert paths.markdown.read_text() == render_markdown(sample)
    ET.parse(paths.junit)
    html = paths.html.read_text()
    assert html.startswith("<!DOCTYPE html>") and 'id="chart-latency"' in html
    for latest, original in (
        (paths.latest_json, paths.json),
        (paths.latest_markdown, paths.markdown),
        (paths.latest_html, paths.html),
    ):
        assert not latest.is_symlink() and latest.read_bytes() == original.read_bytes()

    second = failing(copy.deepcopy(sample))
    second["id"] = "provider-failover-20260509T080000Z-0001"
    write_reports(second, out)
    assert json.loads((out / "latest.json").read_text())["id"] == second["id"]
    assert "FAIL ❌" in (out / "latest.md").read_text()
    assert json.loads(paths.json.read_text()) == sample  # the first run's files stay
    assert not list(out.glob(".*tmp"))


def test_write_reports_refuses_an_invalid_result(sample: dict[str, Any], tmp_path: Path) -> None:
    del sample["timeseries"]
    with pytest.raises(InvalidResult, match="timeseries: missing"):
        write_reports(sample, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_baseline_round_trip(sample: dict[str, Any], tmp_path: Path) -> None:
    path = save_baseline(sample, tmp_path / "baselines" / "failover.json")
    assert load_result(path) == sample
    assert not compare(sample, load_result(path)).regressed
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(InvalidResult, match="is not JSON"):
        load_result(tmp_path / "junk.json")


def test_nan_becomes_null_in_the_json(sample: dict[str, Any], tmp_path: Path) -> None:
    sample["summary"]["router_cpu_pct_mean"] = float("nan")
    paths = write_reports(sample, tmp_path)
    assert json.loads(paths.json.read_text())["summary"]["router_cpu_pct_mean"] is None
    assert "| router CPU mean | — |" in paths.markdown.read_text()
