"""What a run collected, as frozen values: time buckets of both views and the timelines.

``CollectedData`` is the collector's snapshot and the analyzer's input; histograms in it are
base64 HDR strings (µs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lasso_rpc.battle.records import RequestRecord, SystemSample

__all__ = [
    "COLLECT_NAMES",
    "DEFAULT_COLLECT",
    "BreakerRecord",
    "ChaosMark",
    "ClientBucket",
    "CollectedData",
    "EjectionRecord",
    "HealthRecord",
    "RouterBucket",
    "SubscriptionFailoverRecord",
]

COLLECT_NAMES = frozenset({"requests", "breakers", "health", "subscriptions", "system", "raw"})
DEFAULT_COLLECT = COLLECT_NAMES - {"raw"}


@dataclass(frozen=True, slots=True)
class RouterBucket:
    """One time bucket of the router's ``request.finished`` events."""

    requests: int = 0
    status: Mapping[str, int] = field(default_factory=dict)
    errors_by_class: Mapping[str, int] = field(default_factory=dict)
    failovers: int = 0  # requests with more than one upstream attempt
    hedged: int = 0
    served: Mapping[str, int] = field(default_factory=dict)  # provider → answers returned
    attempts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # provider → outcome
    latency_hist: str | None = None  # base64 HDR of router latency, µs
    first: Mapping[str, int] = field(default_factory=dict)  # provider → calls it was tried first


@dataclass(frozen=True, slots=True)
class ClientBucket:
    """One time bucket of workload records (client view)."""

    requests: int = 0
    ok: int = 0
    client_errors: int = 0
    errors: int = 0
    errors_by_class: Mapping[str, int] = field(default_factory=dict)
    failovers: int = 0  # failover flag according to include_meta
    hedged: int = 0
    providers: Mapping[str, int] = field(default_factory=dict)
    latency_hist: str | None = None  # base64 HDR of client latency (from intended time), µs


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    t_s: float
    provider: str
    from_state: str
    to_state: str
    reason: str
    transport: str = "http"

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_s": self.t_s,
            "provider": self.provider,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "transport": self.transport,
        }


@dataclass(frozen=True, slots=True)
class EjectionRecord:
    """A ``provider.ejection`` event: ejected (for ``duration_ms``) or back."""

    t_s: float
    provider: str
    ejected: bool
    reason: str
    duration_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_s": self.t_s,
            "provider": self.provider,
            "ejected": self.ejected,
            "reason": self.reason,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class HealthRecord:
    t_s: float
    provider: str
    head: int | None
    lag: int | None
    cordoned: bool


@dataclass(frozen=True, slots=True)
class SubscriptionFailoverRecord:
    t_s: float
    subscription: str
    from_provider: str | None
    to_provider: str | None
    backfilled: int
    gap: bool
    reorg: bool


@dataclass(frozen=True, slots=True)
class ChaosMark:
    """A ``chaos.injected`` / ``chaos.reverted`` event as the router's stream carried it."""

    t_s: float
    action: str
    target: str | None
    reverted: bool
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CollectedData:
    """Everything one run collected; histograms are base64 HDR strings (µs)."""

    bucket_s: float
    collected: frozenset[str]
    router_buckets: tuple[RouterBucket, ...]
    client_buckets: tuple[ClientBucket, ...]
    router_latency_hist: str
    router_latency_sum_ms: float
    failover_latency_hist: str
    failover_latency_max_ms: float
    client_latency_hist: str
    client_latency_sum_ms: float
    client_latency_max_ms: float
    breakers: tuple[BreakerRecord, ...] = ()
    ejections: tuple[EjectionRecord, ...] = ()
    health: tuple[HealthRecord, ...] = ()
    subscription_failovers: tuple[SubscriptionFailoverRecord, ...] = ()
    chaos_marks: tuple[ChaosMark, ...] = ()
    system: tuple[SystemSample, ...] = ()
    raw_records: tuple[RequestRecord, ...] = ()
    raw_events: tuple[Mapping[str, Any], ...] = ()
    stream_reconnects: int = 0
    stream_decode_errors: int = 0
    dropped: int = 0  # events outside the time range, plus timeline entries past the cap
    stream_lost: int = 0  # events the router's /api/events dropped for this reader (seq gaps)
    source: str = "none"  # router events from: "bus" | "stream" | "none"
    #: Upstream attempts the router reports, per provider and method (the independent view
    #: compares them with what the providers received).
    attempts_by_method: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def router_requests(self) -> int:
        return sum(b.requests for b in self.router_buckets)

    @property
    def client_requests(self) -> int:
        return sum(b.requests for b in self.client_buckets)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["collected"] = sorted(self.collected)
        return d
