"""The analysis of one run as frozen values (``Analysis`` and its parts) and its JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lasso_rpc.battle.measure.data import (
    BreakerRecord,
    EjectionRecord,
    SubscriptionFailoverRecord,
)
from lasso_rpc.battle.measure.recovery import RULE
from lasso_rpc.battle.measure.staleness import TruthFigures
from lasso_rpc.battle.measure.upstream_view import UpstreamView
from lasso_rpc.battle.measure.validity import LoadSummary, Telemetry, Validity
from lasso_rpc.battle.records import SubscriptionRecord, SystemSample

__all__ = [
    "Analysis",
    "ChaosOutcome",
    "FailoverLatency",
    "LatencySummary",
    "ProviderSummary",
    "Summary",
    "Timeseries",
    "WsSummary",
]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    p50: float = 0.0
    p90: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0
    mean: float = 0.0


@dataclass(frozen=True, slots=True)
class FailoverLatency:
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0


@dataclass(frozen=True, slots=True)
class WsSummary:
    """Every subscriber together. With the chain's truth (``truth`` set), ``gaps`` counts mined
    blocks a client never got and ``uptime`` is the mean share of time each client's newest
    block was current (``load.feed_truth``); without it, gaps between deliveries and the share
    of time a socket held a subscription."""

    clients: int
    events: int
    gaps: int
    duplicates: int
    reorgs: int
    uptime: float
    truth: str | None = None  # "chain" | "poll" | None (socket time, in-stream gaps)
    gaps_in_stream: int = 0
    expected_blocks: int | None = None
    max_stall_s: float | None = None  # the longest a mined block waited for any client
    stalled_clients: int | None = None  # clients still behind the chain at the end
    connected: float = 0.0  # connected time / subscribed time, over every client


@dataclass(frozen=True, slots=True)
class Summary:
    requests: int
    ok: int
    errors: int
    client_errors: int
    success_rate: float  # (ok + client_errors) / requests; 0.0 without requests
    throughput_rps: float
    latency_ms: LatencySummary
    failovers: int
    failovers_client_view: int
    failover_heuristic_count: int
    failover_latency_ms: FailoverLatency
    hedged: int
    router_rss_mb_max: float | None
    router_rss_mb_mean: float | None
    router_cpu_pct_mean: float | None
    router_rss_growth_pct: float | None
    ws: WsSummary | None
    router_requests: int
    router_errors: int


@dataclass(frozen=True, slots=True)
class ChaosOutcome:
    action: str
    target: str | None
    at_s: float
    end_s: float | None
    details: Mapping[str, Any]
    recovery_s: float | None
    recovery_after_revert_s: float | None
    #: The target's share of upstream attempts, and of first attempts, from ``SETTLE_S`` after
    #: the event to its revert (``measure/shares.py``); None: no provider target or no traffic.
    target_share: float | None = None
    target_first_share: float | None = None


@dataclass(frozen=True, slots=True)
class Timeseries:
    bucket_s: float
    t: tuple[float, ...]
    requests: tuple[int, ...]
    errors: tuple[int, ...]
    throughput_rps: tuple[float, ...]
    p50_ms: tuple[float | None, ...]  # None: no request in the bucket
    p95_ms: tuple[float | None, ...]
    p99_ms: tuple[float | None, ...]
    failovers: tuple[int, ...]
    provider_share: Mapping[str, tuple[float, ...]]
    provider_share_source: str  # "router" | "client"
    hedged: tuple[int, ...] = ()  # router requests with a hedge, per bucket


@dataclass(frozen=True, slots=True)
class ProviderSummary:
    requests: int
    share: float
    attempts: int
    attempt_errors: int


@dataclass(frozen=True, slots=True)
class Analysis:
    summary: Summary
    chaos: tuple[ChaosOutcome, ...]
    timeseries: Timeseries
    breakers: tuple[BreakerRecord, ...]
    providers: Mapping[str, ProviderSummary]
    errors_by_class: Mapping[str, int]
    router_errors_by_class: Mapping[str, int]
    system: tuple[SystemSample, ...]
    histogram: str  # base64 HDR of client latency, µs
    baseline_error_rate: float | None
    baseline_p95_ms: float | None
    #: The router's subscription timeline: real failovers, plus reorgs and unclosable gaps
    #: (those are marked with from == to and ``reorg``/``gap``).
    subscription_events: tuple[SubscriptionFailoverRecord, ...] = ()
    #: Whose process the system samples are: "router" (its own process) or "battle" (an
    #: in-process router shares this process: no router figures are derived from them).
    process_scope: str = "router"
    loads: tuple[LoadSummary, ...] = ()
    telemetry: Telemetry | None = None
    upstream: UpstreamView | None = None
    validity: Validity | None = None
    subscribers: tuple[SubscriptionRecord, ...] = ()
    #: Answers against the chain's truth, upstream calls at the mock providers (mock fleets).
    truth: TruthFigures | None = None
    #: Outlier ejections and returns (``provider.ejection`` events), in time order.
    ejections: tuple[EjectionRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        ts = self.timeseries
        return {
            "summary": {
                "requests": s.requests,
                "ok": s.ok,
                "errors": s.errors,
                "client_errors": s.client_errors,
                "success_rate": s.success_rate,
                "throughput_rps": s.throughput_rps,
                "latency_ms": _fields(s.latency_ms),
                "failovers": s.failovers,
                "failovers_client_view": s.failovers_client_view,
                "failover_heuristic_count": s.failover_heuristic_count,
                "failover_latency_ms": _fields(s.failover_latency_ms),
                "hedged": s.hedged,
                "router_rss_mb_max": s.router_rss_mb_max,
                "router_rss_mb_mean": s.router_rss_mb_mean,
                "router_cpu_pct_mean": s.router_cpu_pct_mean,
                "router_rss_growth_pct": s.router_rss_growth_pct,
                "ws": _fields(s.ws) if s.ws is not None else None,
                "router_requests": s.router_requests,
                "router_errors": s.router_errors,
            },
            "chaos": [{**_fields(c), "details": dict(c.details)} for c in self.chaos],
            "recovery": {
                "rule": RULE,
                "baseline_error_rate": self.baseline_error_rate,
                "baseline_p95_ms": self.baseline_p95_ms,
            },
            "timeseries": {
                "bucket_s": ts.bucket_s,
                "t": list(ts.t),
                "requests": list(ts.requests),
                "errors": list(ts.errors),
                "throughput_rps": list(ts.throughput_rps),
                "p50_ms": list(ts.p50_ms),
                "p95_ms": list(ts.p95_ms),
                "p99_ms": list(ts.p99_ms),
                "failovers": list(ts.failovers),
                "hedged": list(ts.hedged),
                "provider_share": {p: list(v) for p, v in ts.provider_share.items()},
                "provider_share_source": ts.provider_share_source,
            },
            "breakers": [b.to_dict() for b in self.breakers],
            "ejections": [e.to_dict() for e in self.ejections],
            "providers": {p: _fields(v) for p, v in self.providers.items()},
            "errors_by_class": dict(self.errors_by_class),
            "router_errors_by_class": dict(self.router_errors_by_class),
            "system": [_fields(x) for x in self.system],
            "subscription_failovers": [_fields(x) for x in self.subscription_events],
            "histogram": self.histogram,
            "system_scope": self.process_scope,
            "load": [x.to_dict() for x in self.loads],
            "telemetry": self.telemetry.to_dict() if self.telemetry is not None else None,
            "upstream": self.upstream.to_dict() if self.upstream is not None else None,
            "validity": self.validity.to_dict() if self.validity is not None else None,
            "subscribers": [_fields(x) for x in self.subscribers],
            "truth": self.truth.to_dict() if self.truth is not None else None,
        }


def _fields(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}
