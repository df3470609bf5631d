"""Several ``lasso-rpc serve`` nodes sharing state (Redis), behind one balancer: a battle's
router when ``.router(nodes=N, state="redis")`` (or ``workers=N``) asks for it.

The nodes run the scenario's config plus a ``state:`` block pointing at a ``RedisServer`` of
the run (with short probe and sync intervals, so a battle sees the return of Redis quickly).
Load goes to the ``NodeBalancer``'s URL; the collector follows every node's ``/api/events``
(``event_urls``); chaos reaches the nodes (``nodes``) and Redis (``redis``) directly.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from lasso_rpc.battle.providers.balancer import NodeBalancer
from lasso_rpc.battle.providers.redis_server import RedisServer
from lasso_rpc.battle.providers.router_process import RouterProcess
from lasso_rpc.observability.events import EventBus
from lasso_rpc.router import Router

__all__ = ["ClusterHost", "start_cluster"]


class ClusterHost:
    """A ``RouterHost`` made of several nodes: ``url`` is the balancer's."""

    def __init__(
        self,
        nodes: list[RouterProcess],
        balancer: NodeBalancer,
        redis: RedisServer | None,
        config_dir: str,
    ) -> None:
        self.nodes = nodes
        self.balancer = balancer
        self.redis = redis
        self.url = balancer.url
        assert nodes[0].pid is not None
        self.pid = nodes[0].pid
        self._dir = config_dir

    @property
    def bus(self) -> EventBus | None:
        return None

    @property
    def router(self) -> Router | None:
        return None

    @property
    def node_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{n.port}" for n in self.nodes]

    @property
    def event_urls(self) -> list[str]:
        return [u.replace("http", "ws", 1) + "/api/events" for u in self.node_urls]

    async def aclose(self) -> None:
        try:
            await self.balancer.aclose()
            for n in self.nodes:
                with contextlib.suppress(Exception):
                    await n.aclose()
            if self.redis is not None:
                await self.redis.aclose()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"ClusterHost({self.url}, nodes={len(self.nodes)}, redis={self.redis!r})"


async def start_cluster(
    config_yaml: str,
    *,
    nodes: int,
    workers: int = 1,
    state: str = "redis",
    startup_timeout_s: float = 60.0,
) -> ClusterHost:
    tmp = tempfile.mkdtemp(prefix="lasso-cluster-")
    redis: RedisServer | None = None
    started: list[RouterProcess] = []
    try:
        doc: dict[str, Any] = yaml.safe_load(config_yaml)
        if state == "redis":
            redis = await RedisServer().start()
            doc["state"] = {
                "backend": "redis",
                "url": redis.url,
                "retry_ms": 200,
                "sync_interval_ms": 500,
            }
        path = Path(tmp) / "router.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        for _ in range(nodes):
            node = RouterProcess(path, workers=workers, startup_timeout_s=startup_timeout_s)
            await node.start()
            started.append(node)
        balancer = await NodeBalancer([("127.0.0.1", n.port) for n in started]).start()
    except BaseException:
        for n in started:
            await n.kill()
        if redis is not None:
            await redis.aclose()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ClusterHost(started, balancer, redis, tmp)
