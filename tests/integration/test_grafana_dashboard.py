"""docs/grafana/lasso-rpc.json: every query names a metric a running router really exports, and
filters or groups only by labels that metric has (labels as docs/operations.md lists them,
which tests/unit/test_operations_doc.py checks against the router)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RouterFactory, rpc
from tests.unit.test_operations_doc import _rows

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "lasso-rpc.json"
_METRIC = re.compile(r"\b(lasso_[a-z0-9_]+)")
_SELECTOR = re.compile(r"\b(lasso_[a-z0-9_]+)\{([^}]*)\}")
_BY = re.compile(r"\bby \(([^)]*)\)")
_SUFFIXES = ("_bucket", "_sum", "_count")


def _queries(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            yield f"variable {var['name']}", var["query"]["query"]


def _family(sample_name: str, exported: dict[str, str]) -> str:
    for suffix in _SUFFIXES:
        base = sample_name.removesuffix(suffix)
        if base != sample_name and exported.get(base) == "histogram":
            return base
    return sample_name


async def test_every_query_names_an_exported_metric_and_its_labels(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    await rpc(http, s.url + "/rpc/ethereum", "eth_blockNumber")
    async with http.get(s.url + "/metrics") as r:
        text = await r.text()
    exported: dict[str, str] = {}  # names as queries write them -> type
    for f in text_string_to_metric_families(text):
        exported[f"{f.name}_total" if f.type == "counter" else f.name] = f.type
    labels = {
        name: {x.strip() for x in cells[1].split(",")} for name, cells in _rows("Metrics").items()
    }

    doc = json.loads(DASHBOARD.read_text())
    queries = list(_queries(doc))
    assert len(queries) >= 25
    used: set[str] = set()
    for title, expr in queries:
        names = {_family(n, exported) for n in _METRIC.findall(expr)}
        assert names, f"{title}: no lasso metric in {expr!r}"
        for name in names:
            assert name in exported, f"{title}: {name} is not exported by the router ({expr!r})"
            used.add(name)
        for name, matchers in _SELECTOR.findall(expr):
            for label in re.findall(r"(\w+)\s*[=!]~?", matchers):
                assert label in labels[_family(name, exported)], f"{title}: {name} has no {label}"
        have = set.union(*(labels[n] for n in names)) | {"le"}
        for group in _BY.findall(expr):
            for label in (x.strip() for x in group.split(",")):
                assert label in have, f"{title}: no metric of {expr!r} has the label {label!r}"
    assert {"lasso_upstream_latency_seconds", "lasso_breaker_state", "lasso_chain_ready"} <= used
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"][
            "w"
        ] <= 24
