"""Budgets that bound what resilience may cost a provider's quota.

``HedgeBudget``: a chain's hedges at most ``percent`` % of its reads plus ``min_per_second``,
the retry budget of Finagle (``RetryBudget``): every read deposits ``percent / 100`` of a token,
every hedge withdraws one token, and deposits and withdrawals count for ``window_ms`` only
(a ring of ten slots), so a quiet hour does not save up a burst of hedges. On top of the
deposits, a reserve of ``min_per_second * window_ms / 1000`` tokens lets a chain with little
traffic hedge at all. One budget per chain: a provider bills every request the router sends it,
whatever the method, and a hung provider makes every method late at once, so a per-method
budget would multiply the worst case by the number of methods.

``TokenBucket``: a provider's own request rate (``rate_limit_rps``), enforced on our side so
that a call goes to another provider instead of being answered with HTTP 429.

Both are pure: time comes from ``now_ms`` or the injected clock.
"""

from __future__ import annotations

from lasso_rpc.clock import Clock

__all__ = ["HedgeBudget", "TokenBucket"]

_SLOTS = 10


class HedgeBudget:
    """Per chain: ``deposit`` once per read, ``try_withdraw`` once per hedge."""

    __slots__ = (
        "_deposit",
        "_idx",
        "_reserve",
        "_slot_ms",
        "_slots",
        "exhausted",
        "granted",
        "reads",
    )

    def __init__(self, *, percent: float, min_per_second: float, window_ms: float) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"percent must be within 0..100, got {percent}")
        if min_per_second < 0.0 or window_ms <= 0.0:
            raise ValueError("min_per_second must be >= 0 and window_ms > 0")
        self._deposit = percent / 100.0
        self._reserve = min_per_second * window_ms / 1000.0
        self._slot_ms = window_ms / _SLOTS
        self._slots = [0.0] * _SLOTS
        self._idx = -1  # absolute index of the newest slot (now_ms // slot_ms)
        self.reads = 0
        self.granted = 0
        self.exhausted = 0

    def _roll(self, now_ms: float) -> int:
        idx = int(now_ms // self._slot_ms)
        gap = idx - self._idx
        if gap > 0:
            slots = self._slots
            if gap >= _SLOTS:
                for i in range(_SLOTS):
                    slots[i] = 0.0
            else:
                for k in range(self._idx + 1, idx + 1):
                    slots[k % _SLOTS] = 0.0
            self._idx = idx
        return self._idx % _SLOTS

    def deposit(self, now_ms: float) -> None:
        """One read that could hedge (once per call: the common case is a float add)."""
        self.reads += 1
        idx = int(now_ms // self._slot_ms)
        i = self._idx % _SLOTS if idx == self._idx else self._roll(now_ms)
        self._slots[i] += self._deposit

    def balance(self, now_ms: float) -> float:
        """Hedges allowed right now (fractional)."""
        self._roll(now_ms)
        return self._reserve + sum(self._slots)

    def try_withdraw(self, now_ms: float, *, count: bool = True) -> bool:
        """Take one hedge; False when the budget is empty (counted as exhausted with
        ``count``: a call asking again is not counted twice)."""
        if self.balance(now_ms) >= 1.0:
            self._slots[self._idx % _SLOTS] -= 1.0
            self.granted += 1
            return True
        self.exhausted += count
        return False

    def snapshot(self, now_ms: float) -> dict[str, float | int]:
        return {
            "balance": round(self.balance(now_ms), 2),
            "reads": self.reads,
            "hedges": self.granted,
            "exhausted": self.exhausted,
        }

    def __repr__(self) -> str:
        window = self._slot_ms * _SLOTS
        return (
            f"HedgeBudget({self._deposit:.1%} of reads + {self._reserve:g} per {window:g} ms;"
            f" reads={self.reads} hedges={self.granted} exhausted={self.exhausted})"
        )


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; a send takes one."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens", "refused")

    def __init__(self, rate_per_s: float, burst: float, *, clock: Clock) -> None:
        if rate_per_s <= 0.0 or burst < 1.0:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate_per_s / 1000.0  # tokens per ms
        self._burst = float(burst)
        self._clock = clock
        self._tokens = self._burst
        self._last = clock.now_ms()
        self.refused = 0

    def _refill(self) -> float:
        now = self._clock.now_ms()
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
        return self._tokens

    def available(self) -> bool:
        """A send would be within the rate now."""
        return self._refill() >= 1.0

    def take(self) -> bool:
        """Spend one token; False (nothing spent) when the rate is used up."""
        if self._refill() >= 1.0:
            self._tokens -= 1.0
            return True
        self.refused += 1
        return False

    def charge(self) -> None:
        """Spend one token even below zero (a send that happens anyway, e.g. a pinned call)."""
        self._tokens = max(self._refill() - 1.0, -self._burst)

    @property
    def tokens(self) -> float:
        return self._refill()

    def __repr__(self) -> str:
        return (
            f"TokenBucket({self._rate * 1000:g}/s, burst={self._burst:g},"
            f" tokens={self._tokens:.2f}, refused={self.refused})"
        )
