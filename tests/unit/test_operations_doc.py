"""docs/operations.md lists every metric (name, type, labels) and every event type (its fields)
exactly as the router has them: a new metric or event without its line fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from lasso_rpc.clock import FakeClock
from lasso_rpc.config import load_config_text
from lasso_rpc.dashboard import summary as _summary  # noqa: F401  (registers stats.summary)
from lasso_rpc.observability.events import (
    Attempt,
    BreakerChanged,
    Event,
    ProviderEjection,
    RequestFinished,
    SubscriptionFailover,
)
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.router import Router

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
CONFIG = """
name: T
slug: local
cache: {enabled: true}  # so that the cache's families have their series
chains:
  ethereum:
    chain_id: 1
    providers: [{id: alpha, url: "http://127.0.0.1:1/"}]
"""


def _section(title: str) -> str:
    return DOC.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _rows(title: str) -> dict[str, list[str]]:
    rows = {}
    for line in _section(title).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _exported() -> dict[str, tuple[str, list[str]]]:
    """Every family a router exports, with every label: events of each kind feed it first."""
    router = Router(load_config_text([("t.yaml", CONFIG)]), clock=FakeClock())
    router.resolve("ethereum").providers["alpha"].head = 10  # head/lag gauges have a sample
    router.resolve("ethereum").providers["alpha"].lag = 0
    router.resolve("ethereum").heads.consensus_head = 10
    metrics = PrometheusMetrics(router)
    tries = (
        Attempt(provider="alpha", outcome="provider", latency_ms=5.0),
        Attempt(provider="alpha", outcome="ok", latency_ms=5.0, hedged=True),
    )
    metrics.on_event(
        RequestFinished(
            ts=1.0, request_id="r", profile="local", chain="ethereum", method="eth_call",
            strategy="fastest", transport="http", status="ok", error_class=None,
            latency_ms=10.0, attempts=tries, hedged=True, failover=True, provider="alpha",
            hedge_denied=True,
        )
    )  # fmt: skip
    metrics.on_event(
        ProviderEjection(
            ts=1.0, chain="ethereum", provider="alpha", ejected=True, reason="x",
        )
    )  # fmt: skip
    metrics.on_event(
        BreakerChanged(
            ts=1.0, chain="ethereum", provider="alpha", transport="http",
            from_state="closed", to_state="open", reason="x",
        )
    )  # fmt: skip
    metrics.on_event(
        SubscriptionFailover(
            ts=1.0, chain="ethereum", subscription="newHeads", from_provider="alpha",
            to_provider="beta", backfilled=1, gap=True, reorg=True,
        )
    )  # fmt: skip
    out = {}
    for f in text_string_to_metric_families(metrics.render().decode()):
        name = f"{f.name}_total" if f.type == "counter" else f.name
        labels = sorted({k for s in f.samples for k in s.labels} - {"le"})
        out[name] = (f.type, labels)
    return out


def test_every_exported_metric_has_its_line_and_every_line_is_exported() -> None:
    exported = _exported()
    documented = _rows("Metrics")
    missing = sorted(set(exported) - set(documented))
    assert not missing, f"add these metrics to docs/operations.md (## Metrics): {missing}"
    stale = sorted(set(documented) - set(exported))
    assert not stale, f"docs/operations.md lists metrics the router does not export: {stale}"
    for name, (kind, labels) in exported.items():
        doc_kind, doc_labels = documented[name][0], documented[name][1]
        assert doc_kind == kind, name
        assert [x.strip() for x in doc_labels.split(",")] == labels, name


def _event_classes(cls: type[Event] = Event) -> Iterator[type[Event]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _event_classes(sub)


def test_every_event_type_and_field_is_documented() -> None:
    rows = _rows("Events")
    for cls in _event_classes():
        if cls.__module__.startswith("tests."):
            continue
        assert cls.kind in rows, f"add event {cls.kind!r} to docs/operations.md (## Events)"
        fields_cell = rows[cls.kind][1]
        for f in msgspec.structs.fields(cls):
            if f.name in ("ts", "decision"):  # every event's ts; decision is sent as explanation
                continue
            assert re.search(rf"\b{f.name}\b", fields_cell), f"{cls.kind}: field {f.name}"
    assert "chaos.reverted" in _section("Events")


def test_the_shared_state_and_access_metrics_are_documented() -> None:
    from lasso_rpc.access.gate import build_gate
    from lasso_rpc.access.metrics import AccessCollector
    from lasso_rpc.cluster.metrics import ClusterCollector
    from lasso_rpc.cluster.runtime import Cluster

    cfg = load_config_text([("t.yaml", CONFIG + "access: {per_ip: {rps: 1}}\n")])
    router = Router(cfg, clock=FakeClock())
    gate = build_gate(cfg, clock=router.clock)
    assert gate is not None
    for outcome in ("allowed", "limited"):
        gate.counts["anonymous", outcome] += 1
    gate.limited["anonymous", "per_ip"] += 1
    gate.fallbacks["open"] += 1
    exported: dict[str, tuple[str, list[str]]] = {}
    for collector in (ClusterCollector(Cluster(router)), AccessCollector(gate)):
        for m in collector.collect():
            name = f"{m.name}_total" if m.type == "counter" else m.name
            exported[name] = (m.type, sorted({k for s in m.samples for k in s.labels}))
    exported["lasso_workers"] = exported["lasso_workers_missing"] = ("gauge", [])  # views.py
    documented = _rows("Shared state and access metrics")
    assert set(documented) == set(exported)
    for name, (kind, labels) in exported.items():
        assert documented[name][0] == kind, name
        assert [x.strip() for x in documented[name][1].split(",") if x.strip()] == labels, name
