"""Battle reports: the result JSON (the source of truth) and what is rendered from it.

A result is a plain dict with the versioned schema ``lasso-rpc.battle/1`` (SPEC §6). Every other
format is rendered from that dict alone, so a report can be rebuilt from a saved ``<id>.json``:

- ``render_markdown``: a summary for humans and PR comments;
- ``render_junit``: one testsuite per scenario, one testcase per SLO, for CI;
- ``report_html.render_html``: one self-contained interactive page (plotly, imported lazily);
- ``lasso_rpc.battle.measure.baseline.compare``: a new result against a baseline (``Thresholds``).

``validate_result`` raises ``InvalidResult`` listing every problem as ``"key.path: message"``.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lasso_rpc.errors import LassoError

__all__ = [
    "SCHEMA",
    "InvalidResult",
    "ReportPaths",
    "breaker_lane",
    "chaos_label",
    "dump_result",
    "fmt",
    "load_result",
    "render_junit",
    "render_markdown",
    "save_baseline",
    "validate_result",
    "write_reports",
]

SCHEMA = "lasso-rpc.battle/1"

Result = Mapping[str, Any]


class InvalidResult(LassoError):
    """A battle result does not follow the schema. ``errors`` holds ``"key.path: message"``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid battle result:\n" + "\n".join(f"  {e}" for e in self.errors))


# --------------------------------------------------------------------------- validation

_NUM = "number"
_OPT_NUM = "number or null"
_TOP: dict[str, str | type] = {
    "schema": str, "id": str, "passed": bool, "scenario": dict, "started_at": str,
    "duration_s": _NUM, "slos": list, "summary": dict, "chaos": list, "timeseries": dict,
    "breakers": list, "providers": dict, "errors_by_class": dict,
}  # fmt: skip
_SUMMARY: dict[str, str | type] = {
    "requests": int, "ok": int, "errors": int, "success_rate": _NUM, "throughput_rps": _NUM,
    "latency_ms": dict, "failovers": int,
}  # fmt: skip
_LATENCY = ("p50", "p95", "p99", "max")
_SLO = ("key", "op", "target", "actual", "passed", "message")
_CHAOS = ("action", "target", "at_s", "end_s")
_BREAKER = ("t_s", "provider", "from", "to")
_SERIES = ("requests", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "failovers")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")


def _type_error(value: Any, want: str | type) -> str | None:
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    if want == _NUM:
        return None if is_num else "must be a number"
    if want == _OPT_NUM:
        return None if value is None or is_num else "must be a number or null"
    assert isinstance(want, type)
    if want is int and isinstance(value, bool):
        return "must be an integer"
    article = "an" if want is int else "a"
    return None if isinstance(value, want) else f"must be {article} {_TYPE_NAMES[want]}"


_TYPE_NAMES = {str: "string", bool: "boolean", dict: "object", list: "list", int: "integer"}


def _check(d: Mapping[str, Any], spec: Mapping[str, str | type], path: str, out: list[str]) -> None:
    for key, want in spec.items():
        if key not in d:
            out.append(f"{path}{key}: missing")
        elif (msg := _type_error(d[key], want)) is not None:
            out.append(f"{path}{key}: {msg} (got {type(d[key]).__name__})")


def _check_items(items: list[Any], keys: tuple[str, ...], path: str, out: list[str]) -> None:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            out.append(f"{path}[{i}]: must be an object")
            continue
        out.extend(f"{path}[{i}].{k}: missing" for k in keys if k not in item)


def validate_result(d: Any) -> None:
    """Raise ``InvalidResult`` unless ``d`` is a ``lasso-rpc.battle/1`` result reports can read."""
    if not isinstance(d, Mapping):
        raise InvalidResult([f"<root>: must be an object, got {type(d).__name__}"])
    schema = d.get("schema")
    if schema != SCHEMA:
        raise InvalidResult([f"schema: unsupported {schema!r}; this lasso-rpc reads {SCHEMA!r}"])
    errors: list[str] = []
    _check(d, _TOP, "", errors)
    if isinstance(d.get("id"), str) and not _SAFE_ID.fullmatch(d["id"]):
        errors.append(f"id: {d['id']!r} is not a safe file name ([A-Za-z0-9._:+-], no leading dot)")
    if isinstance(d.get("scenario"), dict):
        _check(d["scenario"], {"name": str}, "scenario.", errors)
    if isinstance(summary := d.get("summary"), dict):
        _check(summary, _SUMMARY, "summary.", errors)
        if isinstance(lat := summary.get("latency_ms"), dict):
            _check(lat, dict.fromkeys(_LATENCY, _OPT_NUM), "summary.latency_ms.", errors)
    for key, keys in (("slos", _SLO), ("chaos", _CHAOS), ("breakers", _BREAKER)):
        if isinstance(items := d.get(key), list):
            _check_items(items, keys, key, errors)
    if isinstance(ts := d.get("timeseries"), dict):
        _check(ts, {"bucket_s": _NUM, "t": list}, "timeseries.", errors)
        n = len(ts["t"]) if isinstance(ts.get("t"), list) else None
        series = [(k, ts.get(k)) for k in _SERIES]
        if isinstance(share := ts.get("provider_share", {}), dict):
            series += [(f"provider_share.{p}", v) for p, v in share.items()]
        for name, values in series:
            if values is not None and (not isinstance(values, list) or len(values) != n):
                errors.append(f"timeseries.{name}: must be a list as long as timeseries.t ({n})")
    if errors:
        raise InvalidResult(errors)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True, slots=True)
