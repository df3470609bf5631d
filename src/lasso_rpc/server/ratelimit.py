"""Per-client token buckets (bounded: the least recently seen clients are forgotten first)."""

from __future__ import annotations

from collections import OrderedDict

from lasso_rpc.clock import Clock

__all__ = ["ClientLimiter"]


class ClientLimiter:
    def __init__(self, rate: float, burst: int, clock: Clock, max_clients: int = 10_000) -> None:
        self._rate = rate / 1000.0  # tokens per ms
        self._burst = float(burst)
        self._clock = clock
        self._max = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str, cost: int = 1) -> bool:
        now = self._clock.now_ms()
        tokens, last = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        ok = tokens >= cost
        if ok:
            tokens -= cost
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return ok

    def __repr__(self) -> str:
        rate = self._rate * 1000
        return f"ClientLimiter(rate={rate}/s, burst={self._burst}, clients={len(self._buckets)})"
