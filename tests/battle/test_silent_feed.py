"""A router that silently stops one WebSocket client's feed after a failover fails its battle.

The fault is injected into the router itself, through the subscription manager's delivery tap
(a test seam): after the serving provider dies and the feed moves, one client gets nothing more
while its socket stays open and the others see every block. Counting gaps only between two
deliveries found nothing here (the starved client has no "between"); counted against the
chain's truth, every block it missed is a gap, its stall is the rest of the run, and it is
still behind at the end.
"""

from __future__ import annotations

from typing import Any

import pytest

from lasso_rpc.battle import Chaos, Scenario, Workload
from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.providers.router_host import InProcessRouter
from lasso_rpc.battle.providers.spec import MockFleetSpec
from lasso_rpc.subscriptions.feed import Feed
from lasso_rpc.subscriptions.manager import Share

pytestmark = [pytest.mark.battle, pytest.mark.chaos]


def starve_one_client_after_failover(ctx: ScenarioContext, starved: list[int]) -> None:
    host = ctx.router_host
    assert isinstance(host, InProcessRouter)
    manager = host.server.subscriptions
    assert manager is not None

    def tap(share: Share, feed: Feed, raw: bytes) -> bool:
        if not starved:
            starved.append(share.id)  # the first client to get a block
        return not (share.id == starved[0] and feed.failovers > 0)

    manager.tap = tap


async def test_a_feed_silently_stopped_after_failover_fails_max_gap_count() -> None:
    starved: list[int] = []

    async def fault(ctx: ScenarioContext) -> dict[str, Any]:
        starve_one_client_after_failover(ctx, starved)
        return {}

    sc = (
        Scenario("silent feed")
        .providers(
            MockFleetSpec.of(alpha={"latency_ms": 2}, beta={"latency_ms": 5}, block_time_ms=200)
        )
        .router(strategy="fastest")
        .setup(fault)
        .workload(Workload.subscribe(4, "newHeads", duration_s=4.0))
        .chaos(Chaos.kill_provider("alpha", at_s=1.5))
        .slo(max_gap_count=0, max_feed_stall_s=1.0, min_ws_uptime=0.9)
    )
    result = await sc.run()
    assert starved, "the tap never saw a delivery"
    assert not result.passed
    verdicts = {v["key"]: v for v in result.data["slos"]}
    assert not verdicts["max_gap_count"]["passed"], verdicts
    assert not verdicts["max_feed_stall_s"]["passed"], verdicts
    ws = result.data["summary"]["ws"]
    assert ws["truth"] == "chain" and ws["stalled_clients"] == 1
    assert ws["gaps"] >= 5  # blocks every 200 ms for ~2 s after the failover
    subs = result.data["subscribers"]
    victim = [s for s in subs if s["gaps"]]
    assert len(victim) == 1, subs
    v = victim[0]
    # between two deliveries nothing was missing: the old count saw a perfect feed
    assert v["gaps_in_stream"] == 0 and v["duplicates"] == 0
    assert v["max_stall_s"] > 1.5 and v["behind_s"] > 1.5 and v["uptime"] < 0.8
    healthy = [s for s in subs if s is not v]
    assert all(s["gaps"] == 0 and s["behind_s"] == 0.0 for s in healthy), healthy
    moves = [e for e in result.data["subscription_failovers"] if e["from_provider"] == "alpha"]
    assert moves, "the kill must have moved the feed"
