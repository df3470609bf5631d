"""A provider's ejection: an explicit state that the outlier detector (or anyone) sets.

::

               eject(until_ms, reason)                   until passed, last probe answered
      in ─────────────────────────────────▶ ejected ──────────────────────────────────▶ in
                                            │   ▲        (or restore(reason))
                                            └───┘ until passed, last probe failed:
                                                  ejected again for twice as long

- ``eject`` and ``restore`` are the whole interface for changing it: the outlier detector
  (``resilience/outliers.py``) calls them, and so may an operator or a replica of another
  router node. Every change, including an extension, calls ``on_change`` once with the new
  ``EjectionSnapshot`` (the provider turns it into a ``provider.ejection`` event).
- Probes: the head poll reports each answer or failure (``probe``). While ejected nothing is
  sent to the provider but polls, so the poll decides whether it comes back.
- No timers, as for the breaker: the end of an ejection is noticed when someone looks
  (``active``, ``probe``, ``snapshot``) after ``until_ms``.
- Length: ``base_ms * 2^(streak-1)`` capped at ``max_ms``; the streak counts ejections since
  the provider was last back for ``max_ms``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lasso_rpc.clock import Clock
from lasso_rpc.config.resilience import EjectionConfig

__all__ = ["Ejection", "EjectionSnapshot"]

_MAX_SHIFT = 30


@dataclass(frozen=True, slots=True)
class EjectionSnapshot:
    """What ``/api/providers`` shows and what a ``provider.ejection`` event carries."""

    ejected: bool
    until_ms: float | None  # on the router's monotonic clock; None when not ejected
    reason: str | None  # why it was ejected (or restored, when not ejected)
    streak: int  # ejections in a row
    ejections: int  # ever
    changed_ms: float | None


class Ejection:
    __slots__ = (
        "_clock",
        "_config",
        "_last_probe_ok",
        "_on_change",
        "_reason",
        "_restored_ms",
        "_streak",
        "changed_ms",
        "ejected",
        "ejections",
        "until_ms",
    )

    def __init__(
        self,
        config: EjectionConfig,
        *,
        clock: Clock,
        on_change: Callable[[EjectionSnapshot], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_change = on_change
        #: Read by the candidate filter on every call: a plain attribute.
        self.ejected = False
        self.until_ms = 0.0
        self._reason: str | None = None
        self._streak = 0
        self.ejections = 0
        self._restored_ms = -float("inf")
        self._last_probe_ok: bool | None = None
        self.changed_ms: float | None = None

    # -- reading -------------------------------------------------------------------------

    def active(self, now_ms: float) -> bool:
        """Ejected at ``now_ms`` (an ejection past its end is resolved first)."""
        if not self.ejected:
            return False
        if now_ms < self.until_ms:
            return True
        self._resolve(now_ms)
        return self.ejected

    def next_length_ms(self, now_ms: float) -> float:
        """How long the next ejection would last."""
        c = self._config
        streak = self._streak
        if not self.ejected and now_ms - self._restored_ms >= c.max_ms:
            streak = 0
        return float(min(c.base_ms << min(streak, _MAX_SHIFT), c.max_ms))

    def snapshot(self) -> EjectionSnapshot:
        self.active(self._clock.now_ms())
        return EjectionSnapshot(
            ejected=self.ejected,
            until_ms=self.until_ms if self.ejected else None,
            reason=self._reason,
            streak=self._streak,
            ejections=self.ejections,
            changed_ms=self.changed_ms,
        )

    # -- changing ------------------------------------------------------------------------

    def eject(self, until_ms: float, reason: str) -> None:
        """Leave the provider out until ``until_ms`` at least (also: extend an ejection)."""
        now = self._clock.now_ms()
        if not self.ejected and now - self._restored_ms >= self._config.max_ms:
            self._streak = 0
        self._streak += 1
        self.ejections += 1
        self.ejected = True
        self.until_ms = until_ms
        self._last_probe_ok = None
        self._changed(reason, now)

    def eject_for(self, reason: str) -> None:
        """Eject for the next length of the schedule (module docstring)."""
        now = self._clock.now_ms()
        self.eject(now + self.next_length_ms(now), reason)

    def restore(self, reason: str) -> None:
        """Back in now (no-op when not ejected)."""
        if not self.ejected:
            return
        now = self._clock.now_ms()
        self.ejected = False
        self.until_ms = 0.0
        self._restored_ms = now
        self._changed(reason, now)

    def probe(self, ok: bool) -> None:
        """The head poll answered (``ok``) or failed; decides the return once the time is up."""
        if not self.ejected:
            return
        self._last_probe_ok = ok
        now = self._clock.now_ms()
        if now >= self.until_ms:
            self._resolve(now)

    def _resolve(self, now_ms: float) -> None:
        if self._last_probe_ok is False:
            self.eject(now_ms + self.next_length_ms(now_ms), "still failing its health poll")
        else:
            self.restore("ejection over, health poll answering")

    def _changed(self, reason: str, now_ms: float) -> None:
        self._reason = reason
        self.changed_ms = now_ms
        if self._on_change is not None:
            self._on_change(self.snapshot_now())

    def snapshot_now(self) -> EjectionSnapshot:
        """The state as it is, without resolving an ejection past its end."""
        return EjectionSnapshot(
            ejected=self.ejected,
            until_ms=self.until_ms if self.ejected else None,
            reason=self._reason,
            streak=self._streak,
            ejections=self.ejections,
            changed_ms=self.changed_ms,
        )

    def __repr__(self) -> str:
        state = f"ejected until {self.until_ms:g} ms" if self.ejected else "in"
        return f"Ejection({state}, streak={self._streak}, reason={self._reason!r})"
