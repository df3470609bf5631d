"""Every built-in scenario passes (a shortened variant), and an impossible SLO fails loudly."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lasso_rpc.battle import Chaos, Scenario, Workload
from lasso_rpc.battle.catalogue import builtin_scenarios
from lasso_rpc.battle.contenders import SidecarUnavailable, find_node, find_node_modules
from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.providers.spec import MockFleetSpec
from lasso_rpc.battle.report.html import CONTENDER_CHART_IDS
from lasso_rpc.battle.report.schema import validate_result
from lasso_rpc.observability.events import Event, RequestFinished
from lasso_rpc.shaping.testing import reorg_safety

pytestmark = [pytest.mark.battle, pytest.mark.chaos]

# CI runs each scenario at half its length: the same shape, the same SLOs.
CI_SCALE = 0.5
SCENARIOS = builtin_scenarios()
#: Runs the scenario once per contender: tested (shorter) on its own below.
CONTENDERS = "router-vs-client-fallback"


def test_the_builtin_catalogue() -> None:
    assert {
        "provider-failover",
        "flapping-provider",
        "degradation",
        "blackhole",
        "total-failure",
        "network-faults-anvil",
        "ws-failover",
        "reorg-under-load",
        CONTENDERS,
        "hung-provider",
    } <= set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - {CONTENDERS}))
async def test_builtin_scenario_passes(name: str, tmp_path: Path) -> None:
    sc = Scenario.from_yaml(SCENARIOS[name]).scaled(CI_SCALE)
    if sc.anvil_opts is not None:
        from lasso_rpc.battle.providers.anvil import anvil_binary

        anvil_binary()
    result = await sc.run()
    assert result.passed, result.summary
    validate_result(result.data)
    paths = result.write_reports(tmp_path)
    assert Path(paths.html).stat().st_size > 100_000
    s = result.data["summary"]
    assert s["requests"] > 0
    assert result.data["chaos"], "the chaos must be in the report"
    assert result.data["validity"]["valid"], result.data["validity"]
    if name == "ws-failover":
        ws = result.data["summary"]["ws"]
        assert ws["clients"] == 60 and ws["events"] > 100 and ws["gaps"] == ws["duplicates"] == 0
        # judged against the chain: every block mined while subscribed reached every client
        assert ws["truth"] == "chain" and ws["expected_blocks"] > 500 and ws["stalled_clients"] == 0
        moves = [
            e
            for e in result.data["subscription_failovers"]
            if e["from_provider"] != e["to_provider"]
        ]
        assert moves, "the kill and the drop must have moved the upstream subscriptions"
    if name == "reorg-under-load":
        truth = result.data["truth"]
        assert truth["reorgs"] == 3 and truth["answers_checked"] > 500
        assert truth["stale_answers"] == 0
        assert truth["upstream_calls"] < truth["client_requests"]  # the cache saved calls


async def test_reorg_under_load_fails_on_a_router_without_reorg_eviction() -> None:
    """The same scenario against a router whose cache ignores reorgs (test mode): the
    stale-answer count is taken from the chain, not from the router, so the SLO fails."""
    sc = Scenario.from_yaml(SCENARIOS["reorg-under-load"]).scaled(0.3)
    with reorg_safety(False):
        result = await sc.run()
    assert not result.passed
    (stale,) = [v for v in result.data["slos"] if v["key"] == "max_stale_answers"]
    assert not stale["passed"] and stale["actual"] > 10
    assert result.data["truth"]["examples"]


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lasso_rpc",
        "battle",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_impossible_slo_fails_with_nonzero_exit_and_a_violation_line(tmp_path: Path) -> None:
    doc = yaml.safe_load(SCENARIOS["provider-failover"].read_text())
    doc["name"] = "Impossible failover"
    doc["slo"] = {"success_rate": 0.999, "p50_latency_ms": 1}  # 50 ms providers: cannot hold
    path = tmp_path / "impossible.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out = await _cli("run", str(path), "--scale", "0.2", "--out", str(tmp_path / "out"))
    assert code == 1, out
    assert "violation: p50_latency_ms" in out
    assert (tmp_path / "out" / "latest.json").exists()
    code, out = await _cli(
        "run", str(SCENARIOS["provider-failover"]), "--scale", "0.2", "--out", str(tmp_path / "ok")
    )
    assert code == 0, out


async def test_hung_provider_fails_when_the_router_keeps_sending_to_it() -> None:
    """The scenario's max_chaos_target_share can fail: a router that neither ejects the hung
    provider nor trips its breaker (priority routing keeps choosing it) keeps half its
    traffic on it, every call paying for a hedge or a timeout."""
    doc = yaml.safe_load(SCENARIOS["hung-provider"].read_text())
    doc["router"]["strategy"] = "priority"
    doc["router"]["routing"] |= {
        "ejection": {"enabled": False},
        "breaker": {"failure_threshold": 1000},
    }
    result = await Scenario.from_dict(doc).scaled(CI_SCALE).run()
    assert not result.passed
    verdicts = {v["key"]: v for v in result.data["slos"]}
    share = verdicts["max_chaos_target_share"]
    assert not share["passed"] and share["actual"] > 0.3, share
    assert result.data["chaos"][0]["target_first_share"] == 1.0  # every call tried it first


async def test_failover_count_matches_ground_truth_exactly() -> None:
    seen: list[RequestFinished] = []

    async def tap(ctx: ScenarioContext) -> None:
        bus = ctx.router_host.bus
        assert bus is not None

        def on(ev: Event) -> None:
            if isinstance(ev, RequestFinished):
                seen.append(ev)

        bus.subscribe(on)

    sc = (
        Scenario("ground truth")
        .providers(
            MockFleetSpec.of(
                alpha={"latency_ms": 5}, beta={"latency_ms": 15}, gamma={"latency_ms": 25}
            )
        )
        .router(strategy="priority", breaker={"failure_threshold": 1000})
        .setup(tap)
        .workload(Workload.constant(rate=80, duration_s=4, method="eth_blockNumber"))
        .chaos(Chaos.error_rate("alpha", 0.3, at_s=1.0, duration_s=2.0))
        .slo(success_rate=0.99)
    )
    result = await sc.run()
    truth = sum(
        1
        for ev in seen
        if len(ev.attempts) > 1 and any(a.outcome == "provider" for a in ev.attempts)
    )
    assert truth > 10
    s = result.data["summary"]
    assert s["failovers"] == truth
    assert s["failovers_client_view"] == truth


async def test_router_in_a_subprocess(tmp_path: Path) -> None:
    sc = (
        Scenario("subprocess router")
        .providers(MockFleetSpec.of(alpha={"latency_ms": 5}, beta={"latency_ms": 20}))
        .router(strategy="fastest", process=True)
        .workload(Workload.constant(rate=50, duration_s=4, method="eth_blockNumber"))
        .chaos(
            Chaos.open_circuit_breaker("alpha", at_s=1.0, duration_s=0.5),
            Chaos.kill_provider("alpha", at_s=2.5),
        )
        .slo(success_rate=0.95)
    )
    result = await sc.run()
    assert result.passed, result.summary
    d = result.data
    assert d["summary"]["failovers"] >= 1
    assert d["summary"]["router_rss_mb_max"] and d["summary"]["router_rss_mb_max"] > 10
    assert any(b["provider"] == "alpha" and b["to"] == "open" for b in d["breakers"])
    assert [c["action"] for c in d["chaos"]] == ["open_circuit_breaker", "kill_provider"]


def _contender_figure(page: str, chart_id: str) -> list[dict[str, Any]]:
    start = page.index(f'Plotly.newPlot(                        "{chart_id}",')
    data, _ = json.JSONDecoder().raw_decode(page[page.index("[", start) :])
    return list(data)


async def test_router_vs_client_fallback_side_by_side_in_one_report(tmp_path: Path) -> None:
    """The same providers, load and provider kill reached five ways, in one run: ethers'
    FallbackProvider (default quorum) stays below 80 % while the router answers everything,
    and the HTML report shows it (the contenders table and their charts, drawn by a browser
    when one is installed)."""
    try:
        find_node()
        find_node_modules(["viem", "ethers"])
    except SidecarUnavailable as exc:
        pytest.skip(str(exc))
    sc = Scenario.from_yaml(SCENARIOS[CONTENDERS]).scaled(0.12)
    result = await sc.run()
    d = result.data
    assert result.passed, result.summary
    by = {c["label"]: c for c in d["contenders"]}
    assert list(by) == ["router (fastest)", "router (load-balanced)", "direct alpha",
                        "viem fallback", "ethers FallbackProvider"]  # fmt: skip
    rate = {label: c["summary"]["success_rate"] for label, c in by.items()}
    assert rate["router (fastest)"] == 1.0 and rate["router (load-balanced)"] == 1.0
    assert rate["ethers FallbackProvider"] < 0.80, rate
    assert rate["direct alpha"] < 0.5, rate  # a hard-coded URL dies with its provider
    assert all(c["summary"]["requests"] == d["summary"]["requests"] for c in by.values())
    assert by["router (fastest)"]["primary"] and by["router (fastest)"]["passed"]
    assert not by["ethers FallbackProvider"]["passed"]
    assert all(c["chaos"][0]["action"] == "kill_provider" for c in by.values())
    # the independent view: ethers shares and quorums its calls, the router sends about one
    assert by["router (fastest)"]["upstream"]["consistent"]
    assert by["ethers FallbackProvider"]["upstream"]["claimed_total"] is None

    paths = result.write_reports(tmp_path)
    page = paths.html.read_text()
    for cid in CONTENDER_CHART_IDS:
        assert page.count(f'id="{cid}"') == 1
    success = {t["name"]: t["y"] for t in _contender_figure(page, "chart-contenders-success")}
    assert list(success) == list(by)
    assert min(v for v in success["ethers FallbackProvider"] if v is not None) < 80
    assert min(v for v in success["router (fastest)"] if v is not None) == 100
    ethers_pct = f"{rate['ethers FallbackProvider'] * 100:.1f} %"
    assert f'<td class="bad">{ethers_pct}</td>' in page
    assert '<td class="ok">100.0 %</td>' in page
    md = paths.markdown.read_text()
    assert "## Contenders" in md and "| ethers FallbackProvider | " in md
    chromium = next((p for n in ("chromium", "chromium-browser") if (p := shutil.which(n))), None)
    if chromium is None:
        return
    proc = await asyncio.create_subprocess_exec(
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000", "--dump-dom",
        paths.html.as_uri(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    dom, _ = await asyncio.wait_for(proc.communicate(), 90)
    html = dom.decode()
    for cid in CONTENDER_CHART_IDS:
        chart = html[html.index(f'id="{cid}"') :].split("</section>")[0]
        assert 'class="main-svg"' in chart and "ethers FallbackProvider" in chart, cid
