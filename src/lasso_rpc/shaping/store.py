"""The cache's storage seam: ``CacheStore``, a small async protocol, and the values crossing it.

The response cache (``shaping.cache``) decides *what* may be cached and *whether* a stored answer
may still be served; a store only keeps entries. Two stores exist: ``MemoryStore`` (in-process,
bounded by bytes, scan-resistant admission) and a Redis one (scale-out). Every method is async
so that a remote store fits; the memory store never suspends.

Keys live in namespaces: one per chain of a profile (``"<profile>/<chain>"``), so one store
serves every chain of a profile and a reorg on one chain touches only its own entries. A key is
opaque bytes (method and canonical params); a value is a ``CacheEntry``: the upstream ``result``
bytes exactly as received (the client's id is put around them per answer) and what the cache needs
to judge them later.

What a store must do (a test suite for stores: ``tests/unit/test_cache_store.py``):

- ``get`` returns the entry given to ``set`` (same bytes, same fields) or None; never an entry
  whose ``ttl_ms`` has run out, never one removed by ``delete`` or ``evict_from``.
- ``set`` may refuse or drop entries at any time (capacity, admission); a store is a cache.
- **Reorg eviction**: ``evict_from(namespace, height)`` removes, before it returns, every entry of
  the namespace whose ``height`` is not None and is ``>= height``, and returns how many it
  removed (-1 when it cannot tell). ``height`` is the highest block an entry depends on;
  finalized answers carry None and survive. The cache calls it when a block hash at some height
  changed (the fork point) and answers nothing unfinalized from that chain until it returned.
  The cache also checks each entry it reads against its own record of reorgs (``seq``, the
  reorg counter of this node when the upstream call began), so a store that is slow to evict
  cannot make this node serve a replaced block; eviction is what keeps other nodes sharing a
  remote store, and memory, clean.
- ``stats`` is cheap and synchronous (a remote store returns what it last knew).

Serialisation for remote stores: ``encode_entry`` / ``decode_entry`` (msgpack).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import msgspec

__all__ = [
    "FINALITIES",
    "CacheEntry",
    "CacheStore",
    "StoreStats",
    "decode_entry",
    "encode_entry",
]

#: The finality classes of cached answers (SPEC §8), in the order metrics list them.
FINALITIES = ("finalized", "unfinalized", "realtime", "unknown")


class CacheEntry(msgspec.Struct, frozen=True, array_like=True):
    """One cached answer.

    ``value``: the upstream ``result`` bytes. ``finality``: one of ``FINALITIES``. ``height``: the
    highest block the answer depends on (None: no reorg can change it). ``head``: the chain head
    when the upstream call began (realtime entries live while it is the head). ``seq``: the
    reorg counter of the node that made the call, when it began. ``stored_ms``: wall-clock ms.
    """

    value: bytes
    finality: str
    height: int | None = None
    head: int | None = None
    seq: int = 0
    stored_ms: float = 0.0

    @property
    def size(self) -> int:
        return len(self.value)


class StoreStats(msgspec.Struct, frozen=True):
    """``bytes``/``entries`` held now; ``evictions`` by (namespace, finality) since the start:
    entries the store dropped by itself (capacity, admission, expiry), not ``evict_from``."""

    bytes: int
    entries: int
    max_bytes: int
    evictions: Mapping[tuple[str, str], int] = {}


@runtime_checkable
class CacheStore(Protocol):
    """Where cached answers live (rules for implementations: the module docstring)."""

    async def get(self, namespace: str, key: bytes) -> CacheEntry | None: ...

    async def set(
        self, namespace: str, key: bytes, entry: CacheEntry, *, ttl_ms: int | None
    ) -> None:
        """Keep ``entry`` for at most ``ttl_ms`` (None: until evicted)."""
        ...

    async def delete(self, namespace: str, key: bytes) -> None: ...

    async def evict_from(self, namespace: str, height: int) -> int:
        """Remove every entry of ``namespace`` whose height is ``>= height``; the count (-1:
        unknown)."""
        ...

    def stats(self) -> StoreStats: ...

    async def aclose(self) -> None: ...


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CacheEntry)


def encode_entry(entry: CacheEntry) -> bytes:
    """The entry as compact bytes (for a remote store)."""
    return _encoder.encode(entry)


def decode_entry(raw: bytes) -> CacheEntry:
    """Raises ``msgspec.DecodeError`` / ``ValidationError`` for bytes not made by encode_entry."""
    return _decoder.decode(raw)
