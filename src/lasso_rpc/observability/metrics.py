"""Prometheus metrics: plain counters fed by the event bus, gauges read from router state at scrape.

``on_event`` runs inline once per client request, so it only does dict and list arithmetic: no
prometheus_client ``Counter``/``Histogram`` children, whose every ``inc``/``observe`` takes a
lock (the router is single-threaded asyncio, one process per worker, so nothing needs one).
``collect`` turns that state into metric families when ``/metrics`` is scraped.

Exported names, help, labels and buckets are those of the former ``Counter``/``Histogram``
version; only their ``*_created`` samples are gone.

The request tables are keyed by profile too (folded away at scrape: the exported labels have no
profile) because they are also what the dashboard's summary feed reads (``request_totals``,
``last_request``, ``notable``): an open dashboard page adds no work per request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from lasso_rpc.observability.events import (
    BreakerChanged,
    Event,
    LimitRejected,
    ProviderEjection,
    RequestFinished,
    SubscriptionFailover,
    is_provider_fault,
)
from lasso_rpc.observability.operator_metrics import (
    BOUNDS,
    HIST_SUM,
    AttemptKey,
    HealthCollector,
    attempt_families,
    histogram_buckets,
)
from lasso_rpc.shaping.metrics import ShapingCollector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from lasso_rpc.router import Router

__all__ = ["LIMIT_NAMES", "NOTABLE_KEPT", "PrometheusMetrics", "RequestTotals"]

_MAX_METHODS = 200
#: Failovers and failed calls kept for the dashboard (the newest; ``notable_seen`` counts all).
NOTABLE_KEPT = 24
#: Row of ``RequestTotals.chains``: requests, errors, failovers, hedged, then one count per
#: latency bucket (``BOUNDS``).
CHAIN_COUNTS = 4
#: The ``limit`` label values of lasso_limit_rejections_total (see docs/hardening.md).
LIMIT_NAMES = (
    "header_bytes",
    "header_count",
    "header_timeout",
    "body_timeout",
    "body_bytes",
    "connections",
    "connections_per_ip",
    "pipelined",
    "malformed_request",
    "http_version",
    "json_depth",
    "batch_size",
    "ws_message_bytes",
    "ws_subscriptions",
    "ws_subscriptions_per_ip",
    "ws_messages_per_second",
)
_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
#: Per chain, one list of these counters, in this order (indices used by ``on_event``).
_SUBSCRIPTION_FAMILIES = (
    ("lasso_subscription_failovers", "Multiplexed subscriptions moved to another provider"),
    (
        "lasso_subscription_backfilled",
        "Blocks or logs fetched over HTTP to close a subscription's hole "
        "(after a failover, a gap or a reorg)",
    ),
    ("lasso_subscription_gaps", "Subscription holes that back-fill could not close"),
    ("lasso_subscription_reorgs", "Reorgs seen by multiplexed subscriptions"),
)


class PrometheusMetrics:
    """Subscribe with ``bus.subscribe(metrics.on_event)``; serve ``metrics.render()``."""

    def __init__(self, router: Router) -> None:
        self._methods: set[str] = set()
        #: (profile, chain, method, provider, status, transport) -> latency histogram of those
        #: calls. One lookup per request feeds both lasso_requests_total (its count) and the
        #: (chain, method) histogram (series merged at scrape): one tuple hash instead of three.
        self._series: dict[tuple[str, str, str, str, str, str], list[float]] = {}
        #: (profile, chain, provider, method, outcome) -> latency histogram of those attempts:
        #: feeds lasso_upstream_attempts_total and lasso_upstream_latency_seconds.
        self._attempts: dict[AttemptKey, list[float]] = {}
        #: Keyed by (profile, chain), or (profile, chain, provider) for hedges.
        self._failovers: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._hedged: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._hedges: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._hedge_denied: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: The last client call, and the last failovers and failed calls (``notable_seen``: how
        #: many ever), for the dashboard's stream of routing decisions.
        self.last_request: RequestFinished | None = None
        self.notable: deque[RequestFinished] = deque(maxlen=NOTABLE_KEPT)
        self.notable_seen = 0
        self._ejections: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._breaker: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._subscriptions: dict[str, list[int]] = {}
        #: Every limit's series exists from the start (at 0), so alerts see its first hit.
        self._limits: dict[str, int] = dict.fromkeys(LIMIT_NAMES, 0)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.registry.register(_StateCollector(router))
        self.registry.register(HealthCollector(router))
        shaper = getattr(router, "shaper", None)  # stand-in routers of tests have none
        if shaper is not None:
            self.registry.register(ShapingCollector(shaper))  # cache, dedup, log splits

    def _admit(self, m: str) -> str:
        if len(self._methods) < _MAX_METHODS:
            self._methods.add(m)
            return m
        return "other"  # unbounded label values would grow memory without bound

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, RequestFinished):
            profile = ev.profile
            chain = ev.chain
            method = ev.method
            if method not in self._methods:
                method = self._admit(method)
            status = ev.status
            key = (profile, chain, method, ev.provider or "", status, ev.transport)
            hist = self._series.get(key)
            if hist is None:
                hist = self._series[key] = [0.0] * (HIST_SUM + 1)
            seconds = ev.latency_ms / 1000.0
            # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
            hist[bisect_left(BOUNDS, seconds)] += 1
            hist[HIST_SUM] += seconds
            attempts = self._attempts
            for a in ev.attempts:
                akey = (profile, chain, a.provider, method, a.outcome)
                ahist = attempts.get(akey)
                if ahist is None:
                    ahist = attempts[akey] = [0.0] * (HIST_SUM + 1)
                seconds = a.latency_ms / 1000.0
                ahist[bisect_left(BOUNDS, seconds)] += 1
                ahist[HIST_SUM] += seconds
            self.last_request = ev
            if ev.failover or status == "error":
                self.notable.append(ev)
                self.notable_seen += 1
                if ev.failover:
                    self._failovers[profile, chain] += 1
            if ev.hedged:
                self._hedged[profile, chain] += 1
                for a in ev.attempts:
                    if a.hedged:
                        self._hedges[profile, chain, a.provider] += 1
            if ev.hedge_denied:
                self._hedge_denied[profile, chain] += 1
        elif isinstance(ev, ProviderEjection):
            if ev.ejected:
                self._ejections[ev.chain, ev.provider] += 1
        elif isinstance(ev, BreakerChanged):
            self._breaker[ev.chain, ev.provider, ev.to_state] += 1
        elif isinstance(ev, LimitRejected):
            if ev.limit in self._limits or len(self._limits) < _MAX_METHODS:
                self._limits[ev.limit] = self._limits.get(ev.limit, 0) + 1
        elif isinstance(ev, SubscriptionFailover):
            # All four series of a chain exist from its first event (at 0), so increase() and
            # alerts see the first gap or reorg rather than a series appearing out of nowhere.
            sub = self._subscriptions.get(ev.chain)
            if sub is None:
                sub = self._subscriptions[ev.chain] = [0] * len(_SUBSCRIPTION_FAMILIES)
            # Reorgs and in-stream gaps travel as the same event with from == to: not a move.
            if ev.from_provider != ev.to_provider:
                sub[0] += 1
            sub[1] += ev.backfilled
            if ev.gap:
                sub[2] += 1
            if ev.reorg:
                sub[3] += 1

    def collect(self) -> Iterator[Metric]:
        """The event counters as metric families (prometheus_client's ``Collector`` protocol)."""
        # Copies before iterating: cheap at scrape time, and safe should a scrape ever run on
        # another thread than the one feeding on_event.
        requests = CounterMetricFamily(
            "lasso_requests",
            "Client calls by outcome",
            labels=["chain", "method", "provider", "status", "transport"],
        )
        by_labels: defaultdict[tuple[str, ...], float] = defaultdict(float)
        merged: dict[tuple[str, str], list[float]] = {}
        for key, hist in list(self._series.items()):
            counts = hist[:]
            by_labels[key[1:]] += sum(counts[:HIST_SUM])  # profiles folded together
            into = merged.get(key[1:3])
            if into is None:
                merged[key[1:3]] = counts
            else:
                for i, v in enumerate(counts):
                    into[i] += v
        for labels, n in by_labels.items():
            requests.add_metric(labels, n)
        yield requests
        latency = HistogramMetricFamily(
            "lasso_request_duration_seconds",
            "Client call latency, router in to router out",
            labels=["chain", "method"],
        )
        for chain_method, hist in merged.items():
            latency.add_metric(chain_method, histogram_buckets(hist), hist[HIST_SUM])
        yield latency
        yield from attempt_families(self._attempts)
        yield _counter(
            "lasso_failovers",
            "Calls answered (or failed) after an attempt failed and another provider was tried",
            ["chain"],
            _by_chain(self._failovers),
        )
        yield _counter(
            "lasso_hedged",
            "Calls that sent a hedge attempt",
            ["chain"],
            _by_chain(self._hedged),
        )
        yield _counter(
            "lasso_hedges",
            "Hedge attempts sent, by the provider they went to",
            ["chain", "provider"],
            _by_chain(self._hedges),
        )
        yield _counter(
            "lasso_hedge_budget_exhausted",
            "Calls whose hedge was due but not sent: the chain's hedge budget was empty",
            ["chain"],
            _by_chain(self._hedge_denied),
        )
        yield _counter(
            "lasso_provider_ejections",
            "Outlier ejections (extensions included)",
            ["chain", "provider"],
            list(self._ejections.items()),
        )
        yield _counter(
            "lasso_breaker_transitions",
            "Breaker state changes",
            ["chain", "provider", "to_state"],
            list(self._breaker.items()),
        )
        yield _counter(
            "lasso_limit_rejections",
            "Connections, requests and messages refused, closed or slowed by a limit "
            "(server.limits) or refused as malformed",
            ["limit"],
            [((k,), n) for k, n in list(self._limits.items())],
        )
        yield from self._subscription_families()

    def _subscription_families(self) -> Iterator[Metric]:
        subs = [(c, v[:]) for c, v in list(self._subscriptions.items())]
        for i, (name, doc) in enumerate(_SUBSCRIPTION_FAMILIES):
            yield _counter(name, doc, ["chain"], [((c,), v[i]) for c, v in subs])

    def request_totals(self) -> RequestTotals:
        """Every count since the start, by (profile, chain) and (profile, chain, provider):
        the dashboard's feed takes the difference between two of these."""
        width = CHAIN_COUNTS + HIST_SUM
        chains: defaultdict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * width)
        providers: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * 4)
        for (profile, chain, _m, provider, status, _t), hist in list(self._series.items()):
            row = chains[profile, chain]
            n = sum(hist[:HIST_SUM])
            row[0] += n
            if status == "error":
                row[1] += n
            elif provider:  # answered with this provider's answer (coalesced calls included)
                providers[profile, chain, provider][2] += int(n)
            for i in range(HIST_SUM):
                row[CHAIN_COUNTS + i] += hist[i]
        for (profile, chain, provider, _m, outcome), hist in list(self._attempts.items()):
            p = providers[profile, chain, provider]
            n = int(sum(hist[:HIST_SUM]))
            p[0] += n
            if is_provider_fault(outcome):
                p[1] += n
        for provider_key, hedges in list(self._hedges.items()):
            providers[provider_key][3] += hedges
        for column, counts in ((2, self._failovers), (3, self._hedged)):
            for key, n in list(counts.items()):
                chains[key][column] += n
        return RequestTotals(chains, providers)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def __repr__(self) -> str:
        return (
            f"PrometheusMetrics(series={len(self._series)}, methods={len(self._methods)}, "
            f"attempt_series={len(self._attempts)})"
        )


