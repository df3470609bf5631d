"""Analyzer: collected aggregates + chaos timeline + subscriber records → one frozen Analysis.

Sources, and which view each figure takes:

- success rate, request counts, latency percentiles, throughput, errors by class, the time
  series: the **client view** (workload records; latency from the intended send time);
- failover count and failover latency: **ground truth**, router ``request.finished`` events
  whose ``failover`` flag is set (an attempt failed and another provider was tried; a hedge that
  merely won the race is counted as ``hedged``, not as a failover). ``failovers_client_view``
  (the same flag from include_meta) is a cross-check and should match;
  ``failover_heuristic_count`` (client requests slower than
  2 x the mean latency, the old guess) is reported only as a cross-check;
- provider share: the router's ``provider`` per answered request (the client's include_meta
  view when no router events were collected).

Recovery rule (``recovery_s``), per chaos event:

1. the *baseline* is every bucket that ends at or before the first chaos event; its error rate
   (errors / requests) and its p95 latency (one histogram over those buckets);
2. a bucket is *healthy* when it has requests, its error rate ≤ baseline error rate + 1 %
   (absolute) and its p95 ≤ max(1.5 x baseline p95, 1.2 x settled p95), where *settled* is the
   median p95 of the last 3 non-empty buckets before the next chaos event (or the end): a
   failover to a slower provider recovers to that provider's normal, not to the old baseline
   (latency is not checked when there is no baseline); buckets without requests are skipped —
   they neither break nor extend a streak;
3. scanning from the bucket holding the injection, the first run of 3 consecutive healthy
   buckets marks recovery: ``recovery_s`` = start of that run - injection time (≥ 0); ``None``
   when no such run exists before the end of the data. ``recovery_after_revert_s`` applies
   the same scan from the revert (``end_s``) of actions that have one.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from lasso_rpc.battle.measure.collector import (
    BreakerRecord,
    ClientBucket,
    CollectedData,
    SubscriptionFailoverRecord,
    decode_histogram,
    release_histogram,
)
from lasso_rpc.battle.records import ChaosRecord, SubscriptionRecord, SystemSample
from lasso_rpc.observability.events import is_provider_fault

__all__ = [
    "RECOVERY_ERROR_MARGIN",
    "RECOVERY_P95_FACTOR",
    "RECOVERY_STREAK",
    "Analysis",
    "ChaosOutcome",
    "FailoverLatency",
    "LatencySummary",
    "ProviderSummary",
    "Summary",
    "Timeseries",
    "WsSummary",
    "analyze",
]

RECOVERY_STREAK = 3
RECOVERY_ERROR_MARGIN = 0.01
RECOVERY_P95_FACTOR = 1.5
SETTLED_P95_FACTOR = 1.2


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
    clients: int
    events: int
    gaps: int
    duplicates: int
    reorgs: int
    uptime: float  # connected time / subscribed time, over every client


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
                "rule": (
                    f"first {RECOVERY_STREAK} consecutive non-empty buckets with error rate <= "
                    f"baseline + {RECOVERY_ERROR_MARGIN:.0%} and p95 <= "
                    f"max({RECOVERY_P95_FACTOR} x baseline p95, {SETTLED_P95_FACTOR} x settled p95)"
                ),
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
                "provider_share": {p: list(v) for p, v in ts.provider_share.items()},
                "provider_share_source": ts.provider_share_source,
            },
            "breakers": [b.to_dict() for b in self.breakers],
            "providers": {p: _fields(v) for p, v in self.providers.items()},
            "errors_by_class": dict(self.errors_by_class),
            "router_errors_by_class": dict(self.router_errors_by_class),
            "system": [_fields(x) for x in self.system],
            "subscription_failovers": [_fields(x) for x in self.subscription_events],
            "histogram": self.histogram,
        }


def _fields(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


def _ms(us: float) -> float:
    return us / 1000.0


def _cumulative(h: HdrHistogram) -> list[int]:
    """Running totals of the counts array, up to the largest recorded value (C speed; the
    per-index loops of ``hdrh`` take milliseconds per histogram)."""
    counts = memoryview(h.counts).cast("B").cast("Q") if h.word_size == 8 else list(h.counts)
    last = h.get_counts_array_index(h.max_value) + 1 if h.max_value else 0
    return list(itertools.accumulate(counts[:last]))


def _percentiles(h: HdrHistogram, ps: Sequence[float]) -> list[float]:
    """Values in ms at the percentiles ``ps``, as ``get_value_at_percentile`` defines them."""
    if h.get_total_count() == 0:
        return [0.0 for _ in ps]
    cum = _cumulative(h)
    out = []
    for p in ps:
        i = min(bisect.bisect_left(cum, h.get_target_count_at_percentile(p)), len(cum) - 1)
        out.append(_ms(h.get_highest_equivalent_value(h.get_value_from_index(i))))
    return out


def _count_above(h: HdrHistogram, threshold_us: float) -> int:
    """Recorded values whose whole histogram bucket lies above ``threshold_us``."""
    cum = _cumulative(h)
    if not cum:
        return 0
    i = h.get_counts_array_index(max(0, int(threshold_us)))
    return 0 if i >= len(cum) else int(cum[-1] - cum[i])


def _merge(encoded: Iterable[str | None]) -> HdrHistogram:
    out = decode_histogram(None)
    for e in encoded:
        if e:
            h = decode_histogram(e)
            out.add(h)
            release_histogram(h)
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _rss_growth_pct(samples: Sequence[SystemSample]) -> float | None:
    """Mean RSS of the last 10 % of samples vs the first 10 % (at least one each), in %."""
    if len(samples) < 2:
        return None
    k = max(1, len(samples) // 10)
    first = sum(s.rss_mb for s in samples[:k]) / k
    last = sum(s.rss_mb for s in samples[-k:]) / k
    return (last - first) / first * 100.0 if first > 0 else None


def _ws(subs: Sequence[SubscriptionRecord] | None) -> WsSummary | None:
    if not subs:
        return None
    total = sum(s.duration_s for s in subs)
    return WsSummary(
        clients=len(subs),
        events=sum(s.events for s in subs),
        gaps=sum(s.gaps for s in subs),
        duplicates=sum(s.duplicates for s in subs),
        reorgs=sum(s.reorgs for s in subs),
        uptime=min(1.0, sum(s.connected_s for s in subs) / total) if total > 0 else 0.0,
    )


def _recovery_index(
    requests: Sequence[int],
    errors: Sequence[int],
    p95: Sequence[float | None],
    start: int,
    base_err: float,
    base_p95: float | None,
    settled_p95: float | None = None,
) -> int | None:
    """First bucket ≥ ``start`` opening a run of RECOVERY_STREAK healthy non-empty buckets."""
    max_err = base_err + RECOVERY_ERROR_MARGIN + 1e-12
    max_p95 = None if base_p95 is None else RECOVERY_P95_FACTOR * base_p95
    if max_p95 is not None and settled_p95 is not None:
        max_p95 = max(max_p95, SETTLED_P95_FACTOR * settled_p95)
    run_start, run = 0, 0
    for i in range(max(0, start), len(requests)):
        n = requests[i]
        if n == 0:
            continue
        q = p95[i]
        healthy = errors[i] / n <= max_err and (max_p95 is None or (q is not None and q <= max_p95))
        if not healthy:
            run = 0
            continue
        if run == 0:
            run_start = i
        run += 1
        if run == RECOVERY_STREAK:
            return run_start
    return None


def _settled_p95(requests: Sequence[int], p95: Sequence[float | None], stop: int) -> float | None:
    """Median p95 of the last RECOVERY_STREAK non-empty buckets before ``stop``."""
    tail: list[float] = []
    for i in range(min(stop, len(requests)) - 1, -1, -1):
        q = p95[i]
        if requests[i] and q is not None:
            tail.append(q)
            if len(tail) == RECOVERY_STREAK:
                break
    return sorted(tail)[len(tail) // 2] if tail else None


def _bucket_percentiles(
    cb: Sequence[ClientBucket], n: int
) -> list[tuple[float | None, float | None, float | None]]:
    out: list[tuple[float | None, float | None, float | None]] = []
    for i in range(n):
        if i < len(cb) and cb[i].requests and cb[i].latency_hist:
            h = decode_histogram(cb[i].latency_hist)
            p50, p95, p99 = _percentiles(h, (50.0, 95.0, 99.0))
            release_histogram(h)
            out.append((p50, p95, p99))
        else:
            out.append((None, None, None))
    return out


def _add_counts(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + v


def _summary(
    data: CollectedData, subscriptions: Sequence[SubscriptionRecord] | None, duration_s: float
) -> Summary:
    cb, rb = data.client_buckets, data.router_buckets
    requests = sum(b.requests for b in cb)
    ok = sum(b.ok for b in cb)
    client_errors = sum(b.client_errors for b in cb)
    hist = decode_histogram(data.client_latency_hist)
    mean = data.client_latency_sum_ms / requests if requests else 0.0
    p50, p90, p95, p99, p999 = _percentiles(hist, (50.0, 90.0, 95.0, 99.0, 99.9))
    if data.raw_records:
        heuristic = sum(1 for r in data.raw_records if r.latency_ms > 2 * mean)
    else:
        heuristic = _count_above(hist, 2 * mean * 1000.0) if requests else 0
    f50, f95, f99 = _percentiles(decode_histogram(data.failover_latency_hist), (50.0, 95.0, 99.0))
    rss = [s.rss_mb for s in data.system]
    return Summary(
        requests=requests,
        ok=ok,
        errors=sum(b.errors for b in cb),
        client_errors=client_errors,
        success_rate=(ok + client_errors) / requests if requests else 0.0,
        throughput_rps=requests / duration_s if duration_s > 0 else 0.0,
        latency_ms=LatencySummary(p50, p90, p95, p99, p999, data.client_latency_max_ms, mean),
        failovers=sum(b.failovers for b in rb),
        failovers_client_view=sum(b.failovers for b in cb),
        failover_heuristic_count=heuristic,
        failover_latency_ms=FailoverLatency(f50, f95, f99, data.failover_latency_max_ms),
        hedged=sum(b.hedged for b in rb),
        router_rss_mb_max=max(rss) if rss else None,
        router_rss_mb_mean=_mean(rss),
        router_cpu_pct_mean=_mean([s.cpu_pct for s in data.system]),
        router_rss_growth_pct=_rss_growth_pct(data.system),
        ws=_ws(subscriptions),
        router_requests=sum(b.requests for b in rb),
        router_errors=sum(b.status.get("error", 0) for b in rb),
    )


def _providers(
    data: CollectedData, n: int
) -> tuple[dict[str, ProviderSummary], dict[str, tuple[float, ...]], str]:
    """Per-provider totals and share per bucket: the router's view when it has one."""
    rb = data.router_buckets
    use_router = any(b.served for b in rb)
    served = [b.served for b in rb] if use_router else [b.providers for b in data.client_buckets]
    served = [*served, *({} for _ in range(n - len(served)))]
    attempts: dict[str, dict[str, int]] = {}
    for b in rb:
        for prov, outcomes in b.attempts.items():
            _add_counts(attempts.setdefault(prov, {}), outcomes)
    names = sorted({p for s in served for p in s} | set(attempts))
    totals = [sum(s.values()) for s in served]
    grand = sum(totals)
    share = {
        p: tuple(s.get(p, 0) / t if t else 0.0 for s, t in zip(served, totals, strict=True))
        for p in names
    }
    providers: dict[str, ProviderSummary] = {}
    for prov in names:
        got = sum(s.get(prov, 0) for s in served)
        tried = attempts.get(prov, {})
        providers[prov] = ProviderSummary(
            requests=got,
            share=got / grand if grand else 0.0,
            attempts=sum(tried.values()),
            attempt_errors=sum(k for o, k in tried.items() if is_provider_fault(o)),
        )
    return providers, share, "router" if use_router else "client"


