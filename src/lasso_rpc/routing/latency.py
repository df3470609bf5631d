"""One provider x method x transport of passive benchmarking: latency and outcome memory.

The caller records every finished attempt once. An attempt cancelled unanswered (it lost the
race to a hedge, or the request's deadline cut it) is a *censored* sample: the provider took at
least that long. It is not an outcome; :meth:`LatencyStats.censored` only pulls an EWMA that is
lower than the elapsed time up to it (and counts it), so a provider that hangs stops looking
fast (the outlier detector, ``resilience/outliers.py``, hears of it as well). What an outcome
feeds:

=====================================  =========  ===============  ==========================
outcome                                EWMA       percentile ring  success / failure weights
=====================================  =========  ===============  ==========================
``ok=True``                            yes        yes              success
``ok=False``                           no         no               failure
``ok=False, timed_out=True``           yes        no               failure
=====================================  =========  ===============  ==========================

An error answer's latency says nothing about how fast real work is served (a 429 can come back
in 1 ms), so plain failures never touch latency. A timeout does push the EWMA up, so a provider
that stops answering looks slow to ``fastest`` and not merely flaky; it stays out of the ring
because percentiles size hedge delays, and timeouts there would delay hedging exactly when it is
needed.

Old knowledge fades with one half-life (default 10 s):

- success/failure weights decay with time, so recent outcomes outweigh an old outage;
- silence forgives: after more than one half-life without any outcome the failure share halves
  with each further half-life (:meth:`LatencyStats.success_at`), so a provider that got no
  traffic because it failed is tried again rather than judged on stale failures forever;
- the EWMA gives a fresh sample more than ``alpha`` after a pause
  (``alpha_eff = 1 - (1 - alpha) * 0.5 ** (gap / half_life)``): a provider probed once after
  30 s of silence moves most of the way to its new latency at once.

Reads allocate nothing except ``percentile``, which sorts the ring lazily and caches the sorted
copy until the next record, and ``percentile_hint``, the same for sizing timeouts and hedge
delays on every request: its sorted copy is refreshed only every ``HINT_EVERY`` records, because
sorting 128 samples per request cost more than the rest of the routing decision.

Memory is bounded: a ring of ``ring_size`` doubles per key. The keys of one provider are kept by
``stats.ProviderStats``.
"""

from __future__ import annotations

import math
from array import array

__all__ = ["HINT_EVERY", "LatencyStats"]

#: ``percentile_hint`` re-sorts after this many new samples (or sooner, while the ring is small).
HINT_EVERY = 16