class RequestTotals:
    """``chains``: (profile, chain) -> [requests, errors, failovers, hedged, count per latency
    bucket]; ``providers``: (profile, chain, provider) -> [attempts, faults, answered, hedges]."""

    __slots__ = ("chains", "providers")

    def __init__(
        self,
        chains: dict[tuple[str, str], list[float]],
        providers: dict[tuple[str, str, str], list[int]],
    ) -> None:
        self.chains = chains
        self.providers = providers


def _by_chain(counts: Mapping[Any, int]) -> list[tuple[tuple[str, ...], int]]:
    """(profile, chain, ...) -> n as (chain, ...) -> n, profiles added together."""
    out: defaultdict[tuple[str, ...], int] = defaultdict(int)
    for key, n in list(counts.items()):
        out[key[1:]] += n
    return list(out.items())


def _counter(
    name: str, doc: str, labels: list[str], samples: Iterable[tuple[Sequence[str], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, n in samples:
        family.add_metric(values, n)
    return family


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
        ejected = GaugeMetricFamily(
            "lasso_provider_ejected", "1 while ejected as an outlier", labels=labels
        )
        for chain in self._router.chains():
            for p in chain.providers.values():
                lv = [chain.profile, chain.name, p.id]
                breaker.add_metric(lv, _BREAKER_VALUE.get(p.breaker.state, 2))
                in_flight.add_metric(lv, p.in_flight)
                cordoned.add_metric(lv, 1 if p.cordoned else 0)
                ejected.add_metric(lv, 1 if p.ejection.ejected else 0)
                if p.head is not None:
                    head.add_metric(lv, p.head)
                if p.lag is not None:
                    lag.add_metric(lv, p.lag)
        yield from (breaker, in_flight, head, lag, cordoned, ejected)
