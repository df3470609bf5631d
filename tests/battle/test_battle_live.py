"""`battle run --live`: the dashboard URL is printed, and the page follows the running battle
(timeline in seconds since the start, chaos bands); report paths are printed one per line."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lasso_rpc.battle import Chaos, MockProvider, Scenario, Workload
from lasso_rpc.cli import app
from tests.cdp import Chromium, Page, chromium_binary

pytestmark = pytest.mark.battle

SCENARIO = """\
name: Live smoke
seed: 3
providers:
  alpha: {latency_ms: 5}
  beta: {latency_ms: 10}
router: {strategy: fastest}
workload: {shape: constant, rate: 40, duration_s: 2, method: eth_blockNumber}
chaos:
  - {action: kill_provider, provider: alpha, at_s: 0.5, duration_s: 0.8}
slo: {success_rate: 0.9}
"""


def test_battle_run_live_prints_the_dashboard_url_and_the_report_paths(tmp_path: Path) -> None:
    scenario = tmp_path / "live.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        app, ["battle", "run", str(scenario), "--live", "--out", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert re.search(
        r"live dashboard: http://127\.0\.0\.1:\d+/dashboard\?battle&t0=\d+", result.output
    )
    assert "ReportPaths(" not in result.output
    lines = result.output.splitlines()
    start = lines.index("reports:")
    listed = dict(line.split(maxsplit=1) for line in lines[start + 1 : start + 5])
    assert set(listed) == {"JSON", "Markdown", "HTML", "JUnit"}
    for path in listed.values():
        assert Path(path).is_file() and Path(path).parent == out
    assert "router has stopped" in result.output


async def test_the_page_follows_a_running_battle(tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (run scripts/ensure-chromium.sh)")
    sc = (
        Scenario("Live page")
        .providers(MockProvider.fleet(alpha={"latency_ms": 5}, beta={"latency_ms": 10}))
        .router(strategy="fastest")
        .workload(Workload.constant(rate=40, duration_s=3.0, method="eth_blockNumber"))
        .chaos(Chaos.kill_provider("alpha", at_s=1.0, duration_s=1.0))
        .slo(success_rate=0.9)
    )
    async with Chromium(binary) as browser:
        pages: list[asyncio.Task[Page]] = []

        def on_router(url: str) -> None:
            pages.append(asyncio.create_task(browser.open(f"{url}/dashboard?battle")))

        result = await sc.run(on_router=on_router)
        assert result.passed, result.summary
        page = await pages[0]
        # The router is gone now; what the page saw of the run stays on it.
        await page.wait_for("document.getElementById('status').dataset.state === 'disconnected'")
        assert await page.evaluate("document.querySelectorAll('tr.provider').length") == 2
        labels = await page.evaluate(
            "[...document.querySelectorAll('#timeline text.label')].map((t) => t.textContent)"
        )
        assert "kill_provider alpha" in labels
        band = await page.evaluate(
            "(() => { const r = document.querySelector('#timeline rect.chaos');"
            " return r && Number(r.getAttribute('width')); })()"
        )
        assert band and band > 2  # reverted: a band of the chaos window, not a line
        ticks = await page.evaluate(
            "[...document.querySelectorAll('#timeline text')].map((t) => t.textContent)"
        )
        assert any(re.fullmatch(r"\d+ s", t) for t in ticks)  # seconds since the start
        events = await page.evaluate("document.getElementById('events').textContent")
        assert "chaos injected: kill_provider alpha" in events
        assert "chaos reverted: kill_provider alpha" in events
        assert page.console == []
