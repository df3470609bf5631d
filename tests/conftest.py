"""Shared fixtures: a mock fleet, a running router in front of it, a JSON-RPC client."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from lasso_rpc.battle.mock_fleet import MockFleet
from lasso_rpc.config import load_config_text
from lasso_rpc.server.app import RouterServer


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
    """A profile YAML for the fleet; ``providers`` adds keys to individual providers."""
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


@pytest.fixture
async def fleet() -> AsyncIterator[MockFleet]:
    f = await MockFleet.start(3, block_time_ms=0)
    async with f:
        f.chain.mine(5)
        yield f


RouterFactory = Callable[..., Awaitable[RouterServer]]


@pytest.fixture
async def make_router(fleet: MockFleet) -> AsyncIterator[RouterFactory]:
    servers: list[RouterServer] = []

    async def factory(*, text: str | None = None, **kw: Any) -> RouterServer:
        cfg = load_config_text([("test.yaml", text or fleet_config(fleet, **kw))])
        s = RouterServer(cfg, port=0)
        await s.start()
        servers.append(s)
        return s

    yield factory
    for s in servers:
        await s.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def rpc(
    session: aiohttp.ClientSession,
    url: str,
    method: str | None = "eth_blockNumber",
    params: Any = (),
    *,
    id: Any = 1,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    if body is None:
        body = {"jsonrpc": "2.0", "id": id, "method": method, "params": list(params)}
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    ) as r:
        raw = await r.read()
        return r.status, (orjson.loads(raw) if raw else None), r
