"""``BasicChaosContext``: a ChaosContext over dicts of mocks and proxies, for tests and simple
runs, and ``http_control``, the control-API callable it (or a caller) can use."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from lasso_rpc.battle.chaos.base import ChaosAction
from lasso_rpc.battle.chaos.layers import ChaosLayers
from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.mock import MockProvider
from lasso_rpc.battle.records import ChaosRecord
from lasso_rpc.clock import SYSTEM_CLOCK, Clock
from lasso_rpc.observability.events import ChaosEvent, EventBus

__all__ = ["BasicChaosContext", "ControlFn", "http_control"]

ControlFn = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class BasicChaosContext:
    """A ChaosContext over dicts of mocks and proxies; real time unless a subclass says otherwise.

    ``records`` keeps every ``(record, reverted)`` in order; ``timeline()`` merges each injection
    with its revert. With a ``bus``, every record is also published as a ``ChaosEvent``.
    """

    def __init__(
        self,
        *,
        mocks: Mapping[str, MockProvider] | None = None,
        proxies: Mapping[str, FaultProxy] | None = None,
        control: ControlFn | None = None,
        provider_ids: Sequence[str] | None = None,
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        self.mocks = dict(mocks or {})
        self.proxies = dict(proxies or {})
        ids = provider_ids if provider_ids is not None else [*self.mocks, *self.proxies]
        self._ids = list(dict.fromkeys(ids))
        self._control = control
        self._rng = rng if rng is not None else random.Random(0)
        self._clock = clock
        self._bus = bus
        self._t0_ms = clock.now_ms()
        self.records: list[tuple[ChaosRecord, bool]] = []
        self.layers = ChaosLayers()

    @classmethod
    def for_fleet(cls, fleet: MockFleet, **kw: Any) -> BasicChaosContext:
        return cls(mocks=fleet.providers, **kw)

    @property
    def rng(self) -> random.Random:
        return self._rng

    @property
    def provider_ids(self) -> Sequence[str]:
        return list(self._ids)

    def restart_clock(self) -> None:
        """Time 0 is now."""
        self._t0_ms = self._clock.now_ms()

    def now_s(self) -> float:
        return (self._clock.now_ms() - self._t0_ms) / 1000.0

    async def sleep_until(self, t_s: float) -> None:
        await asyncio.sleep(max(0.0, t_s - self.now_s()))

    def mock(self, provider_id: str) -> MockProvider | None:
        return self.mocks.get(provider_id)

    def proxy(self, provider_id: str) -> FaultProxy | None:
        return self.proxies.get(provider_id)

    async def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._control is None:
            raise RuntimeError(f"no control API to POST {path} to (give control=...)")
        return await self._control(path, body)

    def record(self, record: ChaosRecord, reverted: bool) -> None:
        self.records.append((record, reverted))
        if self._bus is not None:
            ts = self._clock.wall_s()
            self._bus.publish(
                ChaosEvent(
                    ts=ts,
                    action=record.action,
                    target=record.target,
                    reverted=reverted,
                    details=dict(record.details),
                )
            )

    def timeline(self) -> list[ChaosRecord]:
        """One record per injection, replaced by its revert once there is one."""
        out: list[ChaosRecord] = []
        for rec, reverted in self.records:
            key = (rec.action, rec.target, rec.at_s)
            if reverted and (i := next((i for i, r in enumerate(out) if _key(r) == key), -1)) >= 0:
                out[i] = rec
            else:
                out.append(rec)
        return out

    async def run(self, actions: Sequence[ChaosAction]) -> None:
        """Check every action first, then run them all concurrently."""
        for a in actions:
            a.check(self)
        async with asyncio.TaskGroup() as tg:
            for a in actions:
                tg.create_task(a.run(self))

    def __repr__(self) -> str:
        return (
            f"BasicChaosContext(providers={self._ids}, now_s={self.now_s():.3f}, "
            f"records={len(self.records)})"
        )


def _key(rec: ChaosRecord) -> tuple[str, str | None, float]:
    return rec.action, rec.target, rec.at_s


def http_control(base_url: str, token: str, session: aiohttp.ClientSession) -> ControlFn:
    """A ``control`` callable POSTing to a router's control API (``session`` stays yours)."""

    async def control(path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(base_url.rstrip("/") + path, json=body, headers=headers) as r:
            answer = await r.json(content_type=None)
            if r.status >= 400:
                raise RuntimeError(f"control API {path}: HTTP {r.status}: {answer}")
            return dict(answer)

    return control