class ReportPaths:
    json: Path
    markdown: Path
    html: Path
    junit: Path
    latest_json: Path
    latest_markdown: Path
    latest_html: Path


def dump_result(result: Result) -> bytes:
    """The result as indented JSON (NaN and infinities become null)."""
    return orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a result (or baseline) file."""
    try:
        d = orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidResult([f"<root>: {path} is not JSON ({exc})"]) from exc
    validate_result(d)
    assert isinstance(d, dict)
    return d


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(result: Result, out_dir: str | os.PathLike[str]) -> ReportPaths:
    """Write ``<id>.json|.md|.html|.junit.xml`` and copies ``latest.json|.md|.html``."""
    from lasso_rpc.battle.report.html import render_html  # plotly is heavy: import on use

    validate_result(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rid = result["id"]
    paths = ReportPaths(
        json=out / f"{rid}.json",
        markdown=out / f"{rid}.md",
        html=out / f"{rid}.html",
        junit=out / f"{rid}.junit.xml",
        latest_json=out / "latest.json",
        latest_markdown=out / "latest.md",
        latest_html=out / "latest.html",
    )
    rendered = {
        (paths.json, paths.latest_json): dump_result(result),
        (paths.markdown, paths.latest_markdown): render_markdown(result).encode(),
        (paths.html, paths.latest_html): render_html(result).encode(),
        (paths.junit,): render_junit(result).encode(),
    }
    for targets, data in rendered.items():
        for path in targets:
            _write_atomic(path, data)
    return paths


def save_baseline(result: Result, path: str | os.PathLike[str]) -> Path:
    """Save ``result`` as a baseline for later ``compare`` runs."""
    validate_result(result)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(p, dump_result(result))
    return p


# --------------------------------------------------------------------------- formatting


def fmt(x: Any, unit: str = "") -> str:
    """A number for a table cell: short, but never rounding 0.99899 up to 0.999."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e15):
        s = f"{x:.0f}"
    elif abs(x) >= 1:
        s = f"{x:.{1 if abs(x) >= 100 else 2}f}".rstrip("0").rstrip(".")
    else:
        s = f"{x:.6g}"
    return f"{s} {unit}" if unit else s


_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "higher": "≥", "lower": "≤"}


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _details(d: Any) -> str:
    if not isinstance(d, Mapping) or not d:
        return ""
    return ", ".join(f"{k}={v}" for k, v in d.items())


def breaker_lane(b: Mapping[str, Any]) -> str:
    """Breakers are per provider and transport: ``"alpha"`` (HTTP) or ``"alpha (ws)"``."""
    transport = b.get("transport") or "http"
    return str(b["provider"]) if transport == "http" else f"{b['provider']} ({transport})"


def chaos_label(ev: Mapping[str, Any]) -> str:
    """``"kill_provider alpha"``: a chaos event's action and target."""
    return f"{ev['action']} {ev['target']}" if ev.get("target") else str(ev["action"])


# --------------------------------------------------------------------------- markdown


def _summary_rows(s: Mapping[str, Any]) -> list[list[Any]]:
    lat, flat = s["latency_ms"], s.get("failover_latency_ms") or {}
    rows: list[list[Any]] = [
        ["requests", f"{s['requests']} (ok {s['ok']}, errors {s['errors']}, "
         f"client errors {s.get('client_errors', 0)})"],
        ["success rate", f"{fmt(s['success_rate'])} ({s['success_rate'] * 100:.3f} %)"],
        ["throughput", fmt(s["throughput_rps"], "req/s")],
        ["latency p50 / p95 / p99 / max",
         " / ".join(fmt(lat.get(k)) for k in ("p50", "p95", "p99", "max")) + " ms"],
        ["failovers", f"{s['failovers']} (client view {fmt(s.get('failovers_client_view'))}, "
         f"latency heuristic {fmt(s.get('failover_heuristic_count'))})"],
        ["failover latency p50 / p95 / p99 / max",
         " / ".join(fmt(flat.get(k)) for k in ("p50", "p95", "p99", "max")) + " ms"],
        ["hedged", fmt(s.get("hedged", 0))],
        ["router RSS max / mean",
         f"{fmt(s.get('router_rss_mb_max'))} / {fmt(s.get('router_rss_mb_mean'))} MB"],
        ["router CPU mean", fmt(s.get("router_cpu_pct_mean"), "%")],
    ]  # fmt: skip
    if ws := s.get("ws"):
        rows.append(["WebSocket", ", ".join(f"{k} {fmt(v)}" for k, v in ws.items())])
    return rows


