"""Operator metrics: per-provider upstream latency and outcomes, chain heads, provider health.

``PrometheusMetrics.on_event`` keeps one plain histogram list per (profile, chain, provider,
method, attempt outcome); ``attempt_families`` folds them at scrape into

- ``lasso_upstream_attempts_total{chain,provider,outcome}`` (every attempt), and
- ``lasso_upstream_latency_seconds{chain,provider,method}`` (every attempt that ended: answers,
  errors and timeouts; not hedge losers cancelled by the router, whose time says only "at least").

``HealthCollector`` reads state when scraped: the chain's head, each provider's readiness
(``upstream/readiness.py``) and each chain's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from lasso_rpc.upstream.readiness import chain_readiness

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from lasso_rpc.router import Router

__all__ = [
    "BOUNDS",
    "BUCKETS",
    "HIST_SUM",
    "LE",
    "AttemptKey",
    "HealthCollector",
    "attempt_families",
    "histogram_buckets",
]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BOUNDS = (*BUCKETS, math.inf)
LE = (*(repr(b) for b in BUCKETS), "+Inf")  # as prometheus_client spells these bounds
#: A histogram is one list: a (non-cumulative) count per bound, then the running sum in seconds.
HIST_SUM = len(BOUNDS)

#: (profile, chain, provider, method, outcome); the profile is folded away at scrape
AttemptKey = tuple[str, str, str, str, str]


def histogram_buckets(hist: list[float]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs of one histogram list."""
    cumulative, out = 0.0, []
    for le, count in zip(LE, hist[:HIST_SUM], strict=True):
        cumulative += count
        out.append((le, cumulative))
    return out


def attempt_families(series: Mapping[AttemptKey, list[float]]) -> Iterator[Metric]:
    counts: defaultdict[tuple[str, str, str], float] = defaultdict(float)
    latency: dict[tuple[str, str, str], list[float]] = {}
    for (_profile, chain, provider, method, outcome), hist in list(series.items()):
        counts[chain, provider, outcome] += sum(hist[:HIST_SUM])
        if outcome == "cancelled":
            continue
        into = latency.get((chain, provider, method))
        if into is None:
            latency[chain, provider, method] = hist[:]
        else:
            for i, v in enumerate(hist):
                into[i] += v
    attempts = CounterMetricFamily(
        "lasso_upstream_attempts",
        "Upstream attempts by provider and outcome (ok, client_error, cancelled, or the error "
        "class of a failed attempt)",
        labels=["chain", "provider", "outcome"],
    )
    for key, n in counts.items():
        attempts.add_metric(key, n)
    yield attempts
    hist_family = HistogramMetricFamily(
        "lasso_upstream_latency_seconds",
        "Upstream attempt latency per provider and method (answers, errors and timeouts; "
        "not hedge losers cancelled by the router)",
        labels=["chain", "provider", "method"],
    )
    for key, hist in latency.items():
        hist_family.add_metric(key, histogram_buckets(hist), hist[HIST_SUM])
    yield hist_family


class HealthCollector:
    """Gauges of heads and readiness, read from the router when scraped."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[GaugeMetricFamily]:
        head = GaugeMetricFamily(
            "lasso_chain_head",
            "Highest head block any provider reported",
            labels=["profile", "chain"],
        )
        ready = GaugeMetricFamily(
            "lasso_chain_ready",
            "1 when a provider of the chain answered a health poll within its window",
            labels=["profile", "chain"],
        )
        up = GaugeMetricFamily(
            "lasso_provider_up",
            "1 when the provider is usable: answered its last health poll within the window, "
            "not cordoned, breaker not open",
            labels=["profile", "chain", "provider"],
        )
        now = self._router.clock.now_ms()
        for chain in self._router.chains():
            lv = [chain.profile, chain.name]
            if chain.consensus_head is not None:
                head.add_metric(lv, chain.consensus_head)
            r = chain_readiness(
                chain.profile,
                chain.name,
                chain.providers.values(),
                poll_ms=chain.routing.head_poll_ms,
                now_ms=now,
            )
            ready.add_metric(lv, 1 if r.ready else 0)
            for p in r.providers:
                up.add_metric([*lv, p.provider], 1 if p.usable else 0)
        yield from (head, ready, up)
