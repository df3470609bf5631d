"""The faults a ``FaultProxy`` applies (``Faults``), its counters, and the bandwidth shaper."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["BURST_S", "Bucket", "Faults", "ProxyCounters"]

BURST_S = 0.02  # token bucket capacity, in seconds of traffic


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults a FaultProxy applies (semantics in the module docstring); defaults: none."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_bytes_per_s: float | None = None
    reset_new: bool = False
    blackhole: bool = False
    slow_close_ms: float = 0.0
    refuse: bool = False

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.slow_close_ms < 0:
            raise ValueError("latency_ms, jitter_ms and slow_close_ms must be >= 0")
        if self.bandwidth_bytes_per_s is not None and self.bandwidth_bytes_per_s <= 0:
            raise ValueError("bandwidth_bytes_per_s must be None (no cap) or > 0")

    def with_changes(self, **changes: Any) -> Faults:
        names = [f.name for f in dataclasses.fields(self)]
        unknown = set(changes) - set(names)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; valid: {', '.join(names)}")
        return dataclasses.replace(self, **changes)

    def changed(self) -> dict[str, Any]:
        """The faults that differ from the defaults (none: a clean link)."""
        default = Faults()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


@dataclass(frozen=True, slots=True)
class ProxyCounters:
    accepted: int  # connections accepted (including those reset at once)
    active: int  # connections open now
    reset: int  # connections the proxy reset (reset(), reset_new, blackhole lifted)
    upstream_failures: int  # connections whose target could not be reached
    bytes_up: int  # forwarded client -> target
    bytes_down: int  # forwarded target -> client
    bytes_dropped: int  # swallowed by a blackhole


class Bucket:
    """Token bucket that may go into debt: ``take`` says how long to wait before sending."""

    __slots__ = ("_rate", "_stamp", "_tokens")

    def __init__(self) -> None:
        self._rate = 0.0
        self._tokens = 0.0
        self._stamp = 0.0

    def take(self, n: int, rate: float, now: float) -> float:
        burst = rate * BURST_S
        if rate != self._rate:
            self._rate, self._tokens, self._stamp = rate, burst, now
        self._tokens = min(burst, self._tokens + (now - self._stamp) * rate) - n
        self._stamp = now
        return max(0.0, -self._tokens / rate)
