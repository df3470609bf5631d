"""The CacheStore contract (shaping/store.py), run against every store; the memory store's own
bounds and admission policy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.shaping.memory import ENTRY_OVERHEAD, MemoryStore
from lasso_rpc.shaping.store import CacheEntry, CacheStore, decode_entry, encode_entry

StoreFactory = Callable[[FakeClock], CacheStore]

STORES: dict[str, StoreFactory] = {"memory": lambda clock: MemoryStore(1 << 20, clock=clock)}


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@pytest.fixture(params=sorted(STORES))
def store_and_clock(request: pytest.FixtureRequest) -> tuple[CacheStore, FakeClock]:
    clock = FakeClock()
    return STORES[request.param](clock), clock


def _entry(
    value: bytes = b'"0x1"', *, height: int | None = None, fin: str = "finalized"
) -> CacheEntry:
    return CacheEntry(value, fin, height, head=height, seq=3, stored_ms=12.5)


def test_get_returns_exactly_what_was_set(store_and_clock: tuple[CacheStore, FakeClock]) -> None:
    store, _ = store_and_clock
    e = _entry(b'{"number":"0x10","hash":"0xab"}', height=16, fin="unfinalized")

    async def go() -> None:
        assert await store.get("p/eth", b"k") is None
        await store.set("p/eth", b"k", e, ttl_ms=None)
        assert await store.get("p/eth", b"k") == e
        assert await store.get("p/other", b"k") is None  # namespaces are apart

    run(go())


def test_ttl_and_delete(store_and_clock: tuple[CacheStore, FakeClock]) -> None:
    store, clock = store_and_clock

    async def go() -> None:
        await store.set("n", b"a", _entry(), ttl_ms=1000)
        await store.set("n", b"b", _entry(), ttl_ms=None)
        clock.advance(999)
        assert await store.get("n", b"a") is not None
        clock.advance(1)
        assert await store.get("n", b"a") is None
        await store.delete("n", b"b")
        assert await store.get("n", b"b") is None

    run(go())


def test_evict_from_removes_every_entry_at_or_above_the_height(
    store_and_clock: tuple[CacheStore, FakeClock],
) -> None:
    store, _ = store_and_clock

    async def go() -> None:
        for h in range(10, 20):
            await store.set("n", b"h%d" % h, _entry(height=h, fin="unfinalized"), ttl_ms=None)
        await store.set("n", b"final", _entry(), ttl_ms=None)
        await store.set("other", b"h15", _entry(height=15, fin="unfinalized"), ttl_ms=None)
        removed = await store.evict_from("n", 15)
        assert removed in (5, -1)
        for h in range(10, 20):
            assert (await store.get("n", b"h%d" % h) is None) == (h >= 15)
        assert await store.get("n", b"final") is not None
        assert await store.get("other", b"h15") is not None

    run(go())


def test_entry_round_trips_through_bytes() -> None:
    e = _entry(b"[1,2]", height=7, fin="realtime")
    assert decode_entry(encode_entry(e)) == e


# -- MemoryStore ---------------------------------------------------------------------------


def test_memory_store_stays_within_its_bytes() -> None:
    store = MemoryStore(64 * 1024, clock=FakeClock())
    value = b"x" * 500
    for i in range(10_000):
        store.set_now("n", b"key%d" % i, CacheEntry(value, "finalized"), ttl_ms=None)
        assert store.stats().bytes <= 64 * 1024
    s = store.stats()
    assert s.bytes > 0.75 * 64 * 1024  # full, but never over
    assert s.entries * (500 + ENTRY_OVERHEAD) <= s.bytes <= s.entries * (500 + ENTRY_OVERHEAD + 8)
    assert sum(s.evictions.values()) + s.entries == 10_000


def test_memory_store_refuses_an_entry_larger_than_a_quarter_of_it() -> None:
    store = MemoryStore(64 * 1024, clock=FakeClock())
    store.set_now("n", b"big", CacheEntry(b"x" * 20_000, "finalized"), ttl_ms=None)
    assert store.get_now("n", b"big") is None


def test_a_scan_of_one_off_keys_does_not_flush_the_popular_entries() -> None:
    """200 hot keys read over and over, then 100,000 distinct keys read once each (a scan),
    with the hot keys still asked for meanwhile: they keep their places (an LRU would lose
    them all after the first few thousand scanned keys)."""
    store = MemoryStore(512 * 1024, clock=FakeClock())
    value = b"v" * 600
    hot = [b"hot%d" % i for i in range(200)]

    def read(key: bytes) -> bool:
        if store.get_now("n", key) is not None:
            return True
        store.set_now("n", key, CacheEntry(value, "finalized"), ttl_ms=None)
        return False

    for _ in range(5):
        for k in hot:
            read(k)
    hits = asked = 0
    for i in range(100_000):
        read(b"scan%d" % i)
        if i % 50 == 0:
            k = hot[(i // 50) % len(hot)]
            asked += 1
            hits += read(k)
    assert hits / asked > 0.95, (hits, asked)
    assert store.stats().bytes <= 512 * 1024
