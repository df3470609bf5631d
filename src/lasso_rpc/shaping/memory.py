"""``MemoryStore``: the in-process cache store, bounded by bytes, resisting one-off scans.

Window TinyLFU (W-TinyLFU, as in Caffeine): a new entry enters a small LRU *window* (1 % of the
bytes); when the window overflows, its oldest entry competes for a place in the *main* space
(a segmented LRU: probation, then protected after a second hit). It gets in only if it was asked
for more often lately than the entries it would push out (``FrequencySketch``). A scan of a
million distinct keys therefore churns through the window and leaves the popular entries where
they are, and memory never exceeds ``max_bytes`` (sizes count the key, the value and a fixed
overhead per entry) plus the sketch (5 bytes per counter column, fixed at start).

Expired entries are dropped when read. Reorg eviction (``evict_from``) uses an index of the
entries that have a height, per namespace. Never suspends: every method finishes at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from lasso_rpc.clock import SYSTEM_CLOCK, Clock
from lasso_rpc.shaping.sketch import FrequencySketch
from lasso_rpc.shaping.store import CacheEntry, StoreStats

__all__ = ["ENTRY_OVERHEAD", "MemoryStore"]

#: Bytes counted per entry besides key and value (the dict slots and objects that hold it).
ENTRY_OVERHEAD = 512  # measured: bench/cache.py traces the store's memory under a scan
_WINDOW, _PROBATION, _PROTECTED = 0, 1, 2
_Key = tuple[str, bytes]


class _Item:
    __slots__ = ("entry", "expires_ms", "h", "size", "where")

    def __init__(self, entry: CacheEntry, expires_ms: float | None, h: int, size: int) -> None:
        self.entry = entry
        self.expires_ms = expires_ms
        self.h = h
        self.size = size
        self.where = _WINDOW


class MemoryStore:
    """A ``CacheStore`` in this process (see the module docstring)."""

    def __init__(
        self, max_bytes: int, *, clock: Clock = SYSTEM_CLOCK, expected_entry_bytes: int = 1024
    ) -> None:
        if max_bytes < 4096:
            raise ValueError("max_bytes must be at least 4096")
        self.max_bytes = max_bytes
        self._clock = clock
        self._window_cap = max(max_bytes // 100, min(65536, max_bytes // 4))
        self._main_cap = max_bytes - self._window_cap
        self._protected_cap = self._main_cap * 8 // 10
        self._max_entry = max_bytes // 4
        self._items: dict[_Key, _Item] = {}
        self._segments: tuple[OrderedDict[_Key, _Item], ...] = (
            OrderedDict(),
            OrderedDict(),
            OrderedDict(),
        )
        self._bytes = [0, 0, 0]
        self._heights: dict[str, dict[int, set[bytes]]] = {}
        self._sketch = FrequencySketch(8 * max_bytes // expected_entry_bytes)
        self._evictions: dict[tuple[str, str], int] = {}

    # -- CacheStore ----------------------------------------------------------------------

    async def get(self, namespace: str, key: bytes) -> CacheEntry | None:
        return self.get_now(namespace, key)

    def get_now(self, namespace: str, key: bytes) -> CacheEntry | None:
        k = (namespace, key)
        item = self._items.get(k)
        self._sketch.increment(hash(k) if item is None else item.h)
        if item is None:
            return None
        if item.expires_ms is not None and self._clock.now_ms() >= item.expires_ms:
            self._remove(k, item)
            self._count_eviction(namespace, item)
            return None
        where = item.where
        if where == _PROBATION:
            self._move(k, item, _PROTECTED)
            self._shrink_protected()
        else:
            self._segments[where].move_to_end(k)
        return item.entry

    async def set(
        self, namespace: str, key: bytes, entry: CacheEntry, *, ttl_ms: int | None
    ) -> None:
        self.set_now(namespace, key, entry, ttl_ms=ttl_ms)

    def set_now(self, namespace: str, key: bytes, entry: CacheEntry, *, ttl_ms: int | None) -> None:
        k = (namespace, key)
        old = self._items.get(k)
        if old is not None:
            self._remove(k, old)
        size = len(key) + len(entry.value) + ENTRY_OVERHEAD
        if size > self._max_entry:
            return
        expires = None if ttl_ms is None else self._clock.now_ms() + ttl_ms
        item = _Item(entry, expires, hash(k) if old is None else old.h, size)
        self._items[k] = item
        self._segments[_WINDOW][k] = item
        self._bytes[_WINDOW] += size
        if entry.height is not None:
            self._heights.setdefault(namespace, {}).setdefault(entry.height, set()).add(key)
        while self._bytes[_WINDOW] > self._window_cap:
            ck, cand = self._segments[_WINDOW].popitem(last=False)
            self._bytes[_WINDOW] -= cand.size
            self._admit(ck, cand)

    async def delete(self, namespace: str, key: bytes) -> None:
        k = (namespace, key)
        item = self._items.get(k)
        if item is not None:
            self._remove(k, item)

    async def evict_from(self, namespace: str, height: int) -> int:
        return self.evict_from_now(namespace, height)

    def evict_from_now(self, namespace: str, height: int) -> int:
        index = self._heights.get(namespace)
        if not index:
            return 0
        n = 0
        for h in [h for h in index if h >= height]:
            for key in list(index.get(h, ())):
                k = (namespace, key)
                item = self._items.get(k)
                if item is not None:
                    self._remove(k, item)
                    n += 1
        return n

    def stats(self) -> StoreStats:
        return StoreStats(
            bytes=sum(self._bytes),
            entries=len(self._items),
            max_bytes=self.max_bytes,
            evictions=dict(self._evictions),
        )

    async def aclose(self) -> None:
        self.clear()

    # -- internals -----------------------------------------------------------------------

    def clear(self) -> None:
        self._items.clear()
        for seg in self._segments:
            seg.clear()
        self._bytes = [0, 0, 0]
        self._heights.clear()

    def _admit(self, k: _Key, cand: _Item) -> None:
        """The window's oldest entry ``cand`` enters main space, or is dropped (TinyLFU)."""
        probation, protected = self._segments[_PROBATION], self._segments[_PROTECTED]
        need = self._bytes[_PROBATION] + self._bytes[_PROTECTED] + cand.size - self._main_cap
        if need > 0:
            freq = self._sketch.estimate(cand.h)
            victims: list[tuple[_Key, _Item]] = []
            freed = 0
            for seg in (probation, protected):
                for vk, victim in seg.items():
                    if self._sketch.estimate(victim.h) >= freq:
                        self._drop(k, cand)  # not more popular than what it would replace
                        return
                    victims.append((vk, victim))
                    freed += victim.size
                    if freed >= need:
                        break
                if freed >= need:
                    break
            for vk, victim in victims:
                self._remove(vk, victim)
                self._count_eviction(vk[0], victim)
        cand.where = _PROBATION
        probation[k] = cand
        self._bytes[_PROBATION] += cand.size

    def _drop(self, k: _Key, item: _Item) -> None:
        # ``item`` already left its segment (popped from the window): forget the rest of it.
        del self._items[k]
        self._unindex(k, item)
        self._count_eviction(k[0], item)

    def _move(self, k: _Key, item: _Item, where: int) -> None:
        del self._segments[item.where][k]
        self._bytes[item.where] -= item.size
        item.where = where
        self._segments[where][k] = item
        self._bytes[where] += item.size

    def _shrink_protected(self) -> None:
        protected = self._segments[_PROTECTED]
        while self._bytes[_PROTECTED] > self._protected_cap and protected:
            k, item = next(iter(protected.items()))
            self._move(k, item, _PROBATION)

    def _remove(self, k: _Key, item: _Item) -> None:
        del self._items[k]
        del self._segments[item.where][k]
        self._bytes[item.where] -= item.size
        self._unindex(k, item)

    def _unindex(self, k: _Key, item: _Item) -> None:
        height = item.entry.height
        if height is None:
            return
        index = self._heights.get(k[0])
        if index is None:
            return
        keys = index.get(height)
        if keys is not None:
            keys.discard(k[1])
            if not keys:
                del index[height]

    def _count_eviction(self, namespace: str, item: _Item) -> None:
        key = (namespace, item.entry.finality)
        self._evictions[key] = self._evictions.get(key, 0) + 1

    @property
    def evictions(self) -> Mapping[tuple[str, str], int]:
        return self._evictions

    def __repr__(self) -> str:
        return (
            f"MemoryStore(bytes={sum(self._bytes)}/{self.max_bytes}, entries={len(self._items)}, "
            f"window={len(self._segments[0])}, probation={len(self._segments[1])}, "
            f"protected={len(self._segments[2])})"
        )
