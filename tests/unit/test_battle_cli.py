"""`lasso-rpc battle compare|list` exit codes, on the sample result."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
from typer.testing import CliRunner

from lasso_rpc.cli import app

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "battle_result_sample.json"


def test_compare_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    same = runner.invoke(app, ["battle", "compare", str(SAMPLE), str(SAMPLE)])
    assert same.exit_code == 0, same.output
    worse = copy.deepcopy(orjson.loads(SAMPLE.read_bytes()))
    worse["summary"]["latency_ms"]["p95"] *= 2
    path = tmp_path / "worse.json"
    path.write_bytes(orjson.dumps(worse))
    regressed = runner.invoke(app, ["battle", "compare", str(path), str(SAMPLE)])
    assert regressed.exit_code == 1 and "p95" in regressed.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "nope"}')
    broken = runner.invoke(app, ["battle", "compare", str(bad), str(SAMPLE)])
    assert broken.exit_code == 2 and "cannot compare" in broken.output


def test_different_scenarios_cannot_be_compared(tmp_path: Path) -> None:
    other = copy.deepcopy(orjson.loads(SAMPLE.read_bytes()))
    other["scenario"]["name"] = "Blackhole"
    path = tmp_path / "other.json"
    path.write_bytes(orjson.dumps(other))
    out = CliRunner().invoke(app, ["battle", "compare", str(path), str(SAMPLE)])
    assert out.exit_code == 2 and "different scenarios" in out.output
    # battle run refuses the baseline of another scenario before it runs anything
    run = CliRunner().invoke(
        app, ["battle", "run", "blackhole", "--baseline", str(SAMPLE), "--out", str(tmp_path)]
    )
    assert run.exit_code == 2 and "is a run of 'Provider failover'" in " ".join(run.output.split())
    assert not list(tmp_path.glob("*.html"))


def test_rss_slos_in_process_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    doc = {
        "name": "rss in process",
        "providers": {"alpha": {}},
        "workload": {"shape": "constant", "rate": 5, "duration_s": 1},
        "slo": {"success_rate": 0.9, "max_rss_mb": 400},
    }
    path = tmp_path / "rss.yaml"
    path.write_bytes(orjson.dumps(doc))  # JSON is YAML
    out = CliRunner().invoke(app, ["battle", "run", str(path), "--in-process"])
    assert out.exit_code == 2
    assert "max_rss_mb measure the router's own process" in " ".join(out.output.split())


def test_list_shows_the_builtin_scenarios() -> None:
    out = CliRunner().invoke(app, ["battle", "list"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    for name in ("provider-failover", "blackhole", "total-failure", "ws-failover"):
        assert name in out.output
