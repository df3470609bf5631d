"""Test fixtures: the package's pytest plugin gives ``mock_fleet`` and ``lasso_router``; these
short names and a JSON-RPC helper keep the tests readable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.testing.pytest_plugin import RouterFactory, fleet_config

__all__ = ["RouterFactory", "fleet_config", "rpc"]


@pytest.fixture
def fleet(mock_fleet: MockFleet) -> MockFleet:
    return mock_fleet


@pytest.fixture
def make_router(lasso_router: RouterFactory) -> RouterFactory:
    return lasso_router


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
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with session.post(url, data=data, headers=hdrs) as r:
        raw = await r.read()
        return r.status, (orjson.loads(raw) if raw else None), r


@pytest.fixture
async def redis_server() -> AsyncIterator[Any]:
    """A redis-server of this test alone, on a unix socket in a temp dir (``make redis``)."""
    from lasso_rpc.battle.providers.redis_server import RedisServer

    async with RedisServer() as server:
        yield server
