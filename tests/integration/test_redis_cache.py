"""The response cache's Redis store (``cluster/redis_cache.py``): the ``CacheStore`` contract
against a real redis-server, and two router nodes sharing their cache through it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.redis_server import RedisServer
from lasso_rpc.clock import FakeClock
from lasso_rpc.cluster.redis_cache import RedisCacheStore
from lasso_rpc.cluster.redis_guard import RedisGuard
from lasso_rpc.config import load_config_text
from lasso_rpc.config.shared import StateConfig
from lasso_rpc.server.app import RouterServer
from lasso_rpc.shaping.store import CacheEntry, CacheStore
from tests.conftest import fleet_config
from tests.integration.test_shaping_mock import call, ready, upstream


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[tuple[RedisCacheStore, FakeClock]]:
    guard = RedisGuard(StateConfig(backend="redis", url=redis_server.url, timeout_ms=500))
    clock = FakeClock()
    try:
        yield RedisCacheStore(guard, "t", clock=clock, max_indexed=3), clock
    finally:
        await guard.aclose()


def _entry(height: int | None, fin: str = "unfinalized") -> CacheEntry:
    return CacheEntry(b'{"n":1}', fin, height, head=height, seq=3, stored_ms=12.5)


async def test_the_redis_store_keeps_the_store_contract(
    store: tuple[RedisCacheStore, FakeClock], redis_server: RedisServer
) -> None:
    s, clock = store
    assert isinstance(s, CacheStore)
    e = _entry(16)
    assert await s.get("p/eth", b"k") is None
    await s.set("p/eth", b"k", e, ttl_ms=None)
    assert await s.get("p/eth", b"k") == e  # exactly what was set
    assert await s.get("p/other", b"k") is None  # namespaces are apart
    await s.set("n", b"a", e, ttl_ms=1000)  # expiry on the store's clock
    clock.advance(999)
    assert await s.get("n", b"a") is not None
    clock.advance(1)
    assert await s.get("n", b"a") is None
    for h in (5, 10, 15):  # reorg eviction: every entry at or above the fork point
        await s.set("z", str(h).encode(), _entry(h), ttl_ms=None)
    await s.set("z", b"fin", _entry(None, "finalized"), ttl_ms=None)
    assert await s.evict_from("z", 10) == 2
    assert await s.get("z", b"5") is not None and await s.get("z", b"10") is None
    assert await s.get("z", b"fin") is not None  # finalized answers survive
    for h in range(20, 26):  # past max_indexed, the lowest go, with their entries
        await s.set("y", str(h).encode(), _entry(h), ttl_ms=None)
    assert await s.get("y", b"20") is None and await s.get("y", b"25") is not None
    await s.delete("z", b"5")
    assert await s.get("z", b"5") is None
    await redis_server.kill()  # fail open: a miss, a dropped write, "cannot tell"
    assert await s.get("z", b"fin") is None
    await s.set("z", b"x", _entry(1), ttl_ms=None)
    assert await s.evict_from("z", 1) == -1


async def test_two_nodes_share_one_cache(
    fleet: MockFleet, redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    text = fleet_config(
        fleet,
        routing={"head_poll_ms": 60_000},
        extra={"cache": {"enabled": True}, "state": {"backend": "redis", "url": redis_server.url}},
    )
    async with (
        RouterServer(load_config_text([("a.yaml", text)]), port=0) as a,
        RouterServer(load_config_text([("b.yaml", text)]), port=0) as b,
    ):
        await ready(a)
        await ready(b)
        for p in fleet:
            p.reset_counters()
        first, status = await call(http, a, "eth_getBlockByNumber", ["0x10", False])
        assert status == "MISS"
        again, status = await call(http, b, "eth_getBlockByNumber", ["0x10", False], id=7)
        assert status == "HIT" and again["id"] == 7 and again["result"] == first["result"]
        assert upstream(fleet, "eth_getBlockByNumber") == 1
