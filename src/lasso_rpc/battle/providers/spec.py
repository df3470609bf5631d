"""What a mock provider is told to be: its knobs (``Knobs``, ``FailureMode``) and a fleet's
unstarted form (``MockFleetSpec``). Values only; ``MockProvider`` and ``MockFleet`` run them.

Knobs (``MockProvider.configure(**knobs)``, or its ``set_*`` helpers) take effect on the next
request:

- ``latency_ms`` + uniform ``jitter_ms`` before every answer (randomness from the provider's own
  ``random.Random``, seeded from its id unless one is injected).
- ``failure_mode`` and ``error_rate`` decide which requests fail:
  ``error_rate=None`` (default): every request fails with ``failure_mode`` (``NONE``: none does);
  ``error_rate=p``: a fraction ``p`` fails with ``failure_mode``, or with HTTP 500 if it is
  ``NONE``. A batch (or a WebSocket frame) is one request: it fails as a whole.
- Modes: ``HTTP_500`` (status from ``http_status``, e.g. 502/503), ``JSONRPC_ERROR`` (-32603),
  ``RATE_LIMIT`` (HTTP 429, ``Retry-After: retry_after_s``, -32005), ``HANG`` (never answers until
  the mode changes — then answers normally — or the server stops), ``RESET`` (connection aborted),
  ``MALFORMED`` (200 with a truncated JSON body), ``WRONG_ID`` (the answer carries another id).
  Over WebSocket, ``HTTP_500`` closes the socket with 1011 and ``RESET`` aborts it.
- ``lag_blocks``: the provider's head is the chain head minus this, for every method and for
  subscriptions; later blocks are unknown to it (``null`` / ``header not found``).
- ``unsupported_methods``: answered with -32601 like a provider lacking them.
- ``max_logs_range``: an ``eth_getLogs`` over more blocks is refused with -32005 "query
  exceeds max block range N" (as a hosted plan's limit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_IDS",
    "FAILURE_MODES",
    "FailureMode",
    "Knobs",
    "MockFleetSpec",
    "ProviderSpecs",
    "default_ids",
    "knobs_of",
]


class FailureMode(StrEnum):
    NONE = "none"
    HTTP_500 = "http_500"
    JSONRPC_ERROR = "jsonrpc_error"
    RATE_LIMIT = "rate_limit"
    HANG = "hang"
    RESET = "reset"
    MALFORMED = "malformed"
    WRONG_ID = "wrong_id"


FAILURE_MODES = tuple(m.value for m in FailureMode)


@dataclass(frozen=True, slots=True)
class Knobs:
    """The runtime behaviour of one provider (semantics in the module docstring)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float | None = None
    failure_mode: FailureMode = FailureMode.NONE
    http_status: int = 500
    retry_after_s: int = 1
    lag_blocks: int = 0
    unsupported_methods: frozenset[str] = frozenset()
    max_logs_range: int | None = None

    def __post_init__(self) -> None:
        # Accept YAML-friendly spellings ("hang", a list of methods) and store canonical ones.
        object.__setattr__(self, "failure_mode", FailureMode(self.failure_mode))
        object.__setattr__(self, "unsupported_methods", frozenset(self.unsupported_methods))
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        if self.error_rate is not None and not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be None or within 0..1")
        if not 400 <= self.http_status <= 599:
            raise ValueError("http_status must be an HTTP error status (400..599)")
        if self.retry_after_s < 0 or self.lag_blocks < 0:
            raise ValueError("retry_after_s and lag_blocks must be >= 0")
        if self.max_logs_range is not None and self.max_logs_range < 1:
            raise ValueError("max_logs_range must be None or >= 1")

    def with_changes(self, **changes: Any) -> Knobs:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            valid = ", ".join(f.name for f in dataclasses.fields(self))
            raise ValueError(f"unknown knob(s) {sorted(unknown)}; valid: {valid}")
        return dataclasses.replace(self, **changes)

    def changed(self) -> dict[str, Any]:
        """The knobs that differ from the defaults."""
        default = Knobs()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


DEFAULT_IDS = (
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
    "chi", "psi", "omega",
)  # fmt: skip

ProviderSpecs = Mapping[str, Mapping[str, Any] | Knobs]


def default_ids(n: int) -> list[str]:
    """``alpha``, ``beta``, … then ``mock25``, ``mock26``, … past the Greek alphabet."""
    return [DEFAULT_IDS[i] if i < len(DEFAULT_IDS) else f"mock{i + 1}" for i in range(n)]


def knobs_of(value: Mapping[str, Any] | Knobs) -> Knobs:
    return value if isinstance(value, Knobs) else Knobs().with_changes(**value)


@dataclass(frozen=True, slots=True)
class MockFleetSpec:
    """An unstarted fleet (what ``MockProvider.fleet(...)`` returns); knobs validated already."""

    providers: tuple[tuple[str, Knobs], ...]
    chain_id: int = 1
    block_time_ms: int = 1000

    @classmethod
    def of(
        cls,
        n: int | None = None,
        *,
        chain_id: int = 1,
        block_time_ms: int = 1000,
        **providers: Mapping[str, Any] | Knobs,
    ) -> MockFleetSpec:
        """Named providers with their knobs, topped up with default ids to ``n`` providers."""
        specs = [(pid, knobs_of(k)) for pid, k in providers.items()]
        extra = [pid for pid in default_ids(len(DEFAULT_IDS) + (n or 0)) if pid not in providers]
        specs += [(pid, Knobs()) for pid in extra[: max(0, (n or 0) - len(specs))]]
        if not specs:
            raise ValueError("a fleet needs at least one provider")
        return cls(tuple(specs), chain_id, block_time_ms)

    @property
    def ids(self) -> list[str]:
        return [pid for pid, _ in self.providers]