def render_markdown(d: Result) -> str:
    """A Markdown summary: verdict, SLOs, numbers, chaos and breaker timelines, provider share."""
    validate_result(d)
    sc, s = d["scenario"], d["summary"]
    router = sc.get("router") or {}
    verdict = "PASS ✅" if d["passed"] else "FAIL ❌"
    out = [f"# Battle: {sc['name']} — {verdict}", ""]
    out += [
        f"`{d['id']}` · started {d['started_at']} · {fmt(d['duration_s'])} s · "
        f"seed {sc.get('seed', '—')} · strategy {router.get('strategy', '—')} "
        f"({'subprocess' if router.get('process') else 'in-process'} router)",
        "",
    ]
    if sc.get("description"):
        out += [f"> {sc['description']}", ""]
    out += ["## SLOs", ""]
    slo_rows = [
        [f"`{x['key']}`", f"{_OPS.get(x['op'], x['op'])} {fmt(x['target'])}", fmt(x["actual"]),
         "✅" if x["passed"] else "❌", "" if x["passed"] else x.get("message", "")]
        for x in d["slos"]
    ]  # fmt: skip
    out += _table(["SLO", "target", "actual", "", "note"], slo_rows) if slo_rows else ["(none)", ""]
    out += ["## Summary", "", *_table(["metric", "value"], _summary_rows(s))]
    if d["chaos"]:
        rows = [
            [fmt(c["at_s"], "s"), fmt(c["end_s"], "s"), c["action"], c.get("target") or "—",
             _details(c.get("details")), fmt(c.get("recovery_s"), "s"),
             fmt(c.get("recovery_after_revert_s"), "s")]
            for c in d["chaos"]
        ]  # fmt: skip
        head = ["at", "until", "action", "target", "details", "recovery", "after revert"]
        out += ["## Chaos timeline", "", *_table(head, rows)]
    if d["breakers"]:
        rows = [
            [fmt(b["t_s"], "s"), breaker_lane(b), f"{b['from']} → {b['to']}", b.get("reason", "")]
            for b in d["breakers"]
        ]
        out += ["## Breaker timeline", "", *_table(["t", "provider", "change", "reason"], rows)]
    if d["providers"]:
        rows = [
            [p, v.get("requests"), f"{v.get('share', 0) * 100:.1f} %", v.get("attempt_errors", 0)]
            for p, v in d["providers"].items()
        ]
        out += ["## Provider share", ""]
        out += _table(["provider", "requests", "share", "attempt errors"], rows)
    if d["errors_by_class"]:
        rows = [
            [f"`{k}`", v] for k, v in sorted(d["errors_by_class"].items(), key=lambda kv: -kv[1])
        ]
        out += ["## Errors by class", "", *_table(["class", "count"], rows)]
    return "\n".join(out)


# --------------------------------------------------------------------------- junit

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(v: Any) -> str:
    return _XML_BAD.sub("?", str(v))


def render_junit(d: Result) -> str:
    """JUnit XML: one testsuite for the scenario, one testcase per SLO (a failure when violated)."""
    validate_result(d)
    name = _x(d["scenario"]["name"])
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "scenario"
    cases: list[tuple[str, str | None]] = [
        (f"{x['key']} {x['op']} {x['target']}", None if x["passed"] else _x(x.get("message", "")))
        for x in d["slos"]
    ]
    if not d["passed"] and all(msg is None for _, msg in cases):
        cases.append(("verdict", "the scenario failed without a violated SLO"))
    elif not cases:
        cases.append(("verdict", None))
    failures = sum(msg is not None for _, msg in cases)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0"}
    time_s = f"{float(d['duration_s']):.3f}"
    root = ET.Element("testsuites", {"name": "lasso-rpc battle", **counts, "time": time_s})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": name, **counts, "time": time_s, "timestamp": _x(d["started_at"])},
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (("id", d["id"]), ("seed", d["scenario"].get("seed"))):
        ET.SubElement(props, "property", {"name": key, "value": _x(value)})
    for slo, (case_name, msg) in zip([*d["slos"], None], cases, strict=False):
        case = ET.SubElement(
            suite, "testcase", {"classname": f"battle.{slug}", "name": _x(case_name), "time": "0"}
        )
        if msg is not None:
            fail = ET.SubElement(case, "failure", {"message": msg, "type": "SLOViolation"})
            if slo is not None:
                fail.text = _x(
                    f"{slo['key']}: actual {slo['actual']}, target {slo['op']} {slo['target']}"
                )
    ET.SubElement(suite, "system-out").text = _x(f"report id {d['id']}; passed={d['passed']}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
