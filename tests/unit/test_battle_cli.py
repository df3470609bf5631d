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


def test_list_shows_the_builtin_scenarios() -> None:
    out = CliRunner().invoke(app, ["battle", "list"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    for name in ("provider-failover", "blackhole", "total-failure", "ws-failover"):
        assert name in out.output
