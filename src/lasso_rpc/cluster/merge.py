"""One view from every worker's: metric families and ``/api/providers`` rows, merged.

Metrics: counters and histograms are summed sample by sample (same name, same labels). Gauges
are state, merged by the rule of ``GAUGE_MERGE`` (the breaker state is the same on every worker
within a second; in-flight requests add up); a gauge with no rule keeps one series per worker,
with a ``worker`` label, rather than a merge that could be wrong.

Providers: the shared state (breaker, cordon) is the same on every worker; what each measured
on its own is combined: in-flight summed, the highest head, latency rows weighted by their
samples (percentiles of percentiles are an estimate: good to read, not to alert on). Each row
lists every worker's breaker state and in-flight count under ``workers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

__all__ = [
    "GAUGE_MERGE",
    "merge_metrics",
    "merge_providers",
    "metrics_snapshot",
    "render_metrics",
]

#: gauge family name -> "sum" | "max" | "min"; others get a ``worker`` label.
GAUGE_MERGE: dict[str, str] = {
    "lasso_in_flight": "sum",
    "lasso_breaker_state": "max",
    "lasso_provider_head": "max",
    "lasso_provider_lag_blocks": "min",
    "lasso_provider_cordoned": "max",
    "lasso_state_connected": "min",
    "lasso_workers": "max",
}

_Sample = tuple[str, dict[str, str], float]
_Family = tuple[str, str, str, list[_Sample]]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(
    list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]
)


def metrics_snapshot(registry: CollectorRegistry) -> bytes:
    """Every family this process would export, as data (not text)."""
    fams = [
        (m.name, m.type, m.documentation, [(s.name, s.labels, float(s.value)) for s in m.samples])
        for m in registry.collect()
    ]
    return _encoder.encode(fams)


def merge_metrics(snapshots: Iterable[tuple[int, bytes]]) -> list[Metric]:
    merged: dict[
        str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]]]
    ] = {}
    for worker, data in snapshots:
        fams: list[_Family] = _decoder.decode(data)
        for name, typ, doc, samples in fams:
            entry = merged.get(name)
            if entry is None:
                entry = merged[name] = (typ, doc, {})
            rule = GAUGE_MERGE.get(name, "worker") if typ == "gauge" else "sum"
            series = entry[2]
            for sname, labels, value in samples:
                if rule == "worker":
                    labels = {**labels, "worker": str(worker)}
                key = (sname, tuple(sorted(labels.items())))
                hit = series.get(key)
                if hit is None:
                    series[key] = [labels, value]
                elif rule == "max":
                    hit[1] = max(hit[1], value)
                elif rule == "min":
                    hit[1] = min(hit[1], value)
                else:
                    hit[1] += value
    out: list[Metric] = []
    for name, (typ, doc, series) in merged.items():
        m = Metric(name, doc, typ)
        for (sname, _), (labels, value) in series.items():
            m.add_sample(sname, labels, value)
        out.append(m)
    return out


class _Fixed:
    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def render_metrics(metrics: Sequence[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    return bytes(generate_latest(registry))


def merge_providers(per_worker: Iterable[tuple[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for worker, items in per_worker:
        for row in items:
            key = (row["profile"], row["chain"], row["id"])
            mine = {
                "worker": worker,
                "breaker": (row.get("breaker") or {}).get("state"),
                "in_flight": row.get("in_flight", 0),
            }
            have = rows.get(key)
            if have is None:
                rows[key] = {**row, "workers": [mine]}
                continue
            have["workers"].append(mine)
            have["in_flight"] = have.get("in_flight", 0) + row.get("in_flight", 0)
            if "usable" in row:  # usable somewhere: the cluster can still route to it
                have["usable"] = bool(have.get("usable")) or bool(row["usable"])
            heads = [h for h in (have.get("head"), row.get("head")) if h is not None]
            if heads and row.get("head") == max(heads) != have.get("head"):
                have["head"], have["lag"] = row.get("head"), row.get("lag")
            if "stats" in row:
                have["stats"] = _merge_stats(have.get("stats") or {}, row["stats"])
    return list(rows.values())


def _merge_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tr in a.keys() | b.keys():
        ta, tb = a.get(tr) or {}, b.get(tr) or {}
        methods_a, methods_b = ta.get("methods") or {}, tb.get("methods") or {}
        out[tr] = {
            "all": _merge_row(ta.get("all"), tb.get("all")),
            "methods": {
                m: _merge_row(methods_a.get(m), methods_b.get(m))
                for m in methods_a.keys() | methods_b.keys()
            },
        }
    return out


def _merge_row(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None or b is None:
        return a if b is None else b
    na, nb = a.get("samples") or 0, b.get("samples") or 0
    out: dict[str, Any] = {"samples": na + nb}
    for k in a.keys() | b.keys():
        if k == "samples":
            continue
        va, vb = a.get(k), b.get(k)
        if va is None or vb is None or na + nb == 0:
            out[k] = va if vb is None else vb
        else:
            out[k] = round((va * na + vb * nb) / (na + nb), 4)
    return out
