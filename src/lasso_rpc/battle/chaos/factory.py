"""``Chaos``: the factory users call, and the registry of actions by name (YAML uses it)."""

from __future__ import annotations

from lasso_rpc.battle.chaos.actions import (
    Blackhole,
    DegradeProvider,
    DropWebsockets,
    ErrorRate,
    FlapProvider,
    InjectLatency,
    KillProvider,
    LagProvider,
    NetworkFault,
    OpenCircuitBreaker,
)
from lasso_rpc.battle.chaos.base import ChaosAction
from lasso_rpc.battle.chaos.chain_actions import ReorgChain
from lasso_rpc.battle.chaos.cluster_actions import KillRedis, KillRouterNode
from lasso_rpc.battle.chaos.random_failures import RandomFailures

__all__ = ["ACTIONS", "Chaos"]


class Chaos:
    """Factory of chaos actions (SPEC §6); every time in seconds since the scenario start.

    ``Chaos.kill_provider("alpha", at_s=10, duration_s=5)`` and so on: each name is the action's
    class, so the factory's signature is the dataclass's.
    """

    kill_provider = KillProvider  # (provider, at_s, duration_s=None)
    flap_provider = FlapProvider  # (provider, down_s, up_s, count, at_s)
    degrade_provider = DegradeProvider  # (provider, latency_ms, at_s, duration_s=None, jitter_ms=0)
    inject_latency = InjectLatency  # (provider, latency_ms, at_s, duration_s=None, jitter_ms=0)
    error_rate = ErrorRate  # (provider, p, at_s, duration_s=None, mode="http_500", http_status)
    blackhole = Blackhole  # (provider, at_s, duration_s=None)
    lag_provider = LagProvider  # (provider, blocks, at_s, duration_s=None)
    drop_websockets = DropWebsockets  # (provider, at_s)
    open_circuit_breaker = OpenCircuitBreaker  # (provider, at_s, duration_s=None, chain=...)
    random_failures = RandomFailures  # (mtbf_s, seed, at_s=0, duration_s=None, mttr_s=5, ...)
    network = NetworkFault  # (provider, at_s, duration_s=None, latency_ms=0, ...)
    kill_router_node = KillRouterNode  # (node, at_s, duration_s=None): needs nodes=N
    kill_redis = KillRedis  # (at_s, duration_s=None): needs state="redis"
    reorg = ReorgChain  # (depth, at_s): the mock chain replaces its last blocks


#: action name → class: what ``chaos_from_dict`` accepts. A new action is added here and above.


ACTIONS: dict[str, type[ChaosAction]] = {
    cls.action: cls
    for cls in (
        KillProvider, FlapProvider, DegradeProvider, InjectLatency, ErrorRate, Blackhole,
        LagProvider, DropWebsockets, OpenCircuitBreaker, RandomFailures, NetworkFault,
        KillRouterNode, KillRedis,
        ReorgChain,
    )
}  # fmt: skip
