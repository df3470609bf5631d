"""A fleet of MockProviders serving one SimulatedChain, and the lasso-rpc profile pointing at it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import yaml

from lasso_rpc.battle.providers.chain import SimulatedChain
from lasso_rpc.battle.providers.mock import MockProvider
from lasso_rpc.battle.providers.spec import (
    Knobs,
    MockFleetSpec,
    ProviderSpecs,
    default_ids,
    knobs_of,
)

__all__ = ["MockFleet", "run_mock_fleet"]


class MockFleet:
    """Running providers plus the task producing blocks; ``async with`` / ``aclose()`` own both."""

    def __init__(self, chain: SimulatedChain, providers: Mapping[str, MockProvider]) -> None:
        self._chain = chain
        self._providers = dict(providers)
        self._producer: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        providers: int | ProviderSpecs | MockFleetSpec = 3,
        *,
        chain_id: int = 1,
        block_time_ms: int = 1000,
        port_base: int = 0,
        host: str = "127.0.0.1",
        chain: SimulatedChain | None = None,
    ) -> MockFleet:
        """Start a fleet: ``n`` default providers, or ``{id: knobs}``, or a ``MockFleetSpec``.

        ``port_base`` > 0 puts provider i on ``port_base + i``; 0 picks free ports.
        ``block_time_ms=0`` mines nothing on its own (tests call ``fleet.chain.mine()``).
        """
        if isinstance(providers, MockFleetSpec):
            chain_id, block_time_ms = providers.chain_id, providers.block_time_ms
            specs = dict(providers.providers)
        elif isinstance(providers, int):
            specs = {pid: Knobs() for pid in default_ids(providers)}
        else:
            specs = {pid: knobs_of(k) for pid, k in providers.items()}
        if not specs:
            raise ValueError("a fleet needs at least one provider")
        if chain is None:
            chain = SimulatedChain(chain_id, block_time_ms=block_time_ms)
        fleet = cls(chain, {})
        try:
            for i, (pid, knobs) in enumerate(specs.items()):
                port = port_base + i if port_base else 0
                provider = MockProvider(chain, pid, host=host, port=port, knobs=knobs)
                fleet._providers[pid] = provider
                await provider.start()
        except BaseException:
            await fleet.aclose()
            raise
        fleet._producer = asyncio.create_task(chain.produce(), name="mock-fleet-blocks")
        return fleet

    @property
    def chain(self) -> SimulatedChain:
        return self._chain

    @property
    def providers(self) -> dict[str, MockProvider]:
        return dict(self._providers)

    @property
    def ids(self) -> list[str]:
        return list(self._providers)

    def __getitem__(self, provider_id: str) -> MockProvider:
        return self._providers[provider_id]

    def __iter__(self) -> Iterator[MockProvider]:
        return iter(list(self._providers.values()))

    def __len__(self) -> int:
        return len(self._providers)

    def heal(self) -> None:
        """Every provider back to the knobs it was started with."""
        for provider in self._providers.values():
            provider.heal()

    def reset_counters(self) -> None:
        for provider in self._providers.values():
            provider.reset_counters()

    async def aclose(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            await asyncio.gather(self._producer, return_exceptions=True)
            self._producer = None
        await asyncio.gather(*(p.aclose() for p in self._providers.values()))

    async def __aenter__(self) -> MockFleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def config_dict(
        self,
        *,
        profile_slug: str = "local",
        profile_name: str | None = None,
        chain_name: str = "ethereum",
        strategy: str = "load-balanced",
    ) -> dict[str, Any]:
        """A lasso-rpc profile (SPEC §2) routing ``chain_name`` over this fleet."""
        chain: dict[str, Any] = {"chain_id": self._chain.chain_id}
        if self._chain.block_time_ms > 0:
            chain["block_time_ms"] = self._chain.block_time_ms
        chain["providers"] = [
            {"id": p.id, "url": p.url, "ws_url": p.ws_url, "priority": i + 1}
            for i, p in enumerate(self._providers.values())
        ]
        return {
            "name": profile_name or f"Mock fleet ({len(self)} providers)",
            "slug": profile_slug,
            "routing": {"default_strategy": strategy},
            "chains": {chain_name: chain},
        }

    def config_yaml(
        self,
        *,
        profile_slug: str = "local",
        profile_name: str | None = None,
        chain_name: str = "ethereum",
        strategy: str = "load-balanced",
    ) -> str:
        """``config_dict`` as a ready-to-serve YAML file."""
        doc = self.config_dict(
            profile_slug=profile_slug,
            profile_name=profile_name,
            chain_name=chain_name,
            strategy=strategy,
        )
        header = (
            f"# lasso-rpc profile for a mock fleet of {len(self)} providers "
            f"(chain id {self._chain.chain_id}); valid while the fleet runs.\n"
        )
        return header + yaml.safe_dump(doc, sort_keys=False)

    def __repr__(self) -> str:
        ports = ", ".join(f"{p.id}:{p.port if p.state != 'new' else '-'}" for p in self)
        running = self._producer is not None and not self._producer.done()
        return f"MockFleet(chain={self._chain!r}, providers=[{ports}], producing={running})"


async def run_mock_fleet(
    n: int | ProviderSpecs,
    *,
    port_base: int = 0,
    chain_id: int = 1,
    block_time_ms: int = 2000,
    out: TextIO | None = None,
) -> None:
    """Start ``n`` providers (or ``{id: knobs}``), print their ready config YAML, serve until
    cancelled."""
    fleet = await MockFleet.start(
        n, chain_id=chain_id, block_time_ms=block_time_ms, port_base=port_base
    )
    async with fleet:
        print(fleet.config_yaml(), file=out or sys.stdout, flush=True)
        await asyncio.Event().wait()
