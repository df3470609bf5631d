"""The Prometheus subscriber: events in, exposition text out (what a scraper would read)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from lasso_rpc.clock import FakeClock
from lasso_rpc.config.models import RoutingConfig
from lasso_rpc.observability.events import (
    Attempt,
    BreakerChanged,
    ConfigReloaded,
    ProviderHealth,
    RequestFinished,
    SubscriptionFailover,
)
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.upstream.probe import ProbeRecord

LE = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5")
LE += ("5.0", "10.0", "30.0", "+Inf")


class NoChains:
    clock = FakeClock()

    def chains(self) -> list[Any]:
        return []


def make(router: Any = None) -> PrometheusMetrics:
    return PrometheusMetrics(router or NoChains())


def finished(
    *,
    chain: str = "ethereum",
    method: str = "eth_getBalance",
    provider: str | None = "alpha",
    status: str = "ok",
    transport: str = "http",
    latency_ms: float = 12.0,
    attempts: tuple[Attempt, ...] | None = None,
    failover: bool = False,
    hedged: bool = False,
    profile: str = "local",
) -> RequestFinished:
    if attempts is None:
        attempts = (Attempt(provider=provider or "alpha", outcome="ok", latency_ms=latency_ms),)
    return RequestFinished(
        ts=1.0,
        request_id="r",
        profile=profile,
        chain=chain,
        method=method,
        strategy="fastest",
        transport=transport,
        status=status,
        error_class=None if status == "ok" else "provider",
        latency_ms=latency_ms,
        attempts=attempts,
        failover=failover,
        hedged=hedged,
        provider=provider,
    )


def sub_event(
    *, src: str | None, dst: str | None, backfilled: int, gap: bool = False, reorg: bool = False
) -> SubscriptionFailover:
    return SubscriptionFailover(
        ts=1.0,
        chain="ethereum",
        subscription="newHeads",
        from_provider=src,
        to_provider=dst,
        backfilled=backfilled,
        gap=gap,
        reorg=reorg,
    )


def lines(m: PrometheusMetrics) -> list[str]:
    return m.render().decode().splitlines()


def bucket(chain: str, method: str, le: str, n: int) -> str:
    labels = f'chain="{chain}",le="{le}",method="{method}"'  # the writer sorts label names
    return f"lasso_request_duration_seconds_bucket{{{labels}}} {n}.0"


def test_requests_are_counted_by_outcome_and_a_missing_provider_is_empty() -> None:
    m = make()
    for _ in range(3):
        m.on_event(finished())
    m.on_event(finished(provider=None, status="error", transport="ws"))
    out = lines(m)
    assert (
        'lasso_requests_total{chain="ethereum",method="eth_getBalance",provider="alpha",status="ok",transport="http"} 3.0'
        in out
    )
    assert (
        'lasso_requests_total{chain="ethereum",method="eth_getBalance",provider="",status="error",transport="ws"} 1.0'
        in out
    )
    assert not [line for line in out if "_created" in line]


def test_latency_histogram_is_cumulative_per_chain_and_method() -> None:
    m = make()
    # On a bound counts in that bucket (le is <=); 45 s is beyond the last bound: +Inf only.
    for ms, provider in ((1.0, "alpha"), (250.0, "alpha"), (500.0, "beta"), (45_000.0, "beta")):
        m.on_event(finished(latency_ms=ms, provider=provider))
    m.on_event(finished(chain="base", method="eth_call", latency_ms=2.0))
    out = lines(m)
    expected = dict(zip(LE, (1, 1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 4), strict=True))
    for le, n in expected.items():
        assert bucket("ethereum", "eth_getBalance", le, n) in out
    ebal = 'chain="ethereum",method="eth_getBalance"'
    assert f"lasso_request_duration_seconds_count{{{ebal}}} 4.0" in out
    assert f"lasso_request_duration_seconds_sum{{{ebal}}} 45.751" in out
    assert bucket("base", "eth_call", "0.001", 0) in out
    assert bucket("base", "eth_call", "0.0025", 1) in out
    assert bucket("base", "eth_call", "+Inf", 1) in out
    assert 'lasso_request_duration_seconds_sum{chain="base",method="eth_call"} 0.002' in out


def test_attempts_failovers_and_hedges() -> None:
    m = make()
    tries = (
        Attempt(provider="alpha", outcome="provider", latency_ms=3.0),
        Attempt(provider="beta", outcome="ok", latency_ms=5.0, hedged=True),
    )
    m.on_event(finished(provider="beta", attempts=tries, failover=True, hedged=True))
    m.on_event(finished())
    out = lines(m)
    assert (
        'lasso_upstream_attempts_total{chain="ethereum",outcome="provider",provider="alpha"} 1.0'
        in out
    )
    assert 'lasso_upstream_attempts_total{chain="ethereum",outcome="ok",provider="beta"} 1.0' in out
    assert (
        'lasso_upstream_attempts_total{chain="ethereum",outcome="ok",provider="alpha"} 1.0' in out
    )
    assert 'lasso_failovers_total{chain="ethereum"} 1.0' in out
    assert 'lasso_hedged_total{chain="ethereum"} 1.0' in out


def test_profiles_with_the_same_chain_share_one_series_and_stay_apart_in_the_totals() -> None:
    """The exported labels have no profile: two profiles' "ethereum" add up at scrape, while
    ``request_totals`` (the dashboard's source) keeps them apart."""
    m = make()
    hedge = (
        Attempt(provider="alpha", outcome="provider", latency_ms=3.0),
        Attempt(provider="alpha", outcome="ok", latency_ms=4.0, hedged=True),
    )
    for profile in ("local", "indexer", "indexer"):
        m.on_event(finished(profile=profile, attempts=hedge, failover=True, hedged=True))
    out = lines(m)
    ok = 'method="eth_getBalance",provider="alpha",status="ok",transport="http"'
    assert f'lasso_requests_total{{chain="ethereum",{ok}}} 3.0' in out
    assert bucket("ethereum", "eth_getBalance", "+Inf", 3) in out
    assert (
        'lasso_upstream_attempts_total{chain="ethereum",outcome="ok",provider="alpha"} 3.0' in out
    )
    assert 'lasso_failovers_total{chain="ethereum"} 3.0' in out
    assert 'lasso_hedges_total{chain="ethereum",provider="alpha"} 3.0' in out
    assert len([line for line in out if line.startswith("lasso_failovers_total")]) == 1
    totals = m.request_totals()
    assert totals.chains["indexer", "ethereum"][:4] == [2, 0, 2, 2]  # calls, errors, fo, hedged
    assert totals.chains["local", "ethereum"][:4] == [1, 0, 1, 1]
    # attempts, faults, answered, hedges
    assert totals.providers["indexer", "ethereum", "alpha"] == [4, 2, 2, 2]
    assert m.notable_seen == 3 and m.last_request is not None


def test_method_label_is_capped_so_clients_cannot_grow_memory() -> None:
    m = make()
    for i in range(200):
        m.on_event(finished(method=f"m{i}"))
    m.on_event(finished(method="eth_junk1"))
    m.on_event(finished(method="eth_junk2", latency_ms=2.0))
    m.on_event(finished(method="m7"))  # admitted before the cap: keeps its own label
    out = lines(m)
    assert (
        'lasso_requests_total{chain="ethereum",method="other",provider="alpha",status="ok",transport="http"} 2.0'
        in out
    )
    assert 'lasso_request_duration_seconds_count{chain="ethereum",method="other"} 2.0' in out
    assert (
        'lasso_requests_total{chain="ethereum",method="m7",provider="alpha",status="ok",transport="http"} 2.0'
        in out
    )
    assert not [line for line in out if "eth_junk" in line]
    methods = {
        line.split('method="')[1].split('"')[0]
        for line in out
        if line.startswith("lasso_requests_total{")
    }
    assert len(methods) == 201


def test_breaker_transitions() -> None:
    m = make()
    for to in ("open", "half_open", "open"):
        m.on_event(
            BreakerChanged(
                ts=1.0,
                chain="ethereum",
                provider="alpha",
                transport="http",
                from_state="closed",
                to_state=to,
                reason="failures",
            )
        )
    out = lines(m)
    assert (
        'lasso_breaker_transitions_total{chain="ethereum",provider="alpha",to_state="open"} 2.0'
        in out
    )
    assert (
        'lasso_breaker_transitions_total{chain="ethereum",provider="alpha",to_state="half_open"} 1.0'
        in out
    )


def test_subscription_counters_tell_moves_from_reorg_and_gap_markers() -> None:
    m = make()
    m.on_event(sub_event(src="alpha", dst="beta", backfilled=5))
    m.on_event(sub_event(src="beta", dst="alpha", backfilled=2, gap=True))
    # Reorgs and in-stream gaps are the same event with from == to: counted, but not as moves.
    m.on_event(sub_event(src="alpha", dst="alpha", backfilled=3, reorg=True))
    m.on_event(sub_event(src="alpha", dst="alpha", backfilled=4, gap=True))
    out = lines(m)
    assert 'lasso_subscription_failovers_total{chain="ethereum"} 2.0' in out
    assert 'lasso_subscription_backfilled_total{chain="ethereum"} 14.0' in out
    assert 'lasso_subscription_gaps_total{chain="ethereum"} 2.0' in out
    assert 'lasso_subscription_reorgs_total{chain="ethereum"} 1.0' in out
    assert not [line for line in out if "newHeads" in line]  # never labelled by subscription


def test_a_chains_subscription_series_start_at_zero() -> None:
    m = make()
    m.on_event(sub_event(src="alpha", dst="beta", backfilled=0))
    out = lines(m)
    assert 'lasso_subscription_gaps_total{chain="ethereum"} 0.0' in out
    assert 'lasso_subscription_reorgs_total{chain="ethereum"} 0.0' in out


def test_other_events_change_nothing() -> None:
    m = make()
    before = m.render()
    m.on_event(
        ProviderHealth(ts=1.0, chain="ethereum", provider="alpha", head=5, lag=0, cordoned=False)
    )
    m.on_event(ConfigReloaded(ts=1.0, ok=True, source="test"))
    assert m.render() == before


def test_state_gauges_are_read_from_the_router_at_scrape() -> None:
    provider = SimpleNamespace(
        id="alpha",
        breaker=SimpleNamespace(state="open", snapshot=lambda: SimpleNamespace(last_reason="x")),
        in_flight=2,
        cordoned=False,
        head=100,
        lag=None,
        probe=ProbeRecord(),
        ejection=SimpleNamespace(ejected=True),
    )
    chain = SimpleNamespace(
        profile="local",
        name="ethereum",
        providers={"alpha": provider},
        routing=RoutingConfig(),
        consensus_head=100,
    )
    router = SimpleNamespace(chains=lambda: [chain], clock=FakeClock())
    m = make(router)
    labels = 'chain="ethereum",profile="local",provider="alpha"'
    assert f"lasso_breaker_state{{{labels}}} 2.0" in lines(m)
    assert f"lasso_provider_ejected{{{labels}}} 1.0" in lines(m)
    provider.in_flight = 0
    out = lines(m)
    assert f"lasso_in_flight{{{labels}}} 0.0" in out
    assert f"lasso_provider_head{{{labels}}} 100.0" in out
    assert not [line for line in out if line.startswith("lasso_provider_lag_blocks{")]


def test_output_is_valid_exposition_text() -> None:
    m = make()
    empty = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert "lasso_subscription_reorgs" in empty and not empty["lasso_requests"].samples
    m.on_event(finished(latency_ms=30.0))
    m.on_event(finished(latency_ms=60_000.0, provider="beta", status="error", failover=True))
    m.on_event(sub_event(src="alpha", dst="beta", backfilled=1))
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert families["lasso_requests"].type == "counter"
    assert families["lasso_subscription_failovers"].type == "counter"
    hist = families["lasso_request_duration_seconds"]
    assert hist.type == "histogram"
    buckets = [s for s in hist.samples if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets] == list(LE)
    values = [s.value for s in buckets]
    assert values == sorted(values) and values[-1] == 2.0
    (count,) = (s.value for s in hist.samples if s.name.endswith("_count"))
    (total,) = (s.value for s in hist.samples if s.name.endswith("_sum"))
    assert count == 2.0 and total == 60.03


def test_upstream_latency_per_provider_and_method_and_attempts_by_outcome() -> None:
    m = make()
    tries = (
        Attempt(provider="alpha", outcome="timeout", latency_ms=2000.0),
        Attempt(provider="beta", outcome="ok", latency_ms=4.0),
        Attempt(provider="gamma", outcome="cancelled", latency_ms=30.0, hedged=True),
    )
    m.on_event(finished(provider="beta", attempts=tries, failover=True))
    m.on_event(finished(method="eth_call", provider="beta", latency_ms=40.0))
    out = lines(m)

    def bucket_line(provider: str, method: str, le: str, n: int) -> str:
        labels = f'chain="ethereum",le="{le}",method="{method}",provider="{provider}"'
        return f"lasso_upstream_latency_seconds_bucket{{{labels}}} {n}.0"

    assert bucket_line("alpha", "eth_getBalance", "1.0", 0) in out
    assert bucket_line("alpha", "eth_getBalance", "2.5", 1) in out  # a timeout counts
    assert bucket_line("beta", "eth_getBalance", "0.0025", 0) in out
    assert bucket_line("beta", "eth_getBalance", "0.005", 1) in out
    assert bucket_line("beta", "eth_call", "0.05", 1) in out
    beta_call = 'chain="ethereum",method="eth_call",provider="beta"'
    assert f"lasso_upstream_latency_seconds_sum{{{beta_call}}} 0.04" in out
    # A hedge loser the router cancelled: an attempt, but no latency sample.
    assert not [line for line in out if "latency" in line and 'provider="gamma"' in line]
    for provider, outcome in (("alpha", "timeout"), ("beta", "ok"), ("gamma", "cancelled")):
        labels = f'chain="ethereum",outcome="{outcome}",provider="{provider}"'
        n = 2 if provider == "beta" else 1
        assert f"lasso_upstream_attempts_total{{{labels}}} {n}.0" in out
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert families["lasso_upstream_latency_seconds"].type == "histogram"


def test_head_ready_and_provider_up_gauges_follow_the_health_polls() -> None:
    clock = FakeClock()
    probe = ProbeRecord()
    provider = SimpleNamespace(
        id="alpha",
        breaker=SimpleNamespace(state="closed"),
        in_flight=0,
        cordoned=False,
        head=7,
        lag=0,
        probe=probe,
        ejection=SimpleNamespace(ejected=False),
    )
    chain = SimpleNamespace(
        profile="local",
        name="ethereum",
        providers={"alpha": provider},
        routing=RoutingConfig(head_poll_ms=1000),
        consensus_head=None,
    )
    m = make(SimpleNamespace(chains=lambda: [chain], clock=clock))
    lv = 'chain="ethereum",profile="local"'
    out = lines(m)
    assert f"lasso_chain_ready{{{lv}}} 0.0" in out
    assert f'lasso_provider_up{{{lv},provider="alpha"}} 0.0' in out
    assert not [line for line in out if line.startswith("lasso_chain_head{")]
    probe.answered(clock.now_ms())
    chain.consensus_head = 7
    out = lines(m)
    assert f"lasso_chain_ready{{{lv}}} 1.0" in out
    assert f'lasso_provider_up{{{lv},provider="alpha"}} 1.0' in out
    assert f"lasso_chain_head{{{lv}}} 7.0" in out
    clock.advance(1000)
    probe.failed(clock.now_ms(), "refused")
    assert f'lasso_provider_up{{{lv},provider="alpha"}} 0.0' in lines(m)
