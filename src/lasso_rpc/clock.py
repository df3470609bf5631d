"""Injected time: breakers, health, strategies and load shapes never call time directly."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "MonotonicClock", "SYSTEM_CLOCK"]


class Clock(Protocol):
    def now_ms(self) -> float:
        """Monotonic milliseconds."""
        ...

    def wall_s(self) -> float:
        """Wall-clock seconds since the epoch (for event timestamps)."""
        ...


class MonotonicClock:
    __slots__ = ()

    def now_ms(self) -> float:
        return time.monotonic() * 1000.0

    def wall_s(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "MonotonicClock()"


class FakeClock:
    """A clock tests move by hand."""

    __slots__ = ("_ms", "_wall0")

    def __init__(self, start_ms: float = 0.0, wall0: float = 1_700_000_000.0) -> None:
        self._ms = start_ms
        self._wall0 = wall0

    def now_ms(self) -> float:
        return self._ms

    def wall_s(self) -> float:
        return self._wall0 + self._ms / 1000.0

    def advance(self, ms: float) -> None:
        self._ms += ms

    def __repr__(self) -> str:
        return f"FakeClock(now_ms={self._ms})"


SYSTEM_CLOCK: Clock = MonotonicClock()
