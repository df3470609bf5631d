"""``Cluster``: what makes this process one of many, built from ``state:`` and the CLI.

- ``state.backend: redis``: provider state through Redis (``RedisPeers``), whatever the
  number of workers;
- memory with a hub (``serve --workers N``): through the hub (``HubLink``);
- memory alone: ``NoPeers``, nothing shared.

With a hub, ``views`` are the cluster-wide ``/metrics``, ``/api/providers`` and
``/api/events`` (``server/app.py`` routes them when present).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from lasso_rpc.cluster.hub_link import HubLink
from lasso_rpc.cluster.peers import NoPeers, Peers
from lasso_rpc.cluster.records import new_node_id
from lasso_rpc.cluster.redis_guard import RedisGuard
from lasso_rpc.cluster.sync import StateSync
from lasso_rpc.errors import LassoError
from lasso_rpc.observability.events import StateBackendChanged
from lasso_rpc.router import Router

__all__ = ["Cluster"]


class Cluster:
    """``start()`` after the router started; ``aclose()`` before it closes."""

    def __init__(
        self,
        router: Router,
        *,
        hub: HubLink | None = None,
        reloader: Callable[[], Any] | None = None,
        node_id: str | None = None,
        guard: RedisGuard | None = None,
    ) -> None:
        self.node_id = node_id or new_node_id()
        self.hub = hub
        state = router.config.state
        peers: Peers
        if state.backend == "redis":
            from lasso_rpc.cluster.redis_peers import RedisPeers

            peers = RedisPeers(state, clock=router.clock, guard=guard)
            peers.guard.on_change = self._backend_changed
        elif hub is not None:
            peers = hub
        else:
            peers = NoPeers()
        self.peers = peers
        self._router = router
        self.sync = StateSync(router, peers, node_id=self.node_id, reloader=reloader)

    @property
    def redis_guard(self) -> RedisGuard | None:
        """The Redis connection (and its breaker) when the state is in Redis."""
        guard = getattr(self.peers, "guard", None)
        return guard if isinstance(guard, RedisGuard) else None

    def _backend_changed(self, connected: bool, reason: str) -> None:
        self._router.bus.publish(
            StateBackendChanged(
                ts=self._router.clock.wall_s(), backend="redis", connected=connected, reason=reason
            )
        )

    async def start(self) -> None:
        if self.hub is not None and self.peers is not self.hub:
            await self.hub.start(_NoSink())  # gathers and limits only; state goes through Redis
        await self.sync.start()

    async def settle(self, timeout_s: float = 2.0) -> None:
        """Until the changes made so far reached the others: with a hub, every worker applied
        them; with Redis, they are written (the others apply them as they arrive)."""
        with contextlib.suppress(TimeoutError, LassoError):
            async with asyncio.timeout(timeout_s):
                if self.hub is not None and self.peers is self.hub:
                    await self.hub.gather("ping", timeout_s)
                elif isinstance(self.peers, _Flushable):
                    await self.peers.flush()

    async def aclose(self) -> None:
        await self.sync.aclose()
        if self.hub is not None and self.peers is not self.hub:
            await self.hub.aclose()

    def __repr__(self) -> str:
        return f"Cluster({self.node_id}, peers={self.peers!r})"


@runtime_checkable
class _Flushable(Protocol):
    async def flush(self) -> None: ...


class _NoSink:
    def apply(self, record: object) -> None:
        return None

    def run_command(self, command: object) -> None:
        return None

    def records(self) -> list[Any]:
        return []
