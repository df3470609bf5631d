"""Router nodes sharing state through Redis (issue 13): two routers in this process, each its
own node (own node id, own Redis connections), one redis-server per test on a unix socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.redis_server import RedisServer
from lasso_rpc.config import load_config_text
from lasso_rpc.server.app import RouterServer
from tests.conftest import fleet_config, rpc

TOKEN = "nodes-test-token"


def node_config(fleet: MockFleet, redis: RedisServer, **state: Any) -> str:
    return fleet_config(
        fleet,
        strategy="priority",
        server={"control": {"enabled": True, "token": TOKEN}, "log_level": "warning"},
        extra={"state": {"backend": "redis", "url": redis.url, **state}},
    )


@pytest.fixture
async def nodes(
    fleet: MockFleet, redis_server: RedisServer
) -> AsyncIterator[tuple[RouterServer, RouterServer]]:
    text = node_config(fleet, redis_server, retry_ms=100, sync_interval_ms=500)
    a = RouterServer(load_config_text([("a.yaml", text)]))
    b = RouterServer(load_config_text([("b.yaml", text)]))
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


async def control(http: aiohttp.ClientSession, node: RouterServer, path: str, **body: Any) -> Any:
    async with http.post(
        node.url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def breaker_state(node: RouterServer, pid: str = "alpha") -> str:
    return str(node.router.resolve("ethereum").providers[pid].breaker.state)


async def until(cond: Callable[[], bool | Awaitable[bool]], timeout_s: float) -> float:
    """Seconds until ``cond`` holds (fails after ``timeout_s``)."""
    t0 = time.monotonic()
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout_s, f"not within {timeout_s} s"
        await asyncio.sleep(0.01)


async def test_a_breaker_opened_on_one_node_is_honoured_by_the_other_within_a_second(
    nodes: tuple[RouterServer, RouterServer], fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    await control(
        http, a, "/api/control/breaker/open", chain="ethereum", provider="alpha", hold=True
    )
    took = await until(lambda: breaker_state(b) == "open", 1.0)
    assert took < 1.0
    before = fleet["alpha"].method_counts.get("eth_getBalance", 0)
    for _ in range(20):
        _, body, _ = await rpc(http, b.url + "/rpc/ethereum", "eth_getBalance")
        assert "result" in body or "error" in body
    assert fleet["alpha"].method_counts.get("eth_getBalance", 0) == before
    await control(http, b, "/api/control/breaker/close", chain="ethereum", provider="alpha")
    await until(lambda: breaker_state(a) == "closed", 1.0)
    await control(http, b, "/api/control/cordon", chain="ethereum", provider="beta")
    await until(lambda: a.router.resolve("ethereum").providers["beta"].cordoned, 1.0)


async def test_nodes_serve_through_a_redis_outage_and_converge_when_it_returns(
    nodes: tuple[RouterServer, RouterServer],
    redis_server: RedisServer,
    http: aiohttp.ClientSession,
) -> None:
    a, b = nodes
    await redis_server.kill()
    for node in (a, b):  # every call still answered, on local state
        for _ in range(10):
            status, body, _ = await rpc(http, node.url + "/rpc/ethereum")
            assert status == 200 and "result" in body
    await control(http, a, "/api/control/cordon", chain="ethereum", provider="gamma")
    await until(lambda: a.cluster is not None and not a.cluster.sync.status().connected, 3.0)
    async with http.get(a.url + "/metrics") as r:
        text = await r.text()
    assert 'lasso_state_connected{backend="redis"} 0.0' in text
    assert not b.router.resolve("ethereum").providers["gamma"].cordoned  # nowhere to learn it
    await redis_server.restart()  # empty: the nodes fill it again
    took = await until(lambda: b.router.resolve("ethereum").providers["gamma"].cordoned, 5.0)
    assert took < 5.0
    await until(lambda: a.cluster is not None and a.cluster.sync.status().connected, 5.0)
    async with http.get(a.url + "/metrics") as r:
        text = await r.text()
    assert 'lasso_state_connected{backend="redis"} 1.0' in text
    assert 'lasso_state_reconnects_total{backend="redis"} 1.0' in text
