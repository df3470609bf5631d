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

The recovery times follow the rule of ``measure.recovery``; the values are ``measure.analysis``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lasso_rpc.battle.load.feed_truth import LATE_AFTER_S
from lasso_rpc.battle.measure.analysis import (
    Analysis,
    ChaosOutcome,
    FailoverLatency,
    LatencySummary,
    ProviderSummary,
    Summary,
    Timeseries,
    WsSummary,
)
from lasso_rpc.battle.measure.data import ClientBucket, CollectedData
from lasso_rpc.battle.measure.histograms import (
    count_above,
    decode_histogram,
    percentiles,
    release_histogram,
)
from lasso_rpc.battle.measure.recovery import RecoveryRule
from lasso_rpc.battle.measure.shares import target_shares
from lasso_rpc.battle.measure.staleness import TruthFigures
from lasso_rpc.battle.measure.upstream_view import UpstreamView
from lasso_rpc.battle.measure.validity import (
    DEFAULT_MAX_GENERATOR_LAG_MS,
    LoadSummary,
    Telemetry,
    judge_validity,
    unanswered,
)
from lasso_rpc.battle.records import ChaosRecord, SubscriptionRecord, SystemSample
from lasso_rpc.observability.events import is_provider_fault

__all__ = ["Analysis", "analyze"]


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
    connected = min(1.0, sum(s.connected_s for s in subs) / total) if total > 0 else 0.0
    judged = [s for s in subs if s.uptime is not None]
    truth = judged[0].truth if judged and len(judged) == len(subs) else None
    stalls = [s.max_stall_s for s in judged if s.max_stall_s is not None]
    return WsSummary(
        clients=len(subs),
        events=sum(s.events for s in subs),
        gaps=sum(s.gaps for s in subs),
        duplicates=sum(s.duplicates for s in subs),
        reorgs=sum(s.reorgs for s in subs),
        uptime=sum(s.uptime or 0.0 for s in judged) / len(judged) if truth else connected,
        truth=truth,
        gaps_in_stream=sum(s.gaps if s.gaps_in_stream is None else s.gaps_in_stream for s in subs),
        expected_blocks=sum(s.expected_blocks or 0 for s in judged) if truth else None,
        max_stall_s=max(stalls) if truth and stalls else None,
        stalled_clients=sum(1 for s in judged if (s.behind_s or 0.0) > LATE_AFTER_S)
        if truth
        else None,
        connected=connected,
    )


def _bucketpercentiles(
    cb: Sequence[ClientBucket], n: int
) -> list[tuple[float | None, float | None, float | None]]:
    out: list[tuple[float | None, float | None, float | None]] = []
    for i in range(n):
        if i < len(cb) and cb[i].requests and cb[i].latency_hist:
            h = decode_histogram(cb[i].latency_hist)
            p50, p95, p99 = percentiles(h, (50.0, 95.0, 99.0))
            release_histogram(h)
            out.append((p50, p95, p99))
        else:
            out.append((None, None, None))
    return out