def _baseline(
    data: CollectedData, first_at: float, c_req: Sequence[int], c_err: Sequence[int]
) -> tuple[float, float | None]:
    """Error rate and p95 over the buckets that end at or before the first chaos event."""
    bs, cb = data.bucket_s, data.client_buckets
    base = [i for i in range(len(c_req)) if (i + 1) * bs <= first_at + 1e-9]
    base_req = sum(c_req[i] for i in base)
    if not base_req:
        return 0.0, None
    merged = _merge(cb[i].latency_hist for i in base if i < len(cb))
    return sum(c_err[i] for i in base) / base_req, _percentiles(merged, (95.0,))[0]


def analyze(
    data: CollectedData,
    *,
    chaos: Sequence[ChaosRecord],
    subscriptions: Sequence[SubscriptionRecord] | None,
    duration_s: float,
) -> Analysis:
    """Every figure of the report from one run's collected data (see the module docstring)."""
    bs = data.bucket_s
    cb, rb = data.client_buckets, data.router_buckets
    n = max(math.ceil(duration_s / bs - 1e-9), len(cb), len(rb), 0)
    c_req = [cb[i].requests if i < len(cb) else 0 for i in range(n)]
    c_err = [cb[i].errors if i < len(cb) else 0 for i in range(n)]
    pcts = _bucket_percentiles(cb, n)
    p95s = [q[1] for q in pcts]
    errors_by_class: dict[str, int] = {}
    router_errors_by_class: dict[str, int] = {}
    for c in cb:
        _add_counts(errors_by_class, c.errors_by_class)
    for r in rb:
        _add_counts(router_errors_by_class, r.errors_by_class)
    providers, share, share_source = _providers(data, n)
    timeseries = Timeseries(
        bucket_s=bs,
        t=tuple(i * bs for i in range(n)),
        requests=tuple(c_req),
        errors=tuple(c_err),
        throughput_rps=tuple(k / bs for k in c_req),
        p50_ms=tuple(q[0] for q in pcts),
        p95_ms=tuple(p95s),
        p99_ms=tuple(q[2] for q in pcts),
        failovers=tuple(rb[i].failovers if i < len(rb) else 0 for i in range(n)),
        provider_share=share,
        provider_share_source=share_source,
    )

    base_err: float | None = None
    base_p95: float | None = None
    outcomes: list[ChaosOutcome] = []
    if chaos:
        base_err, base_p95 = _baseline(data, min(c.at_s for c in chaos), c_req, c_err)

        starts = sorted({c.at_s for c in chaos} | {c.end_s for c in chaos if c.end_s is not None})

        def recovered(at: float, base_err: float = base_err) -> float | None:
            later = [t for t in starts if t > at]
            stop = math.floor(later[0] / bs) if later else len(c_req)
            settled = _settled_p95(c_req, p95s, stop)
            idx = _recovery_index(
                c_req, c_err, p95s, math.floor(at / bs), base_err, base_p95, settled
            )
            return None if idx is None else max(0.0, idx * bs - at)

        for ev in chaos:
            outcomes.append(
                ChaosOutcome(
                    action=ev.action,
                    target=ev.target,
                    at_s=ev.at_s,
                    end_s=ev.end_s,
                    details=dict(ev.details),
                    recovery_s=recovered(ev.at_s),
                    recovery_after_revert_s=None if ev.end_s is None else recovered(ev.end_s),
                )
            )

    return Analysis(
        summary=_summary(data, subscriptions, duration_s),
        chaos=tuple(outcomes),
        timeseries=timeseries,
        breakers=data.breakers,
        providers=providers,
        errors_by_class=errors_by_class,
        router_errors_by_class=router_errors_by_class,
        system=data.system,
        histogram=data.client_latency_hist,
        baseline_error_rate=base_err,
        baseline_p95_ms=base_p95,
        subscription_events=data.subscription_failovers,
    )
