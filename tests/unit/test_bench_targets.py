"""Benchmarks that miss a target exit non-zero: every verdict comes from ``bench/lib/targets``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module", autouse=True)
def bench_on_path() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        yield
    finally:
        sys.path.remove(str(BENCH))


def test_targets_exit_non_zero_on_a_miss(capsys: pytest.CaptureFixture[str]) -> None:
    from lib.targets import Targets

    t = Targets()
    assert t.report() == 0 and capsys.readouterr().out == ""  # no target: nothing to say
    t.check("p50 ≤ 1 ms", "0.8 ms", True)
    assert t.exit_code == 0
    t.check("≥ 9,000 req/s", "8,100 req/s", False)
    assert t.report() == 1
    out = capsys.readouterr().out
    assert "| ≥ 9,000 req/s" in out and "MISSED" in out and "1 of 2 targets MISSED" in out


def _wrk(p50_ms: float, rps: float) -> Any:
    return SimpleNamespace(p50_ms=p50_ms, rps=rps)


def test_proxy_overhead_returns_its_verdict() -> None:
    import proxy_overhead

    good = {
        "direct": {1: _wrk(0.10, 0)},
        "router (default config)": {1: _wrk(0.25, 0), 64: _wrk(0, 9500.0)},
        "aiohttp.web echo": {64: _wrk(0, 12000.0)},
    }
    assert proxy_overhead.print_targets(good) == 0
    slow = {**good, "router (default config)": {1: _wrk(0.25, 0), 64: _wrk(0, 8000.0)}}
    assert proxy_overhead.print_targets(slow) == 1


def test_no_bench_script_prints_a_verdict_of_its_own() -> None:
    """A script that printed MISSED itself could still exit 0; Targets never does."""
    for path in sorted(BENCH.rglob("*.py")):
        if path.name == "targets.py":
            continue
        text = path.read_text()
        assert not re.search(r"[\"'](MISS|meets)|MISSES", text), path
        if "Targets(" in text:
            assert re.search(r"\.report\(\)|\.exit_code", text), f"{path}: verdict ignored"
