"""API keys kept in Redis (``access.redis_keys``): added without a restart, seen by every node.

The hash ``<prefix>:keys`` maps the SHA-256 (hex) of a key to its block as JSON, without the
key itself (``{"name": "acme", "profile": "default", "rate_limit": {"rps": 50}}``): Redis never
holds a usable secret. ``lasso-rpc keys add`` writes one (``add_key``).

Lookups are cached (found: ``ttl_s``; unknown: ``negative_ttl_s``, so a flood of wrong keys
costs one Redis call per key and period). While Redis is down a key seen before is still
accepted (from the cache, however old); a key never seen cannot be checked and is refused.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec

from lasso_rpc.access.keys import Client, stored_client
from lasso_rpc.errors import LassoError

if TYPE_CHECKING:
    from lasso_rpc.cluster.redis_guard import RedisGuard

__all__ = ["RedisKeys", "add_key"]


class RedisKeys:
    def __init__(
        self,
        guard: RedisGuard,
        prefix: str,
        *,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        max_cached: int = 10_000,
    ) -> None:
        self._guard = guard
        self.hash_key = f"{prefix}:keys"
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max = max_cached
        self._cache: OrderedDict[str, tuple[float, Client | None]] = OrderedDict()
        self.lookups = 0

    async def find(self, presented: str) -> Client | None:
        hexd = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(hexd)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            self.lookups += 1
            raw = await self._guard.call(lambda r: r.hget(self.hash_key, hexd))
        except LassoError:
            return hit[1] if hit is not None else None
        client: Client | None = None
        if raw is not None:
            try:
                client = stored_client(raw, hexd)
            except (ValueError, msgspec.DecodeError):  # pydantic's error is a ValueError
                client = None
        ttl = self._ttl_s if client is not None else self._negative_ttl_s
        self._cache[hexd] = (now + ttl, client)
        self._cache.move_to_end(hexd)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return client

    def __repr__(self) -> str:
        return f"RedisKeys({self.hash_key}, cached={len(self._cache)})"


async def add_key(redis: Any, prefix: str, key: str, spec: dict[str, Any]) -> str:
    """Store ``key`` with its limits (``spec``: an ``access.keys`` block without ``key``);
    returns the field written (the key's SHA-256)."""
    hexd = hashlib.sha256(key.encode()).hexdigest()
    stored_client(msgspec.json.encode(spec), hexd)  # validated like a configured key
    await redis.hset(f"{prefix}:keys", hexd, msgspec.json.encode(spec))
    return hexd
