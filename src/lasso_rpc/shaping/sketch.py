"""A frequency sketch for cache admission (TinyLFU): how often was a key asked for lately?

Four rows of 8-bit counters saturating at 15, indexed by four mixes of the key's hash (a
count-min sketch: the estimate is the smallest of the four), behind a *doorkeeper*: a Bloom
filter that absorbs the first sighting of a key, so keys seen once (a scan) never reach the
counters and cannot make them look popular through collisions. After ``10 x width`` increments
every counter is halved and the doorkeeper cleared, so old popularity fades and a key that was
hot an hour ago does not keep a place forever. Memory is fixed: ``5 x width`` bytes.
"""

from __future__ import annotations

__all__ = ["FrequencySketch"]

_MAX = 15
_HALVE = bytes(i >> 1 for i in range(256))
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5)
_MASK64 = (1 << 64) - 1


class FrequencySketch:
    __slots__ = ("_additions", "_door", "_mask", "_rows", "_sample", "width")

    def __init__(self, expected_entries: int) -> None:
        width = 1024
        while width < expected_entries and width < (1 << 20):
            width <<= 1
        self.width = width
        self._mask = width - 1
        self._rows = [bytearray(width) for _ in range(4)]
        self._door = bytearray(width)  # 8 x width bits
        self._sample = 10 * width
        self._additions = 0

    def _indexes(self, h: int) -> tuple[int, int, int, int]:
        m = self._mask
        h &= _MASK64
        return (
            ((h * _MIX[0]) & _MASK64) >> 40 & m,
            ((h * _MIX[1]) & _MASK64) >> 40 & m,
            ((h * _MIX[2]) & _MASK64) >> 40 & m,
            ((h * _MIX[3]) & _MASK64) >> 40 & m,
        )

    def increment(self, h: int) -> None:
        i0, i1, i2, i3 = self._indexes(h)
        door = self._door
        b0, b1 = (
            (i0 << 3 | i2 & 7) & (self.width * 8 - 1),
            (i1 << 3 | i3 & 7) & (self.width * 8 - 1),
        )
        m0, m1 = 1 << (b0 & 7), 1 << (b1 & 7)
        if not (door[b0 >> 3] & m0 and door[b1 >> 3] & m1):
            door[b0 >> 3] |= m0
            door[b1 >> 3] |= m1
            return
        r0, r1, r2, r3 = self._rows
        if r0[i0] < _MAX:
            r0[i0] += 1
        if r1[i1] < _MAX:
            r1[i1] += 1
        if r2[i2] < _MAX:
            r2[i2] += 1
        if r3[i3] < _MAX:
            r3[i3] += 1
        self._additions += 1
        if self._additions >= self._sample:
            self._age()

    def estimate(self, h: int) -> int:
        r0, r1, r2, r3 = self._rows
        i0, i1, i2, i3 = self._indexes(h)
        door = self._door
        b0, b1 = (
            (i0 << 3 | i2 & 7) & (self.width * 8 - 1),
            (i1 << 3 | i3 & 7) & (self.width * 8 - 1),
        )
        seen = 1 if door[b0 >> 3] & (1 << (b0 & 7)) and door[b1 >> 3] & (1 << (b1 & 7)) else 0
        return min(r0[i0], r1[i1], r2[i2], r3[i3]) + seen

    def _age(self) -> None:
        self._rows = [bytearray(row.translate(_HALVE)) for row in self._rows]
        self._door = bytearray(self.width)
        self._additions //= 2

    @property
    def nbytes(self) -> int:
        return 5 * self.width

    def __repr__(self) -> str:
        return f"FrequencySketch(width={self.width}, additions={self._additions})"
