"""The independent view: upstream calls counted at the mock providers vs the router's claim.

The router says, per request, which providers it tried (``request.finished`` attempts; also
``include_meta``). The providers themselves count what arrived (``MockProvider.method_counts``,
minus the router's own head probes). Counting the workload's methods only, per provider:

- ``claimed``: attempts the router reports;
- ``received``: calls the provider got;
- a provider that received *more* than the router claims means the router's telemetry misses
  calls (retries or hedges it does not report): the run's ground truth is not complete;
  fewer is normal under chaos (an attempt at a killed provider never arrives).

``calls_per_request`` (every received call over the client's requests) is the cost of the
way of reaching the providers: 1.0 for one call each, more with retries, hedges or a quorum.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ProviderCalls", "UpstreamView", "provider_calls", "upstream_view"]


@dataclass(frozen=True, slots=True)
class ProviderCalls:
    """Calls per method a provider received over a window (its counters at two instants)."""

    calls: Mapping[str, int]
    probes: Mapping[str, int]

    def of(self, methods: Collection[str]) -> int:
        return sum(self.calls.get(m, 0) - self.probes.get(m, 0) for m in methods)


def provider_calls(
    before: tuple[Mapping[str, int], Mapping[str, int]],
    after: tuple[Mapping[str, int], Mapping[str, int]],
) -> ProviderCalls:
    """The difference of two (method counts, probe counts) readings of one mock provider."""

    def diff(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
        return {m: n - a.get(m, 0) for m, n in b.items() if n - a.get(m, 0)}

    return ProviderCalls(diff(before[0], after[0]), diff(before[1], after[1]))


@dataclass(frozen=True, slots=True)
class UpstreamView:
    methods: tuple[str, ...]
    claimed: Mapping[str, int | None]  # None: no router telemetry (a contender without one)
    received: Mapping[str, int]
    requests: int  # client requests of those methods
    calls_per_request: float | None
    unclaimed: int  # calls the providers received beyond what the router reports
    tolerance: int  # requests that may still have been in flight in the router at the end

    @property
    def consistent(self) -> bool:
        return self.unclaimed <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "providers": {
                p: {"claimed": self.claimed.get(p), "received": n} for p, n in self.received.items()
            },
            "received_total": sum(self.received.values()),
            "claimed_total": None
            if any(v is None for v in self.claimed.values())
            else sum(v or 0 for v in self.claimed.values()),
            "requests": self.requests,
            "calls_per_request": self.calls_per_request,
            "unclaimed": self.unclaimed,
            "consistent": self.consistent,
        }


def upstream_view(
    *,
    methods: Collection[str],
    received: Mapping[str, ProviderCalls],
    attempts_by_method: Mapping[str, Mapping[str, int]] | None,
    requests: int,
    unanswered: int = 0,
) -> UpstreamView:
    """Compare (see the module docstring); ``attempts_by_method`` None: no router claim."""
    wanted = tuple(sorted(methods))
    got = {p: c.of(wanted) for p, c in received.items()}
    claimed: dict[str, int | None] = {}
    unclaimed = 0
    for p, n in got.items():
        if attempts_by_method is None:
            claimed[p] = None
            continue
        c = sum(attempts_by_method.get(p, {}).get(m, 0) for m in wanted)
        claimed[p] = c
        unclaimed += max(0, n - c)
    total = sum(got.values())
    return UpstreamView(
        methods=wanted,
        claimed=claimed,
        received=got,
        requests=requests,
        calls_per_request=round(total / requests, 4) if requests else None,
        unclaimed=unclaimed,
        tolerance=unanswered,
    )
