"""A circuit breaker for one provider and transport: a pure state machine on an injected clock.

::

                 failure_threshold provider faults, or
                 rate_limit_threshold rate limits, in a row
      closed ──────────────────────────────────────────────▶ open
        ▲                                                    │  ▲
        │ half_open_successes                   delay passed │  │ a probe failed
        │ probes answered                                    ▼  │ (delay grows)
        └──────────────────────────────────────────────── half_open

- Outcomes are ``ErrorClass`` values or None (success). PROVIDER and RATE_LIMITED count, each
  on its own counter; every other outcome (success, CLIENT, CAPABILITY, LAGGING) proves the
  provider alive: it resets both counters when closed and counts as a good probe when half-open.
- The recovery delay is ``recovery_ms * 2^(opens-1)``, capped at ``max_recovery_ms``, times a
  jitter factor drawn uniformly from ``[1-jitter, 1+jitter]`` (so breakers opened together do
  not probe together). ``opens`` counts the opens since the breaker last closed.
- No timers: open becomes half_open when someone looks (``state``, ``admits``, ``acquire``,
  ``record``, ``snapshot``) after the delay has passed.
- Half-open admits at most ``half_open_max_in_flight`` probes at once: ``acquire`` takes a slot,
  ``record`` or ``release`` gives it back. Slots never go below zero, so an answer to a request
  sent before the breaker opened cannot corrupt the count (it may free a slot early, which at
  worst lets one extra probe through).
- While open, late answers change nothing: they describe the provider before it was isolated.
  An answer to a request *sent* while open (panic mode: nothing else was left) is fresh news
  (``record(..., fresh=True)``): a success counts as a half-open probe that succeeded, so a
  provider that serves panic traffic closes its breaker instead of waiting out the delay.
- ``force_open(reason)`` opens with the normal (growing) delay; ``force_open(reason, hold=True)``
  stays open until ``force_close``. ``force_close`` closes from any state and forgets history.
- ``adopt`` takes an open or closed state another router process reported (shared state).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from lasso_rpc.clock import Clock
from lasso_rpc.config.resilience import BreakerConfig
from lasso_rpc.resilience.classify import ErrorClass

__all__ = ["BreakerSnapshot", "BreakerState", "BreakerTransition", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    from_state: BreakerState
    to_state: BreakerState
    reason: str
    at_ms: float


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What ``/api/providers`` shows about a breaker."""

    name: str
    state: BreakerState
    consecutive_failures: int
    consecutive_rate_limits: int
    consecutive_opens: int
    open_until_ms: float | None
    held: bool
    probes_in_flight: int
    probe_successes: int
    last_reason: str | None
    last_change_ms: float | None


