"""Load shapes: a request rate as a function of time, and the send offsets it gives.

A shape (``Constant``, ``Burst``, ``Ramp``) is given as linear segments. Arrivals turn it into
send offsets by inverting the expected count Λ(t) = ∫ rate: the k-th ``"even"`` arrival is at
Λ⁻¹(k); ``"poisson"`` arrivals are at Λ⁻¹(E₁ + … + Eₖ) with Eᵢ ~ Exp(1), i.e. a
(non-homogeneous) Poisson process. ``arrival_offsets`` is a lazy iterator, so a 30-minute run
never sits in memory, and it is pure: the same ``random.Random`` seed gives the same offsets.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "SHAPE_KEYS",
    "Arrivals",
    "BadField",
    "Burst",
    "Constant",
    "Ramp",
    "Segment",
    "Shape",
    "arrival_offsets",
    "finite",
]

Arrivals = Literal["even", "poisson"]


class BadField(ValueError):
    """A ValueError naming the field (its YAML key) at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        self.key = key
        self.detail = message


def finite(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadField(name, f"must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise BadField(name, f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


Segment = tuple[float, float, float, float]  # t0, t1, rate at t0, rate at t1 (linear between)


@dataclass(frozen=True, slots=True)
class Constant:
    rate: float

    def __post_init__(self) -> None:
        finite("rate", self.rate)

    def segments(self, duration_s: float) -> Iterator[Segment]:
        yield (0.0, duration_s, self.rate, self.rate)


@dataclass(frozen=True, slots=True)
class Ramp:
    start_rate: float
    end_rate: float

    def __post_init__(self) -> None:
        finite("start_rate", self.start_rate)
        finite("end_rate", self.end_rate)

    def segments(self, duration_s: float) -> Iterator[Segment]:
        yield (0.0, duration_s, self.start_rate, self.end_rate)


@dataclass(frozen=True, slots=True)
class Burst:
    """``base_rate``, with ``burst_rate`` during [k·every, k·every + len) for k = 1, 2, …"""

    base_rate: float
    burst_rate: float
    burst_every_s: float
    burst_len_s: float

    def __post_init__(self) -> None:
        finite("base_rate", self.base_rate)
        finite("burst_rate", self.burst_rate)
        finite("burst_every_s", self.burst_every_s, positive=True)
        finite("burst_len_s", self.burst_len_s, positive=True)
        if self.burst_len_s > self.burst_every_s:
            raise BadField("burst_len_s", "must not exceed burst_every_s")

    def segments(self, duration_s: float) -> Iterator[Segment]:
        t = 0.0
        for k in itertools.count(1):
            start = min(k * self.burst_every_s, duration_s)
            if start > t:
                yield (t, start, self.base_rate, self.base_rate)
            if start >= duration_s:
                return
            t = min(start + self.burst_len_s, duration_s)
            yield (start, t, self.burst_rate, self.burst_rate)


Shape: TypeAlias = Constant | Ramp | Burst
SHAPE_KEYS: dict[str, tuple[type[Shape], tuple[str, ...]]] = {
    "constant": (Constant, ("rate",)),
    "poisson": (Constant, ("rate",)),
    "ramp": (Ramp, ("start_rate", "end_rate")),
    "burst": (Burst, ("base_rate", "burst_rate", "burst_every_s", "burst_len_s")),
}


def arrival_offsets(
    shape: Shape, duration_s: float, arrivals: Arrivals, rng: random.Random
) -> Iterator[float]:
    """Send offsets in [0, duration_s), non-decreasing (see the module docstring)."""
    even = arrivals == "even"
    target = 0.0 if even else rng.expovariate(1.0)
    cum = 0.0  # Λ at the start of the segment
    for t0, t1, r0, r1 in shape.segments(duration_s):
        span = t1 - t0
        slope = (r1 - r0) / span if span > 0 else 0.0
        end = cum + (r0 + r1) * 0.5 * span
        while target < end:
            need = max(0.0, target - cum)
            # r0·x + slope·x²/2 = need, in the form that stays exact when slope == 0.
            root = math.sqrt(max(0.0, r0 * r0 + 2.0 * slope * need))
            x = 2.0 * need / (r0 + root) if need > 0.0 else 0.0
            t = t0 + x
            if t >= t1:
                break  # rounding at the segment's edge: the next segment takes it
            yield t
            target += 1.0 if even else rng.expovariate(1.0)
        cum = end
