"""Limits in Redis, spent locally far from their end (access/redis_store.py), on a real
redis-server: every local charge reaches Redis, two nodes never overrun a limit together,
small limits always ask, and a Redis that stops answering stops local spending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lasso_rpc.access.buckets import BUCKET, WINDOW, Check
from lasso_rpc.access.redis_store import RedisStore
from lasso_rpc.battle.providers.redis_server import RedisServer
from lasso_rpc.cluster.redis_guard import RedisGuard
from lasso_rpc.config.shared import StateConfig
from lasso_rpc.errors import LassoError


@pytest.fixture
async def guards(redis_server: RedisServer) -> AsyncIterator[list[RedisGuard]]:
    cfg = StateConfig(backend="redis", url=redis_server.url, timeout_ms=500)
    gs = [RedisGuard(cfg), RedisGuard(cfg)]
    yield gs
    for g in gs:
        await g.aclose()


def bucket(burst: float) -> Check:
    return Check("k:acme", BUCKET, 1e-6, burst, 1)  # refills too slowly to matter


async def settle(*stores: RedisStore) -> None:
    for _ in range(20):  # the charges made locally leave at the next loop turns
        await asyncio.sleep(0.01)


async def test_local_charges_all_reach_redis(guards: list[RedisGuard]) -> None:
    store = RedisStore(guards[0], "t")
    try:
        check = [bucket(100_000)]
        passed = 0
        for _ in range(20):
            verdicts = await asyncio.gather(*(store.take(check) for _ in range(50)))
            passed += sum(v.ok for v in verdicts)
        assert passed == 1000
        assert store.local_passes > 500 and store.remote_checks > 0
        await settle(store)
        level = await guards[0].client.hget("t:rl:k:acme", "v")
        assert level is not None and abs(float(level) - 99_000) < 1.0
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", [BUCKET, WINDOW])
async def test_two_nodes_spend_a_limit_exactly_once(guards: list[RedisGuard], kind: int) -> None:
    a, b = RedisStore(guards[0], "t"), RedisStore(guards[1], "t")
    check = [bucket(2000) if kind == BUCKET else Check("q:acme", WINDOW, 86_400.0, 2000, 1)]
    try:
        passed = 0
        for _ in range(60):  # bursts on both nodes at once, then tight loops on each
            got = await asyncio.gather(*(s.take(check) for s in (a, b) for _ in range(25)))
            passed += sum(v.ok for v in got)
            for s in (a, b):
                for _ in range(20):
                    passed += (await s.take(check)).ok
        await settle(a, b)
        assert passed == 2000  # 6,000 asked: every token spent, none twice
        assert a.local_passes > 0 and b.local_passes > 0
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_small_limit_always_asks_redis(guards: list[RedisGuard]) -> None:
    store = RedisStore(guards[0], "t")
    try:
        verdicts = [await store.take([bucket(500)]) for _ in range(600)]
        assert sum(v.ok for v in verdicts) == 500
        assert store.local_passes == 0
    finally:
        await store.aclose()


async def test_local_spending_stops_when_redis_stops_answering(
    guards: list[RedisGuard], redis_server: RedisServer
) -> None:
    store = RedisStore(guards[0], "t")
    try:
        check = [bucket(100_000)]
        for _ in range(5):
            await store.take(check)
        assert store.local_passes > 0
        await redis_server.kill()  # the charges sent meanwhile find no Redis
        await settle(store)
        with pytest.raises(LassoError):
            await store.take(check)
    finally:
        await store.aclose()


async def test_a_fast_refilling_bucket_keeps_its_time_to_the_microsecond(
    guards: list[RedisGuard],
) -> None:
    store = RedisStore(guards[0], "t")  # Lua's tostring kept 14 digits: 100 µs of a timestamp
    try:
        check = [Check("k:fast", BUCKET, 1e8, 100, 1)]  # refills at once, between batches
        verdicts = []
        for _ in range(10):  # 50 in one Lua call: the same time, read back as it was written
            verdicts += await asyncio.gather(*(store.take(check) for _ in range(50)))
        assert all(v.ok for v in verdicts)
    finally:
        await store.aclose()
