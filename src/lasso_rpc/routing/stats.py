"""Passive benchmarking: what real traffic says about each provider, per method x transport.

The caller records every finished attempt once; hedged attempts that were cancelled are simply
not recorded. What an outcome feeds:

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

Memory is bounded: a ring of ``ring_size`` doubles per key, at most ``max_methods`` methods per
transport (later ones share the ``*other*`` key).
"""

from __future__ import annotations

import math
from array import array
from typing import Any

__all__ = ["HINT_EVERY", "OTHER_METHODS", "TRANSPORTS", "LatencyStats", "ProviderStats"]

TRANSPORTS = ("http", "ws")
OTHER_METHODS = "*other*"
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
        """An attempt cancelled after ``elapsed_ms``: a lower bound that only moves the EWMA up."""
        if self.ewma_ms is not None and elapsed_ms > self.ewma_ms:
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
        }

    def __repr__(self) -> str:
        e = "-" if self.ewma_ms is None else f"{self.ewma_ms:.1f}ms"
        return f"LatencyStats(ewma={e}, samples={self.samples}, success={self.success_rate:.3f})"


class _Table:
    """One transport's stats: per method plus every method together (the fallback)."""

    __slots__ = ("all", "methods")

    def __init__(self, all_methods: LatencyStats) -> None:
        self.all = all_methods
        self.methods: dict[str, LatencyStats] = {}


class ProviderStats:
    """Every :class:`LatencyStats` of one provider, keyed by transport then method."""

    __slots__ = ("_alpha", "_half_life_ms", "_max_methods", "_ring_size", "_tables")

    def __init__(
        self,
        *,
        alpha: float = 0.2,
        ring_size: int = 128,
        half_life_ms: float = 10_000.0,
        max_methods: int = 256,
    ) -> None:
        if max_methods < 1:
            raise ValueError(f"max_methods must be >= 1, got {max_methods}")
        self._alpha = alpha
        self._ring_size = ring_size
        self._half_life_ms = half_life_ms
        self._max_methods = max_methods
        self._tables: dict[str, _Table] = {}
        self._new_stats()  # validates the parameters now rather than at the first record

    # -- reads -----------------------------------------------------------------------------

    def get(self, method: str, transport: str) -> LatencyStats | None:
        """The stats strategies read for ``method``, or None before its first record."""
        t = self._tables.get(transport)
        if t is None:
            return None
        s = t.methods.get(method)
        if s is None and len(t.methods) > self._max_methods:
            return t.methods.get(OTHER_METHODS)
        return s

    def overall(self, transport: str) -> LatencyStats | None:
        """All methods together on ``transport``."""
        t = self._tables.get(transport)
        return None if t is None else t.all

    def latency_ms(self, method: str, transport: str) -> float | None:
        """EWMA for the method, else for all methods on the transport, else None."""
        s = self.get(method, transport)
        if s is not None and s.ewma_ms is not None:
            return s.ewma_ms
        t = self._tables.get(transport)
        return None if t is None else t.all.ewma_ms

    def percentile(self, method: str, transport: str, q: float) -> float | None:
        """Percentile (q in [0, 1]) for the method, else for all methods, else None."""
        s = self.get(method, transport)
        v = None if s is None else s.percentile(q)
        if v is None:
            t = self._tables.get(transport)
            if t is not None:
                v = t.all.percentile(q)
        return v

    def percentile_hint(self, method: str, transport: str, q: float) -> float | None:
        """``percentile`` refreshed every ``HINT_EVERY`` samples: sizes timeouts and hedges."""
        s = self.get(method, transport)
        v = None if s is None else s.percentile_hint(q)
        if v is None:
            t = self._tables.get(transport)
            if t is not None:
                v = t.all.percentile_hint(q)
        return v

    def success_rate(self, method: str, transport: str, now_ms: float | None = None) -> float:
        """Decayed success ratio for the method, 1.0 with no data (no fallback: a per-method
        fact); with ``now_ms``, as seen from then (see :meth:`LatencyStats.success_at`)."""
        s = self.get(method, transport)
        if s is None:
            return 1.0
        return s.success_rate if now_ms is None else s.success_at(now_ms)

    def samples(self, method: str, transport: str) -> int:
        s = self.get(method, transport)
        return 0 if s is None else s.samples

    def last_sample_ms(self, method: str, transport: str) -> float | None:
        s = self.get(method, transport)
        return None if s is None else s.last_ms

    def snapshot(self) -> dict[str, Any]:
        """``{transport: {"all": row, "methods": {method: row}}}`` for /api/providers."""
        return {
            tr: {
                "all": t.all.summary(),
                "methods": {m: s.summary() for m, s in t.methods.items()},
            }
            for tr, t in self._tables.items()
        }

    # -- writes ----------------------------------------------------------------------------

    def record(
        self,
        method: str,
        transport: str,
        latency_ms: float,
        ok: bool,
        now_ms: float,
        *,
        timed_out: bool = False,
    ) -> None:
        """One finished attempt; see the module docstring for what each outcome feeds."""
        t = self._tables.get(transport) or self._table(transport)
        s = t.methods.get(method) or self._method(t, method)
        s.record(latency_ms, ok, now_ms, timed_out)
        t.all.record(latency_ms, ok, now_ms, timed_out)

    def censored(self, method: str, transport: str, elapsed_ms: float, now_ms: float) -> None:
        """A hedge loser was cancelled after ``elapsed_ms``: no success, no failure, no ring
        sample; only an EWMA that was lower than that is pulled up (the provider is that slow)."""
        t = self._tables.get(transport)
        s = t.methods.get(method) if t is not None else None
        if s is not None and t is not None:
            s.censored(elapsed_ms, now_ms)
            t.all.censored(elapsed_ms, now_ms)

    def seed(
        self,
        method: str,
        transport: str,
        latency_ms: float,
        success_rate: float,
        samples: int,
        *,
        now_ms: float,
    ) -> None:
        """Pre-populate a benchmark so ``fastest`` starts from a known ranking."""
        t = self._tables.get(transport) or self._table(transport)
        s = t.methods.get(method) or self._method(t, method)
        s.seed(latency_ms, success_rate, samples, now_ms)
        t.all.seed(latency_ms, success_rate, samples, now_ms)

    def _new_stats(self) -> LatencyStats:
        return LatencyStats(
            alpha=self._alpha, ring_size=self._ring_size, half_life_ms=self._half_life_ms
        )

    def _table(self, transport: str) -> _Table:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        t = self._tables[transport] = _Table(self._new_stats())
        return t

    def _method(self, t: _Table, method: str) -> LatencyStats:
        # Beyond the cap every new method shares one key: clients cannot grow memory at will.
        if len(t.methods) >= self._max_methods:
            method = OTHER_METHODS
            s = t.methods.get(method)
            if s is not None:
                return s
        s = t.methods[method] = self._new_stats()
        return s

    def __repr__(self) -> str:
        parts = [
            f"{tr}: {len(t.methods)} methods, {t.all.samples} samples"
            for tr, t in self._tables.items()
        ]
        return f"ProviderStats({'; '.join(parts) or 'empty'})"
