"""What a running scenario hands to setup hooks, chaos actions and test helpers."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from lasso_rpc.battle.chaos.layers import ChaosLayers
from lasso_rpc.battle.records import ChaosRecord
from lasso_rpc.observability.events import ChaosEvent

if TYPE_CHECKING:
    from lasso_rpc.battle.providers.faultproxy import FaultProxy
    from lasso_rpc.battle.providers.fleet import MockFleet
    from lasso_rpc.battle.providers.mock import MockProvider
    from lasso_rpc.battle.providers.router_host import RouterHost

__all__ = ["ScenarioContext"]


@dataclass(slots=True)
class ScenarioContext:
    """Implements the chaos layer's ``ChaosContext`` and carries setup-hook extras."""

    router_host: RouterHost
    provider_urls: dict[str, str]  # what the provider itself listens on (bypassing any proxy)
    control_token: str
    chain: str
    fleet: MockFleet | None = None
    proxies: dict[str, FaultProxy] = field(default_factory=dict)
    nodes: dict[str, Any] = field(default_factory=dict)  # real nodes (AnvilNode) by provider id
    rng: random.Random = field(default_factory=random.Random)
    extra: dict[str, Any] = field(default_factory=dict)
    timeline: list[ChaosRecord] = field(default_factory=list)
    t0: float = 0.0
    session: aiohttp.ClientSession | None = None
    #: The faults chaos actions applied so far, per provider (overlapping ones compose).
    layers: ChaosLayers = field(default_factory=ChaosLayers)
    #: Chaos events for a router in another process, forwarded by the runner's own task.
    outbox: asyncio.Queue[ChaosEvent] = field(default_factory=asyncio.Queue)
    #: Several router nodes (``.router(nodes=N)``): each node's process, by index.
    router_nodes: list[Any] = field(default_factory=list)
    #: The run's Redis (``state="redis"``), for ``kill_redis``.
    redis: Any = None

    @property
    def provider_ids(self) -> list[str]:
        return list(self.provider_urls)

    @property
    def router_url(self) -> str:
        return self.router_host.url

    def now_s(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    async def sleep_until(self, t_s: float) -> None:
        delay = t_s - self.now_s()
        if delay > 0:
            await asyncio.sleep(delay)

    def mock(self, provider_id: str) -> MockProvider | None:
        if self.fleet is None or provider_id not in self.fleet.ids:
            return None
        return self.fleet[provider_id]

    def proxy(self, provider_id: str) -> FaultProxy | None:
        return self.proxies.get(provider_id)

    def node(self, provider_id: str) -> Any:
        return self.nodes.get(provider_id)

    async def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.session is not None
        url = self.router_url + path
        headers = {"Authorization": f"Bearer {self.control_token}"}
        async with self.session.post(url, data=orjson.dumps(body), headers=headers) as r:
            data: dict[str, Any] = orjson.loads(await r.read())
            if r.status != 200:
                raise RuntimeError(f"control API {path} answered {r.status}: {data}")
            return data

    def record(self, rec: ChaosRecord, reverted: bool) -> None:
        if not reverted:
            self.timeline.append(rec)
        else:
            # The revert completes the record the injection started.
            for i in range(len(self.timeline) - 1, -1, -1):
                old = self.timeline[i]
                if (old.action, old.target, old.at_s) == (rec.action, rec.target, rec.at_s):
                    self.timeline[i] = rec
                    break
            else:
                self.timeline.append(rec)
        ev = ChaosEvent(
            ts=time.time(),
            action=rec.action,
            target=rec.target,
            reverted=reverted,
            details=dict(rec.details),
        )
        bus = self.router_host.bus
        if bus is not None:
            bus.publish(ev)
        else:
            self.outbox.put_nowait(ev)

    async def forward_chaos_events(self) -> None:
        """Publishes chaos events on a subprocess router's bus through its control API."""
        while True:
            ev = await self.outbox.get()
            body = {
                "action": ev.action,
                "target": ev.target,
                "reverted": ev.reverted,
                "details": ev.details,
            }
            try:
                await self.control("/api/control/chaos", body)
            except (aiohttp.ClientError, RuntimeError):
                pass  # the timeline in the report still has it