def _add_counts(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + v


def _summary(
    data: CollectedData,
    subscriptions: Sequence[SubscriptionRecord] | None,
    duration_s: float,
    own_process: bool,
) -> Summary:
    cb, rb = data.client_buckets, data.router_buckets
    requests = sum(b.requests for b in cb)
    ok = sum(b.ok for b in cb)
    client_errors = sum(b.client_errors for b in cb)
    hist = decode_histogram(data.client_latency_hist)
    mean = data.client_latency_sum_ms / requests if requests else 0.0
    p50, p90, p95, p99, p999 = percentiles(hist, (50.0, 90.0, 95.0, 99.0, 99.9))
    if data.raw_records:
        heuristic = sum(1 for r in data.raw_records if r.latency_ms > 2 * mean)
    else:
        heuristic = count_above(hist, 2 * mean * 1000.0) if requests else 0
    f50, f95, f99 = percentiles(decode_histogram(data.failover_latency_hist), (50.0, 95.0, 99.0))
    system = data.system if own_process else ()
    rss = [s.rss_mb for s in system]
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
        router_cpu_pct_mean=_mean([s.cpu_pct for s in system]),
        router_rss_growth_pct=_rss_growth_pct(system),
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
    if n and len(served) > n:  # router events past the load window (clock skew): last bucket
        tail: dict[str, int] = {}
        for extra in served[n - 1 :]:
            _add_counts(tail, extra)
        served = [*served[: n - 1], tail]
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


def _telemetry(data: CollectedData) -> Telemetry:
    errors: dict[str, int] = {}
    for c in data.client_buckets:
        _add_counts(errors, c.errors_by_class)
    return Telemetry(
        source=data.source,
        events_lost=data.stream_lost,
        stream_reconnects=data.stream_reconnects,
        decode_errors=data.stream_decode_errors,
        out_of_range=data.dropped,
        router_requests=data.router_requests,
        answered_by_router=data.client_requests - unanswered(errors),
    )


def _fold(values: Sequence[int], n: int) -> list[int]:
    """``values`` as ``n`` buckets: any past the end (clock skew) counted in the last one."""
    out = [values[i] if i < len(values) else 0 for i in range(n)]
    if n and len(values) > n:
        out[-1] += sum(values[n:])
    return out


def analyze(
    data: CollectedData,
    *,
    chaos: Sequence[ChaosRecord],
    subscriptions: Sequence[SubscriptionRecord] | None,
    duration_s: float,
    load_s: float | None = None,
    loads: Sequence[LoadSummary] = (),
    upstream: UpstreamView | None = None,
    router: bool = True,
    own_process: bool = True,
    max_generator_lag_ms: float = DEFAULT_MAX_GENERATOR_LAG_MS,
    truth: TruthFigures | None = None,
) -> Analysis:
    """Every figure of the report from one run's collected data (see the module docstring).

    ``load_s`` is the load window (the longest workload): the time series and the throughput
    cover it (the drain after it would show as a last bucket at 0 req/s), with a last partial
    bucket's rate taken over its own length. ``router``: a router served the run (its
    telemetry is owed); ``own_process``: the system samples are the router's own process.
    ``loads`` and ``upstream`` (the independent view) go into the report and its validity.
    """
    bs = data.bucket_s
    cb, rb = data.client_buckets, data.router_buckets
    window = duration_s if load_s is None else min(load_s, duration_s)
    n = max(math.ceil(window / bs - 1e-9), len(cb), 0)
    if load_s is None:
        n = max(n, len(rb))
    c_req = [cb[i].requests if i < len(cb) else 0 for i in range(n)]
    c_err = [cb[i].errors if i < len(cb) else 0 for i in range(n)]
    pcts = _bucketpercentiles(cb, n)
    p95s = [q[1] for q in pcts]
    errors_by_class: dict[str, int] = {}
    router_errors_by_class: dict[str, int] = {}
    for c in cb:
        _add_counts(errors_by_class, c.errors_by_class)
    for r in rb:
        _add_counts(router_errors_by_class, r.errors_by_class)
    providers, share, share_source = _providers(data, n)
    # A last bucket cut short by the end of the load holds fewer seconds: its rate is per its
    # own length, not per bucket_s (else the chart shows the throughput dropping at the end).
    spans = [min(bs, max(window - i * bs, 0.0)) or bs for i in range(n)]
    timeseries = Timeseries(
        bucket_s=bs,
        t=tuple(i * bs for i in range(n)),
        requests=tuple(c_req),
        errors=tuple(c_err),
        throughput_rps=tuple(k / w for k, w in zip(c_req, spans, strict=True)),
        p50_ms=tuple(q[0] for q in pcts),
        p95_ms=tuple(p95s),
        p99_ms=tuple(q[2] for q in pcts),
        failovers=tuple(_fold([b.failovers for b in rb], n)),
        provider_share=share,
        provider_share_source=share_source,
        hedged=tuple(_fold([b.hedged for b in rb], n)),
    )

    base_err: float | None = None
    base_p95: float | None = None
    outcomes: list[ChaosOutcome] = []
    if chaos:
        rule = RecoveryRule.for_run(data, chaos, c_req, c_err, p95s)
        base_err, base_p95 = rule.base_err, rule.base_p95
        for ev in chaos:
            shares: tuple[float | None, float | None] = (None, None)
            if ev.target is not None:
                shares = target_shares(rb, bs, ev.target, ev.at_s, ev.end_s)
            outcomes.append(
                ChaosOutcome(
                    action=ev.action,
                    target=ev.target,
                    at_s=ev.at_s,
                    end_s=ev.end_s,
                    details=dict(ev.details),
                    recovery_s=rule.after(ev.at_s),
                    recovery_after_revert_s=None if ev.end_s is None else rule.after(ev.end_s),
                    target_share=shares[0],
                    target_first_share=shares[1],
                )
            )

    summary = _summary(data, subscriptions, window, own_process)
    telemetry = _telemetry(data) if router else None
    validity = judge_validity(
        telemetry=telemetry,
        loads=loads,
        upstream=upstream,
        max_generator_lag_ms=max_generator_lag_ms,
        killed_router_nodes=sum(1 for ev in chaos if ev.action == "kill_router_node"),
    )
    return Analysis(
        summary=summary,
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
        process_scope="router" if own_process else "battle",
        loads=tuple(loads),
        telemetry=telemetry,
        upstream=upstream,
        validity=validity,
        subscribers=tuple(subscriptions or ()),
        truth=truth,
        ejections=data.ejections,
    )
