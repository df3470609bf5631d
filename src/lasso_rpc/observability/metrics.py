"""Prometheus metrics: counters fed by the event bus, gauges read from router state at scrape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from lasso_rpc.observability.events import BreakerChanged, Event, RequestFinished

if TYPE_CHECKING:
    from lasso_rpc.router import Router

__all__ = ["PrometheusMetrics"]

_MAX_METHODS = 200
_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PrometheusMetrics:
    """Subscribe with ``bus.subscribe(metrics.on_event)``; serve ``metrics.render()``."""

    def __init__(self, router: Router) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "lasso_requests",
            "Client calls by outcome",
            ["chain", "method", "provider", "status", "transport"],
            registry=r,
        )
        self.latency = Histogram(
            "lasso_request_duration_seconds",
            "Client call latency, router in to router out",
            ["chain", "method"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "lasso_upstream_attempts",
            "Upstream attempts by provider and outcome",
            ["chain", "provider", "outcome"],
            registry=r,
        )
        self.failovers = Counter(
            "lasso_failovers",
            "Calls answered (or failed) after an attempt failed and another provider was tried",
            ["chain"],
            registry=r,
        )
        self.hedges = Counter(
            "lasso_hedged", "Calls that sent a hedge attempt", ["chain"], registry=r
        )
        self.breaker_changes = Counter(
            "lasso_breaker_transitions",
            "Breaker state changes",
            ["chain", "provider", "to_state"],
            registry=r,
        )
        r.register(_StateCollector(router))
        self._methods: set[str] = set()
        self._children: dict[tuple[str, ...], Any] = {}

    def _method(self, m: str) -> str:
        if m in self._methods:
            return m
        if len(self._methods) < _MAX_METHODS:
            self._methods.add(m)
            return m
        return "other"  # unbounded label values would grow memory without bound

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, RequestFinished):
            method = self._method(ev.method)
            self._child(
                self.requests, ev.chain, method, ev.provider or "", ev.status, ev.transport
            ).inc()
            self._child(self.latency, ev.chain, method).observe(ev.latency_ms / 1000.0)
            for a in ev.attempts:
                self._child(self.attempts, ev.chain, a.provider, a.outcome).inc()
            if ev.failover:
                self._child(self.failovers, ev.chain).inc()
            if ev.hedged:
                self._child(self.hedges, ev.chain).inc()
        elif isinstance(ev, BreakerChanged):
            self._child(self.breaker_changes, ev.chain, ev.provider, ev.to_state).inc()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _StateCollector:
    """Gauges that are state, not events: read when scraped so they are never stale."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["profile", "chain", "provider"]
        breaker = GaugeMetricFamily(
            "lasso_breaker_state", "0 closed, 1 half_open, 2 open", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "lasso_in_flight", "Upstream requests in flight", labels=labels
        )
        head = GaugeMetricFamily("lasso_provider_head", "Last head block seen", labels=labels)
        lag = GaugeMetricFamily(
            "lasso_provider_lag_blocks", "Blocks behind consensus", labels=labels
        )
        cordoned = GaugeMetricFamily("lasso_provider_cordoned", "1 when cordoned", labels=labels)
        for chain in self._router.chains():
            for p in chain.providers.values():
                lv = [chain.profile, chain.name, p.id]
                breaker.add_metric(lv, _BREAKER_VALUE.get(p.breaker.state, 2))
                in_flight.add_metric(lv, p.in_flight)
                cordoned.add_metric(lv, 1 if p.cordoned else 0)
                if p.head is not None:
                    head.add_metric(lv, p.head)
                if p.lag is not None:
                    lag.add_metric(lv, p.lag)
        yield from (breaker, in_flight, head, lag, cordoned)
