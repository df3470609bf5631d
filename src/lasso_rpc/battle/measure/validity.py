"""Can a run's figures be trusted? Telemetry loss, load-generator lag, and the verdict.

A run whose ground truth is incomplete (router events lost on the way to the collector, or
fewer events than requests the router answered, or providers that received calls the router
does not report) or whose load generator fell behind the schedule is **invalid**: its SLO
verdicts are shown, but the run does not pass. Every report carries these figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from lasso_rpc.battle.measure.upstream_view import UpstreamView

__all__ = [
    "DEFAULT_MAX_GENERATOR_LAG_MS",
    "UNANSWERED_CLASSES",
    "LoadSummary",
    "Telemetry",
    "Validity",
    "judge_validity",
    "unanswered",
]

#: Past this p99 of "how late the generator released a request", the load was not the one the
#: scenario asked for (and latency from the intended time partly measures the generator).
DEFAULT_MAX_GENERATOR_LAG_MS = 250.0

#: Client error classes of requests the router never answered (so no router event is owed).
UNANSWERED_CLASSES = ("timeout", "cancelled")
_UNANSWERED_PREFIXES = ("transport:", "exception:")


def unanswered(errors_by_class: Mapping[str, int]) -> int:
    """Requests in ``errors_by_class`` that got no answer from the router."""
    return sum(
        n
        for k, n in errors_by_class.items()
        if k in UNANSWERED_CLASSES or k.startswith(_UNANSWERED_PREFIXES)
    )


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What one workload's generator did (the load generator's or the contender sidecar's)."""

    workload: int  # index in the scenario's workloads
    sender: str  # "loadgen" | "sidecar"
    transport: str  # "http" | "ws" | the client library
    sent: int
    completed: int
    cancelled: int
    delayed_by_cap: int
    generator_lag_ms_p99: float | None  # None: the sender reports its maximum only
    generator_lag_ms_max: float

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Telemetry:
    """How the router's events reached the collector, and what was lost on the way."""

    source: str  # "bus" (in-process) | "stream" (/api/events) | "none"
    events_lost: int  # dropped by the router's stream for a slow reader (seq gaps)
    stream_reconnects: int
    decode_errors: int
    out_of_range: int  # events outside the run's time range or past a timeline's cap
    router_requests: int  # request.finished events collected
    answered_by_router: int  # client requests that got an answer from the router

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Validity:
    valid: bool
    reasons: tuple[str, ...]
    max_generator_lag_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reasons": list(self.reasons),
            "max_generator_lag_ms": self.max_generator_lag_ms,
        }


def judge_validity(
    *,
    telemetry: Telemetry | None,
    loads: Sequence[LoadSummary],
    upstream: UpstreamView | None,
    max_generator_lag_ms: float = DEFAULT_MAX_GENERATOR_LAG_MS,
    killed_router_nodes: int = 0,
) -> Validity:
    """Every reason the run's figures cannot be trusted; ``telemetry`` None: no router to ask.

    ``killed_router_nodes``: router nodes the scenario SIGKILLed (``kill_router_node``). A node
    killed that way takes the events of its last answers with it (they were written to the
    client, not yet to the event stream): a shortfall of ground truth up to
    ``max(10, 1 %)`` of the router's answers per killed node is expected and not held against
    the run; more is.
    """
    reasons: list[str] = []
    t = telemetry
    slack = 0
    if t is not None and killed_router_nodes:
        slack = killed_router_nodes * max(10, t.answered_by_router // 100)
    if t is not None:
        if t.events_lost:
            reasons.append(
                f"the router's event stream dropped {t.events_lost} events for the collector "
                "(it fell behind): failovers and errors may be undercounted"
            )
        if t.stream_reconnects:
            reasons.append(
                f"the event stream was reconnected {t.stream_reconnects} times: "
                "events sent meanwhile are lost"
            )
        if t.decode_errors:
            reasons.append(f"{t.decode_errors} event frames could not be decoded")
        if t.out_of_range:
            reasons.append(
                f"{t.out_of_range} router events fell outside the run's time range or past a "
                "timeline's cap"
            )
        if t.router_requests + slack < t.answered_by_router:
            reasons.append(
                f"the router reported {t.router_requests} requests but answered "
                f"{t.answered_by_router}: its ground truth is incomplete"
            )
    if upstream is not None and upstream.unclaimed > upstream.tolerance + slack:
        reasons.append(
            f"the providers received {upstream.unclaimed} calls the router does not report "
            f"(attempts counted at the providers vs the router's claim)"
        )
    for load in loads:
        lag = load.generator_lag_ms_p99
        which = "p99"
        if lag is None:
            lag, which = load.generator_lag_ms_max, "max"
        if lag > max_generator_lag_ms:
            reasons.append(
                f"workload {load.workload} ({load.sender}): the generator lagged, {which} "
                f"{lag:.1f} ms > {max_generator_lag_ms:g} ms: the load sent was not the load "
                "asked for"
            )
    return Validity(not reasons, tuple(reasons), max_generator_lag_ms)
