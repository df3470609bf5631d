"""pytest plugin (auto-loaded through the ``pytest11`` entry point): markers and fixtures.

Markers: ``battle`` (scenario runs), ``chaos`` (fault injection), ``slow`` (skipped unless
``LASSO_SLOW=1``). Fixtures (need pytest-asyncio): ``mock_fleet`` (three mock providers on one
simulated chain, no automatic mining), ``lasso_router`` (a factory starting a router in front
of the fleet; every router it starts is closed after the test).
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from lasso_rpc.battle.providers.fleet import MockFleet
    from lasso_rpc.server.app import RouterServer

__all__ = ["RouterFactory", "fleet_config"]

RouterFactory = Callable[..., Awaitable["RouterServer"]]


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "battle: battle-framework scenario runs",
        "chaos: tests that inject faults",
        "slow: long-running tests, skipped unless LASSO_SLOW=1",
    ):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LASSO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set LASSO_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def fleet_config(
    fleet: MockFleet,
    *,
    routing: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    providers: dict[str, dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    strategy: str = "load-balanced",
) -> str:
    """A profile YAML for the fleet (hedging off, fast head polling, port 0);
    ``providers`` adds keys to individual providers."""
    doc = fleet.config_dict(strategy=strategy)
    doc["routing"] = _deep_merge(
        {"head_poll_ms": 100, "hedge": {"enabled": False}}, {**doc["routing"], **(routing or {})}
    )
    for p in doc["chains"]["ethereum"]["providers"]:
        p.update((providers or {}).get(p["id"], {}))
    doc["chains"]["ethereum"]["aliases"] = ["eth", "mainnet"]
    doc["server"] = {"host": "127.0.0.1", "port": 0, **(server or {})}
    if extra:
        doc = _deep_merge(doc, extra)
    return yaml.safe_dump(doc, sort_keys=False)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - fixtures need pytest-asyncio; markers work without
    pass
else:

    @pytest_asyncio.fixture
    async def mock_fleet() -> AsyncIterator[MockFleet]:
        from lasso_rpc.battle.providers.fleet import MockFleet

        fleet = await MockFleet.start(3, block_time_ms=0)
        async with fleet:
            fleet.chain.mine(5)
            yield fleet

    @pytest_asyncio.fixture
    async def lasso_router(mock_fleet: MockFleet) -> AsyncIterator[RouterFactory]:
        from lasso_rpc.config import load_config_text
        from lasso_rpc.server.app import RouterServer

        servers: list[RouterServer] = []

        async def factory(*, text: str | None = None, **kw: Any) -> RouterServer:
            cfg = load_config_text([("test.yaml", text or fleet_config(mock_fleet, **kw))])
            s = RouterServer(cfg, port=0)
            await s.start()
            servers.append(s)
            return s

        yield factory
        for s in servers:
            await s.aclose()
