"""HDR histograms of latencies in µs (1 µs..60 s, 3 significant digits), encoded or live.

``HistSeries`` keeps one histogram per time bucket, live only while the bucket is recent; older
ones are stored encoded (~1 kB each instead of ~140 kB). ``percentiles`` and ``count_above``
read a histogram at C speed (the per-index loops of ``hdrh`` take milliseconds per histogram).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence

from hdrh.histogram import HdrHistogram

__all__ = [
    "HIST_DIGITS",
    "HIST_HIGHEST_US",
    "HIST_LOWEST_US",
    "HistSeries",
    "count_above",
    "decode_histogram",
    "encode_histogram",
    "merge_histograms",
    "new_histogram",
    "percentiles",
    "release_histogram",
    "to_us",
]

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_DIGITS = 3
_KEEP_OPEN = 3  # buckets behind the newest one whose histograms stay live


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


def decode_histogram(encoded: str | bytes | None) -> HdrHistogram:
    """A histogram from ``hist.encode()`` output (an empty one for ``None``)."""
    if not encoded:
        return new_histogram()
    return HdrHistogram.decode(encoded if isinstance(encoded, bytes) else encoded.encode())


def release_histogram(h: HdrHistogram) -> None:
    """Free a histogram now: ``hdrh`` keeps a histogram <-> encoder reference cycle, so its
    ~140 kB counts array would otherwise wait for a full garbage collection."""
    h.encoder = None


def to_us(ms: float) -> int:
    """Milliseconds → whole µs, clamped into the histogram's range."""
    us = int(ms * 1000.0 + 0.5)
    return HIST_LOWEST_US if us < HIST_LOWEST_US else min(us, HIST_HIGHEST_US)


def encode_histogram(h: HdrHistogram) -> str:
    return str(h.encode().decode("ascii"))


class HistSeries:
    """One histogram per bucket; all but the newest few are kept encoded."""

    __slots__ = ("_frozen", "_hi", "_live")

    def __init__(self) -> None:
        self._live: dict[int, HdrHistogram] = {}
        self._frozen: dict[int, str] = {}
        self._hi = -1

    def record(self, idx: int, us: int) -> None:
        h = self._live.get(idx)
        if h is None:
            h = self._open(idx)
        h.record_value(us)

    def _open(self, idx: int) -> HdrHistogram:
        h = decode_histogram(self._frozen.pop(idx, None))
        self._live[idx] = h
        if idx > self._hi:
            self._hi = idx
            for k in [k for k in self._live if k < idx - _KEEP_OPEN]:
                old = self._live.pop(k)
                self._frozen[k] = encode_histogram(old)
                release_histogram(old)
        return h

    def encoded(self, idx: int) -> str | None:
        h = self._live.get(idx)
        return encode_histogram(h) if h is not None else self._frozen.get(idx)


def _cumulative(h: HdrHistogram) -> list[int]:
    """Running totals of the counts array, up to the largest recorded value (C speed; the
    per-index loops of ``hdrh`` take milliseconds per histogram)."""
    counts = memoryview(h.counts).cast("B").cast("Q") if h.word_size == 8 else list(h.counts)
    last = h.get_counts_array_index(h.max_value) + 1 if h.max_value else 0
    return list(itertools.accumulate(counts[:last]))


def percentiles(h: HdrHistogram, ps: Sequence[float]) -> list[float]:
    """Values in ms at the percentiles ``ps``, as ``get_value_at_percentile`` defines them."""
    if h.get_total_count() == 0:
        return [0.0 for _ in ps]
    cum = _cumulative(h)
    out = []
    for p in ps:
        i = min(bisect.bisect_left(cum, h.get_target_count_at_percentile(p)), len(cum) - 1)
        out.append(h.get_highest_equivalent_value(h.get_value_from_index(i)) / 1000.0)
    return out


def count_above(h: HdrHistogram, threshold_us: float) -> int:
    """Recorded values whose whole histogram bucket lies above ``threshold_us``."""
    cum = _cumulative(h)
    if not cum:
        return 0
    i = h.get_counts_array_index(max(0, int(threshold_us)))
    return 0 if i >= len(cum) else int(cum[-1] - cum[i])


def merge_histograms(encoded: Iterable[str | None]) -> HdrHistogram:
    out = decode_histogram(None)
    for e in encoded:
        if e:
            h = decode_histogram(e)
            out.add(h)
            release_histogram(h)
    return out