_MAX_SHIFT = 62  # 2^62 * recovery_ms is past any cap; keeps the arithmetic small


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_config",
        "_failures",
        "_held",
        "_last_change_ms",
        "_last_reason",
        "_name",
        "_on_change",
        "_open_until_ms",
        "_opens",
        "_probe_successes",
        "_probes",
        "_rate_limits",
        "_rng",
        "_state",
    )

    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Clock,
        rng: random.Random,
        on_change: Callable[[BreakerTransition], None] | None = None,
        name: str = "",
    ) -> None:
        self._config = config
        self._clock = clock
        self._rng = rng
        self._on_change = on_change
        self._name = name
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._rate_limits = 0
        self._opens = 0
        self._open_until_ms = 0.0
        self._held = False
        self._probes = 0
        self._probe_successes = 0
        self._last_reason: str | None = None
        self._last_change_ms: float | None = None

    # -- reading -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> BreakerState:
        self._refresh()
        return self._state

    @property
    def closed(self) -> bool:
        """Closed now (a closed breaker changes only on an answer, never with time alone)."""
        return self._state is BreakerState.CLOSED

    @property
    def open_until_ms(self) -> float | None:
        """When an open breaker starts probing; None when not open or held open."""
        if self.state is not BreakerState.OPEN or self._held:
            return None
        return self._open_until_ms

    @property
    def consecutive_opens(self) -> int:
        return self._opens

    def admits(self) -> bool:
        """May a request be sent now? Takes no probe slot."""
        if self._state is BreakerState.CLOSED:
            return True
        state = self.state
        if state is BreakerState.HALF_OPEN:
            return self._probes < self._config.half_open_max_in_flight
        return state is BreakerState.CLOSED

    def snapshot(self) -> BreakerSnapshot:
        state = self.state
        return BreakerSnapshot(
            name=self._name,
            state=state,
            consecutive_failures=self._failures,
            consecutive_rate_limits=self._rate_limits,
            consecutive_opens=self._opens,
            open_until_ms=self.open_until_ms,
            held=self._held,
            probes_in_flight=self._probes if state is BreakerState.HALF_OPEN else 0,
            probe_successes=self._probe_successes if state is BreakerState.HALF_OPEN else 0,
            last_reason=self._last_reason,
            last_change_ms=self._last_change_ms,
        )

    # -- requests ------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Admit one request, taking a probe slot when half-open. False: do not send it."""
        if self._state is BreakerState.CLOSED:
            return True
        state = self.state  # a refresh only moves open to half-open, never to closed
        if state is BreakerState.OPEN or self._probes >= self._config.half_open_max_in_flight:
            return False
        self._probes += 1
        return True

    def release(self) -> None:
        """Give back a probe slot without an outcome (a cancelled attempt, a hedge loser)."""
        if self._state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def record(self, outcome: ErrorClass | None, *, fresh: bool = False) -> None:
        """Feed one answer (None = success) and give back the probe slot it held, if any.

        ``fresh``: the request was sent while the breaker was open (module docstring).
        """
        state = self.state
        failed = outcome is ErrorClass.PROVIDER or outcome is ErrorClass.RATE_LIMITED
        if fresh and state is BreakerState.OPEN and not failed and not self._held:
            self._probes = self._probe_successes = 0
            self._move(BreakerState.HALF_OPEN, "a request sent in panic mode was answered")
            state = BreakerState.HALF_OPEN
        if state is BreakerState.HALF_OPEN:
            self.release()
            if failed:
                self._open(f"probe failed: {outcome}")
                return
            self._probe_successes += 1
            if self._probe_successes >= self._config.half_open_successes:
                self._close(f"{self._probe_successes} successful probes")
        elif state is BreakerState.CLOSED:
            if outcome is ErrorClass.PROVIDER:
                self._failures += 1
                if self._failures >= self._config.failure_threshold:
                    self._open(f"{self._failures} consecutive provider faults")
            elif outcome is ErrorClass.RATE_LIMITED:
                self._rate_limits += 1
                if self._rate_limits >= self._config.rate_limit_threshold:
                    self._open(f"{self._rate_limits} consecutive rate limits")
            else:
                self._failures = self._rate_limits = 0

    # -- control API ---------------------------------------------------------------------

    def force_open(self, reason: str, *, hold: bool = False) -> None:
        """Open now. The normal recovery delay applies unless ``hold`` keeps it open."""
        if self.state is BreakerState.OPEN:
            self._held = self._held or hold
            return
        self._held = hold
        self._open(f"forced open: {reason}")

    def force_close(self, reason: str) -> None:
        if self.state is BreakerState.CLOSED:
            self._failures = self._rate_limits = 0
            return
        self._close(f"forced close: {reason}")

    def adopt(
        self, state: BreakerState, *, open_until_ms: float, held: bool, opens: int, reason: str
    ) -> None:
        """Take the state another router process reported (``cluster/sync.py``).

        OPEN: open until ``open_until_ms`` (this clock), ``held`` or not; already open, it keeps
        the later deadline. CLOSED: close from any state. HALF_OPEN is never shared: each
        process reaches it by itself when the deadline passes.
        """
        if state is BreakerState.OPEN:
            self._opens = max(self._opens, opens)
            if self.state is BreakerState.OPEN:
                self._open_until_ms = max(self._open_until_ms, open_until_ms)
                self._held = self._held or held
                return
            self._open_until_ms = open_until_ms
            self._held = held
            self._failures = self._rate_limits = 0
            self._probes = self._probe_successes = 0
            self._move(BreakerState.OPEN, reason)
        elif state is BreakerState.CLOSED and self.state is not BreakerState.CLOSED:
            self._close(reason)

    # -- transitions ---------------------------------------------------------------------

    def _refresh(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and not self._held
            and self._clock.now_ms() >= self._open_until_ms
        ):
            self._probes = self._probe_successes = 0
            self._move(BreakerState.HALF_OPEN, "recovery delay elapsed")

    def _open(self, reason: str) -> None:
        self._opens += 1
        self._open_until_ms = self._clock.now_ms() + self._recovery_delay_ms()
        self._failures = self._rate_limits = 0
        self._probes = self._probe_successes = 0
        self._move(BreakerState.OPEN, reason)

    def _close(self, reason: str) -> None:
        self._opens = 0
        self._held = False
        self._failures = self._rate_limits = 0
        self._probes = self._probe_successes = 0
        self._move(BreakerState.CLOSED, reason)

    def _recovery_delay_ms(self) -> float:
        c = self._config
        base = min(c.recovery_ms << min(self._opens - 1, _MAX_SHIFT), c.max_recovery_ms)
        return base * self._rng.uniform(1.0 - c.jitter, 1.0 + c.jitter)

    def _move(self, to: BreakerState, reason: str) -> None:
        now = self._clock.now_ms()
        previous, self._state = self._state, to
        self._last_reason, self._last_change_ms = reason, now
        if self._on_change is not None:
            self._on_change(BreakerTransition(previous, to, reason, now))

    def __repr__(self) -> str:
        c = self._config
        timed = self._state is BreakerState.OPEN and not self._held
        until = f", open_until_ms={self._open_until_ms:g}" if timed else ""
        return (
            f"CircuitBreaker({self._name!r}, state={self._state}, "
            f"failures={self._failures}/{c.failure_threshold}, "
            f"rate_limits={self._rate_limits}/{c.rate_limit_threshold}, "
            f"opens={self._opens}{' held' if self._held else ''}{until})"
        )
