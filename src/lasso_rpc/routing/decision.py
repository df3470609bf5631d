"""A routing decision: who gets the call, who follows, who was skipped, and why.

A ``Decision`` is built once per call, so it is a frozen msgspec Struct that keeps a constant
reason and a few numbers per leading candidate; :meth:`Decision.explain` formats them only
when someone reads them (``include_meta``, ``/api/events``, logs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

__all__ = ["Decision", "Fact"]

#: The numbers behind one ranked candidate: EWMA ms (None: no latency yet), samples, success
#: rate, and the strategy's own figure (effective ms, weight, probability, priority; NaN: none).
Fact = tuple[float | None, int, float, float]

_KEY_FORMAT = {
    "fastest": "effective {:.1f}ms",
    "load-balanced": "weight {:g}",
    "latency-weighted": "p={:.2f}",
    "priority": "priority {:g}",
}


class Decision(msgspec.Struct, frozen=True):
    """A frozen msgspec Struct (one per request: 8x cheaper to build than a frozen dataclass)."""

    order: tuple[str, ...]  # provider ids, best first; the rest is the failover order
    strategy: str
    reason: str  # why order[0], in a few words
    skipped: tuple[tuple[str, str], ...] = ()  # (provider id, why), filled in by the router
    facts: tuple[Fact, ...] = ()  # for order[0] and order[1], formatted only by explain()
    #: Every candidate is half-open: the router sends even when no probe slot is free.
    last_resort: bool = False

    def with_skipped(self, skipped: Iterable[tuple[str, str]]) -> Decision:
        return msgspec.structs.replace(self, skipped=tuple(skipped))

    def explain(self) -> str:
        """E.g. ``fastest: alpha (lowest latency; ewma 51.2ms, 40 samples) over beta (…)``."""
        if not self.order:
            text = f"{self.strategy}: {self.reason}"
        else:
            facts = self.facts
            head = self.reason if not facts else f"{self.reason}; {self._fact(facts[0])}"
            text = f"{self.strategy}: {self.order[0]} ({head})"
            if len(self.order) > 1:
                text += f" over {self.order[1]}"
                if len(facts) > 1:
                    text += f" ({self._fact(facts[1])})"
                if len(self.order) > 2:
                    text += ", then " + ", ".join(self.order[2:])
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{p} ({why})" for p, why in self.skipped)
        return text

    def _fact(self, fact: Fact) -> str:
        ewma, samples, success, key = fact
        parts = ["no latency yet" if ewma is None else f"ewma {ewma:.1f}ms", f"{samples} samples"]
        if success < 1.0:
            parts.append(f"success {success:.1%}")
        fmt = _KEY_FORMAT.get(self.strategy)
        if fmt is not None and math.isfinite(key):
            parts.append(fmt.format(key))
        return ", ".join(parts)
