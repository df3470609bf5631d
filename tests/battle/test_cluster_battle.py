"""A battle over two router nodes sharing one Redis, load spread by a balancer (issue 13):
Redis dies and returns under load, then a node dies; every request is answered but the few
in flight on the node at its death, and the other node serves everything after it."""

from __future__ import annotations

from typing import Any

import pytest

from lasso_rpc.battle import Chaos, MockProvider, Scenario, Workload
from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.providers.router_cluster import ClusterHost
from lasso_rpc.battle.report.schema import validate_result

pytestmark = [pytest.mark.battle, pytest.mark.chaos]


async def test_redis_and_a_node_die_under_load_and_the_cluster_keeps_answering() -> None:
    hosts: list[ClusterHost] = []

    async def keep_host(ctx: ScenarioContext) -> dict[str, Any]:
        assert isinstance(ctx.router_host, ClusterHost)
        hosts.append(ctx.router_host)
        return {}

    sc = (
        Scenario("cluster chaos")
        .providers(MockProvider.fleet(alpha={"latency_ms": 5}, beta={"latency_ms": 8}))
        .router(strategy="fastest", nodes=2)  # state: redis
        .setup(keep_host)
        .workload(Workload.constant(rate=150, duration_s=7, method="eth_blockNumber"))
        .chaos(Chaos.kill_redis(at_s=0.5, duration_s=2.0), Chaos.kill_router_node(1, at_s=3.5))
        .collect("requests", "breakers")
        .slo(success_rate=0.98)
    )
    result = await sc.run()
    assert result.passed, result.summary
    validate_result(result.data)
    assert result.data["scenario"]["router"]["nodes"] == 2
    assert [c["action"] for c in result.data["chaos"]] == ["kill_redis", "kill_router_node"]
    ts = result.data["timeseries"]
    buckets = list(zip(ts["t"], ts["requests"], ts["errors"], strict=True))
    assert ts["bucket_s"] == 1.0
    # Redis down (0.5 s .. 2.5 s) and back: not one request lost
    assert sum(e for t, _, e in buckets if t < 3.0) == 0
    # a second after the node's death (3.5 s), the other node answers everything
    late = [(r, e) for t, r, e in buckets if t >= 5.0]
    assert late and sum(e for _, e in late) == 0 and sum(r for r, _ in late) > 0
    lb = hosts[0].balancer
    assert lb.connections[0] > 0 and lb.connections[1] > 0  # load was spread
    assert lb.refused[0] == 0  # node 0 took every connection it was offered
    killed = result.data["chaos"][1]
    assert killed["target"] == "node1" and killed["end_s"] is None  # down to the end
