"""``RedisCacheStore``: the response cache's second store (``shaping.store.CacheStore``), in Redis,
shared by every node with ``state.backend: redis`` (and ``cache.enabled`` in the profile).

Keys (``<prefix>`` is ``state.prefix``):

- ``<prefix>:cache:<namespace>:<key>``: the entry (``encode_entry``) after 8 bytes of its
  expiry (wall-clock ms, 0: none), with a Redis TTL as well (cleanup; the expiry read back is
  what decides, on the store's clock, so a store on a fake clock obeys the same contract);
- ``<prefix>:cachez:<namespace>``: a sorted set of the keys that have a height, scored by it,
  for reorg eviction: ``evict_from`` deletes every entry scored ``>= height`` and their index
  members in one Lua call. The index is trimmed to ``max_indexed`` members (the lowest heights
  go, *with their entries*: a cache may drop entries at any time, never keep unindexed ones).

Fail-open, as all shared state: a ``get`` Redis cannot answer in ``state.timeout_ms`` is a
miss, a ``set`` is dropped, an ``evict_from`` returns -1 (the cache's own reorg record still
keeps this node from serving a replaced block). Memory is Redis's: set ``maxmemory`` with an
LRU policy on the Redis you give the cache; ``cache.max_bytes`` bounds the memory store only.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import msgspec

from lasso_rpc.clock import Clock
from lasso_rpc.errors import LassoError
from lasso_rpc.shaping.shaper import StoreFactory
from lasso_rpc.shaping.store import CacheEntry, StoreStats, decode_entry, encode_entry

if TYPE_CHECKING:
    from lasso_rpc.cluster.redis_guard import RedisGuard

__all__ = ["RedisCacheStore", "redis_cache_stores"]

_EXPIRY = struct.Struct(">q")

#: KEYS[1] entry, KEYS[2] index; ARGV: value, ttl ms (0: none), height ("" : none), max indexed
_SET = """
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), KEYS[1])
  local n = redis.call('ZCARD', KEYS[2])
  local max = tonumber(ARGV[4])
  if n > max then
    local old = redis.call('ZRANGE', KEYS[2], 0, n - max - 1)
    for _, k in ipairs(old) do redis.call('DEL', k) end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - max - 1)
  end
end
return 1
"""

#: KEYS[1] index; ARGV[1] height. The number of entries deleted.
_EVICT = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local n = 0
for _, k in ipairs(keys) do n = n + redis.call('DEL', k) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
return n
"""


class RedisCacheStore:
    def __init__(
        self,
        guard: RedisGuard,
        prefix: str,
        *,
        clock: Clock,
        max_bytes: int = 0,
        max_indexed: int = 100_000,
    ) -> None:
        self._guard = guard
        self._prefix = prefix
        self._clock = clock
        self._max_bytes = max_bytes
        self._max_indexed = max_indexed
        self._set_script: Any = None
        self._evict_script: Any = None
        self.sets = 0
        self.bytes_written = 0
        self.failures = 0

    def _key(self, namespace: str, key: bytes) -> bytes:
        return f"{self._prefix}:cache:{namespace}:".encode() + key

    def _index(self, namespace: str) -> str:
        return f"{self._prefix}:cachez:{namespace}"

    async def get(self, namespace: str, key: bytes) -> CacheEntry | None:
        try:
            raw = await self._guard.call(lambda r: r.get(self._key(namespace, key)))
        except LassoError:
            self.failures += 1
            return None
        if not isinstance(raw, bytes) or len(raw) < _EXPIRY.size:
            return None
        (expires_ms,) = _EXPIRY.unpack_from(raw)
        if expires_ms and self._clock.wall_s() * 1000.0 >= expires_ms:
            return None
        try:
            return decode_entry(bytes(raw[_EXPIRY.size :]))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    async def set(
        self, namespace: str, key: bytes, entry: CacheEntry, *, ttl_ms: int | None
    ) -> None:
        if ttl_ms is not None and ttl_ms <= 0:
            return
        if self._set_script is None:
            self._set_script = self._guard.client.register_script(_SET)
        expires = 0 if ttl_ms is None else int(self._clock.wall_s() * 1000.0) + ttl_ms
        value = _EXPIRY.pack(expires) + encode_entry(entry)
        keys = [self._key(namespace, key), self._index(namespace)]
        args = [value, ttl_ms or 0, "" if entry.height is None else entry.height, self._max_indexed]
        script = self._set_script
        try:
            await self._guard.call(lambda r: script(keys=keys, args=args, client=r))
        except LassoError:
            self.failures += 1
            return
        self.sets += 1
        self.bytes_written += len(value)

    async def delete(self, namespace: str, key: bytes) -> None:
        k = self._key(namespace, key)
        try:
            await self._guard.call(lambda r: r.delete(k))
            await self._guard.call(lambda r: r.zrem(self._index(namespace), k))
        except LassoError:
            self.failures += 1

    async def evict_from(self, namespace: str, height: int) -> int:
        if self._evict_script is None:
            self._evict_script = self._guard.client.register_script(_EVICT)
        script = self._evict_script
        try:
            n = await self._guard.call(
                lambda r: script(keys=[self._index(namespace)], args=[height], client=r)
            )
        except LassoError:
            self.failures += 1
            return -1
        return int(n)

    def stats(self) -> StoreStats:
        """What this node wrote (Redis holds what every node wrote; it is not asked here)."""
        return StoreStats(bytes=self.bytes_written, entries=self.sets, max_bytes=self._max_bytes)

    async def aclose(self) -> None:
        return None  # the connection is the guard's, shared with the rest of the shared state

    def __repr__(self) -> str:
        return f"RedisCacheStore({self._prefix}:cache, sets={self.sets}, failures={self.failures})"


def redis_cache_stores(guard: RedisGuard, prefix: str, clock: Clock) -> StoreFactory:
    """The cache's store factory (``Router(cache_store=...)``) for ``state.backend: redis``."""
    return lambda slug, cfg: RedisCacheStore(guard, prefix, clock=clock, max_bytes=cfg.max_bytes)
