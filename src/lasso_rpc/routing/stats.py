"""Passive benchmarking: what real traffic says about each provider, per method x transport.

``ProviderStats`` holds one :class:`~lasso_rpc.routing.latency.LatencyStats` per method and
transport, plus one for all methods of a transport (the fallback when a method has no data yet).
What each outcome feeds, how old knowledge fades and why reads allocate nothing:
``routing/latency.py``.

Memory is bounded: at most ``max_methods`` methods per transport (later ones share the
``*other*`` key).
"""

from __future__ import annotations

from typing import Any

from lasso_rpc.routing.latency import LatencyStats

__all__ = ["OTHER_METHODS", "TRANSPORTS", "LatencyStats", "ProviderStats"]

TRANSPORTS = ("http", "ws")
OTHER_METHODS = "*other*"


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
        t = self._tables.get(transport) or self._table(transport)
        s = t.methods.get(method) or self._method(t, method)
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
