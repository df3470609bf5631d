"""Merging every worker's view into one (``cluster/merge.py``) and the cluster chaos actions'
values: pure functions, no processes."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from lasso_rpc.battle import Chaos, Scenario
from lasso_rpc.battle.chaos.basic_context import BasicChaosContext
from lasso_rpc.battle.chaos.parse import chaos_from_dict
from lasso_rpc.cluster.merge import merge_metrics, merge_providers, metrics_snapshot, render_metrics


class _Worker:
    def __init__(self, requests: int, in_flight: int, breaker: int, head: int, extra: int) -> None:
        self.v = (requests, in_flight, breaker, head, extra)

    def collect(self):  # type: ignore[no-untyped-def]
        requests, in_flight, breaker, head, extra = self.v
        c = CounterMetricFamily("lasso_requests", "calls", labels=["chain"])
        c.add_metric(["ethereum"], requests)
        yield c
        h = HistogramMetricFamily("lasso_request_duration_seconds", "lat", labels=["chain"])
        h.add_metric(["ethereum"], [("0.1", requests - 1), ("+Inf", requests)], requests * 0.05)
        yield h
        for name, value in (
            ("lasso_in_flight", in_flight),
            ("lasso_breaker_state", breaker),
            ("lasso_provider_head", head),
            ("lasso_some_new_gauge", extra),
        ):
            g = GaugeMetricFamily(name, name, labels=["provider"])
            g.add_metric(["alpha"], value)
            yield g


def _snapshot(*v: int) -> bytes:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Worker(*v))
    return metrics_snapshot(reg)


def test_counters_and_histograms_add_up_and_gauges_follow_their_rule() -> None:
    text = render_metrics(
        merge_metrics([(0, _snapshot(10, 2, 0, 100, 7)), (1, _snapshot(5, 1, 2, 101, 9))])
    ).decode()
    assert 'lasso_requests_total{chain="ethereum"} 15.0' in text
    assert 'lasso_request_duration_seconds_bucket{chain="ethereum",le="0.1"} 13.0' in text
    assert 'lasso_request_duration_seconds_count{chain="ethereum"} 15.0' in text
    assert 'lasso_request_duration_seconds_sum{chain="ethereum"} 0.75' in text
    assert 'lasso_in_flight{provider="alpha"} 3.0' in text  # sum
    assert 'lasso_breaker_state{provider="alpha"} 2.0' in text  # max: open wins
    assert 'lasso_provider_head{provider="alpha"} 101.0' in text
    # a gauge with no rule keeps each worker's value
    assert 'lasso_some_new_gauge{provider="alpha",worker="0"} 7.0' in text
    assert 'lasso_some_new_gauge{provider="alpha",worker="1"} 9.0' in text


def test_provider_rows_merge_what_each_worker_measured() -> None:
    def row(worker_in_flight: int, head: int, p50: float, samples: int, state: str) -> dict:  # type: ignore[type-arg]
        return {
            "profile": "p", "chain": "c", "id": "alpha", "in_flight": worker_in_flight,
            "head": head, "lag": 0, "breaker": {"state": state},
            "stats": {"http": {"all": {"p50": p50, "samples": samples}, "methods": {}}},
        }  # fmt: skip

    (merged,) = merge_providers(
        [(0, [row(2, 10, 10.0, 30, "open")]), (1, [row(3, 12, 20.0, 10, "open")])]
    )
    assert merged["in_flight"] == 5 and merged["head"] == 12
    assert merged["stats"]["http"]["all"] == {"p50": 12.5, "samples": 40}
    assert merged["workers"] == [
        {"worker": 0, "breaker": "open", "in_flight": 2},
        {"worker": 1, "breaker": "open", "in_flight": 3},
    ]


def test_cluster_chaos_actions_from_yaml_and_their_checks() -> None:
    action = chaos_from_dict({"action": "kill_router_node", "node": 1, "at_s": 2, "duration_s": 3})
    assert action == Chaos.kill_router_node(1, at_s=2, duration_s=3)
    assert action.target == "node1" and action.describe() == "kill_router_node node1 at 2s for 3s"
    assert chaos_from_dict({"action": "kill_redis", "at_s": 1}).target == "redis"
    ctx = BasicChaosContext(rng=random.Random(0))
    with pytest.raises(ValueError, match="several router nodes"):
        action.check(ctx)
    with pytest.raises(ValueError, match='state="redis"'):
        Chaos.kill_redis(at_s=1).check(ctx)
    sc = Scenario.from_dict(
        {
            "name": "n",
            "providers": {"alpha": {}},
            "router": {"nodes": 2, "workers": 2},
            "workload": {
                "shape": "constant",
                "rate": 1,
                "duration_s": 1,
                "method": "eth_blockNumber",
            },
            "slo": {"success_rate": 1},
        }
    )
    assert sc.router_opts.state == "redis" and sc.router_opts.clustered
    assert sc.to_dict()["router"] | {"routing": {}} == {
        "strategy": "fastest", "process": False, "routing": {}, "nodes": 2, "workers": 2,
        "state": "redis",
    }  # fmt: skip
