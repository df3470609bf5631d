"""Chaos on the router side of a multi-node battle: a router node dies, Redis dies.

Both need a context that offers them (``ScenarioContext`` of a run with ``.router(nodes=N,
state="redis")``): ``router_nodes`` (the ``RouterProcess`` of each node, by index) and
``redis`` (the run's ``RedisServer``). Without ``duration_s`` the node (or Redis) stays down;
with it, it comes back: a node restarts on the same port, Redis restarts empty on the same
socket (the nodes fill it again with what they know).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from lasso_rpc.battle.chaos.base import ChaosAction, ChaosContext, Needs, Revert

__all__ = ["KillRedis", "KillRouterNode"]


def _nodes(ctx: ChaosContext) -> list[Any]:
    nodes = getattr(ctx, "router_nodes", None)
    if not nodes:
        raise ValueError("kill_router_node needs a battle with several router nodes (nodes=N)")
    return list(nodes)


@dataclass(frozen=True, slots=True)
class KillRouterNode(ChaosAction):
    """Router node ``node`` (0-based) is SIGKILLed; restarted on its port after ``duration_s``."""

    action: ClassVar[str] = "kill_router_node"
    needs: ClassVar[Needs] = "nothing"
    node: int
    at_s: float
    duration_s: float | None = None

    def _check(self) -> None:
        if self.node < 0:
            raise ValueError("kill_router_node: node must be >= 0")

    @property
    def target(self) -> str | None:
        return f"node{self.node}"

    def targets(self) -> tuple[str, ...]:
        return ()  # not a provider

    def details(self) -> dict[str, Any]:
        return {k: v for k, v in ChaosAction.details(self).items() if k != "node"}

    def check(self, ctx: ChaosContext) -> None:
        nodes = _nodes(ctx)
        if self.node >= len(nodes):
            raise ValueError(f"kill_router_node: no node {self.node} (the run has {len(nodes)})")

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        node = _nodes(ctx)[self.node]
        pid = node.pid
        await node.kill()

        async def revert() -> None:
            await node.start()

        return revert, {"pid": pid}


@dataclass(frozen=True, slots=True)
class KillRedis(ChaosAction):
    """The shared Redis is SIGKILLed; an empty one starts on the same socket after
    ``duration_s``."""

    action: ClassVar[str] = "kill_redis"
    needs: ClassVar[Needs] = "nothing"
    at_s: float
    duration_s: float | None = None

    @property
    def target(self) -> str | None:
        return "redis"

    def targets(self) -> tuple[str, ...]:
        return ()

    def check(self, ctx: ChaosContext) -> None:
        if getattr(ctx, "redis", None) is None:
            raise ValueError(
                'kill_redis needs a battle whose router state is in Redis (state="redis")'
            )

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        redis = getattr(ctx, "redis", None)
        assert redis is not None
        await redis.kill()

        async def revert() -> None:
            await redis.restart()

        return revert, {}