class LatencyStats:
    """Latency and outcome memory of one provider x method x transport.

    ``ewma_ms``, ``samples``, ``success_rate`` and ``last_ms`` are plain attributes because
    strategies read them for every candidate of every request; only this class writes them.
    ``samples`` counts every outcome, never decayed (it drives warm-up); ``success_rate`` is the
    decayed success ratio, 1.0 before the first outcome.
    """

    __slots__ = (
        "_alpha",
        "_ewma_at",
        "_fail",
        "_half_life_ms",
        "_hint",
        "_hint_age",
        "_ok",
        "_pos",
        "_ring",
        "_ring_size",
        "_sorted",
        "censored_samples",
        "ewma_ms",
        "last_ms",
        "samples",
        "success_rate",
    )

    def __init__(
        self, *, alpha: float = 0.2, ring_size: int = 128, half_life_ms: float = 10_000.0
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if ring_size < 1:
            raise ValueError(f"ring_size must be >= 1, got {ring_size}")
        if half_life_ms <= 0.0:
            raise ValueError(f"half_life_ms must be > 0, got {half_life_ms}")
        self._alpha = alpha
        self._ring_size = ring_size
        self._half_life_ms = half_life_ms
        self._ring = array("d")
        self._pos = 0
        self._sorted: list[float] | None = None
        self._hint: list[float] | None = None
        self._hint_age = 0  # samples pushed since _hint was sorted
        self._ewma_at = 0.0
        self._ok = 0.0
        self._fail = 0.0
        self.ewma_ms: float | None = None
        self.samples = 0
        self.success_rate = 1.0
        self.last_ms: float | None = None
        self.censored_samples = 0

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the last ``ring_size`` answered latencies; q in [0, 1]."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q is a fraction in [0, 1], got {q}")
        s = self._sorted
        if s is None:
            if not self._ring:
                return None
            s = self._sorted = sorted(self._ring)
        return s[max(math.ceil(q * len(s)) - 1, 0)]

    def percentile_hint(self, q: float) -> float | None:
        """``percentile(q)`` as of at most ``HINT_EVERY`` samples ago: for per-request sizing."""
        s = self._hint
        if s is None or self._hint_age >= min(HINT_EVERY, len(s)):
            if not self._ring:
                return None
            s = self._sorted
            if s is None:
                s = self._sorted = sorted(self._ring)
            self._hint = s
            self._hint_age = 0
        return s[max(math.ceil(q * len(s)) - 1, 0)]

    def success_at(self, now_ms: float) -> float:
        """``success_rate`` seen from ``now_ms``: no news forgives an old outage.

        After more than one half-life without any outcome, the failure share halves with every
        further half-life, so a provider that was failing and then got no traffic (breaker open,
        out of the load-balanced tier) is given traffic again instead of being judged forever.
        """
        r = self.success_rate
        last = self.last_ms
        if r >= 1.0 or last is None:
            return r
        silence = now_ms - last - self._half_life_ms
        if silence <= 0.0:
            return r
        return 1.0 - (1.0 - r) * math.exp2(-silence / self._half_life_ms)

    def record(self, latency_ms: float, ok: bool, now_ms: float, timed_out: bool = False) -> None:
        last = self.last_ms
        if last is not None and now_ms > last:
            gap = now_ms - last
            keep = math.exp2(-gap / self._half_life_ms)
            if gap > self._half_life_ms and self._fail > 0.0:
                # Start from the forgiven rate, so reads before and after this record agree.
                total = (self._ok + self._fail) * keep
                r = self.success_at(now_ms)
                self._ok, self._fail = total * r, total * (1.0 - r)
            else:
                self._ok *= keep
                self._fail *= keep
        if ok:
            self._ok += 1.0
        else:
            self._fail += 1.0
        self.success_rate = self._ok / (self._ok + self._fail)
        self.samples += 1
        if last is None or now_ms > last:
            self.last_ms = now_ms
        if ok:
            self._push(latency_ms)
            self._sorted = None
        if ok or timed_out:
            self._update_ewma(latency_ms, now_ms)

    def censored(self, elapsed_ms: float, now_ms: float) -> None:
        """An attempt cancelled after ``elapsed_ms``: a lower bound that only moves the EWMA up
        (or is the first estimate: better than none for a provider that never answered)."""
        self.censored_samples += 1
        if self.ewma_ms is None or elapsed_ms > self.ewma_ms:
            self._update_ewma(elapsed_ms, now_ms)

    def seed(self, latency_ms: float, success_rate: float, samples: int, now_ms: float) -> None:
        """Add ``samples`` synthetic outcomes, as if observed just now (battle test helper)."""
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if not 0.0 <= success_rate <= 1.0:
            raise ValueError(f"success_rate must be in [0, 1], got {success_rate}")
        e = self.ewma_ms
        n = self.samples
        self.ewma_ms = latency_ms if e is None else (e * n + latency_ms * samples) / (n + samples)
        self._ewma_at = now_ms
        for _ in range(min(samples, self._ring_size)):
            self._push(latency_ms)
        self._sorted = None
        self._ok += success_rate * samples
        self._fail += (1.0 - success_rate) * samples
        self.success_rate = self._ok / (self._ok + self._fail)
        self.samples += samples
        if self.last_ms is None or now_ms > self.last_ms:
            self.last_ms = now_ms

    def _push(self, latency_ms: float) -> None:
        self._hint_age += 1
        ring = self._ring
        if len(ring) < self._ring_size:
            ring.append(latency_ms)
        else:
            ring[self._pos] = latency_ms
            self._pos = (self._pos + 1) % self._ring_size

    def _update_ewma(self, x: float, now_ms: float) -> None:
        e = self.ewma_ms
        if e is None:
            self.ewma_ms = x
        else:
            a = self._alpha
            gap = now_ms - self._ewma_at
            if gap > 0.0:
                a = 1.0 - (1.0 - a) * math.exp2(-gap / self._half_life_ms)
            self.ewma_ms = e + a * (x - e)
        self._ewma_at = now_ms

    def summary(self) -> dict[str, float | int | None]:
        """The row /api/providers shows for this key."""
        e = self.ewma_ms
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        return {
            "p50": None if p50 is None else round(p50, 2),
            "p95": None if p95 is None else round(p95, 2),
            "ewma": None if e is None else round(e, 2),
            "success_rate": round(self.success_rate, 4),
            "samples": self.samples,
            "censored": self.censored_samples,
        }

    def __repr__(self) -> str:
        e = "-" if self.ewma_ms is None else f"{self.ewma_ms:.1f}ms"
        return f"LatencyStats(ewma={e}, samples={self.samples}, success={self.success_rate:.3f})"
