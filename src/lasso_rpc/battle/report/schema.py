"""The battle result: a plain dict with the versioned schema ``lasso-rpc.battle/2`` (SPEC §6).

Version 2 (issue 15) adds ``validity`` (a run whose ground truth is incomplete or whose load
generator lagged does not pass), ``telemetry``, ``load``, ``upstream`` (calls counted at the
providers), ``subscribers``, ``system_scope``, ``contenders`` (the same scenario against
other ways of reaching the providers), ``comparison`` and ``notifications``; SLO verdicts gain
``applicable`` and ``optional``. Results of version 1 are still read (compare, reports).

The result JSON is the source of truth; every report format is rendered from that dict alone, so
a report can be rebuilt from a saved ``<id>.json``:

- ``report.markdown.render_markdown``: a summary for humans and PR comments;
- ``report.junit.render_junit``: one testsuite per scenario, one testcase per SLO, for CI;
- ``report.html.render_html``: one self-contained interactive page (plotly);
- ``report.console.print_slo_table``: the verdict on a terminal;
- ``measure.baseline.compare``: a new result against a baseline (``Thresholds``);
- ``report.files.write_reports``: every file of a run in one directory.

``validate_result`` raises ``InvalidResult`` listing every problem as ``"key.path: message"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from lasso_rpc.errors import LassoError

__all__ = [
    "READABLE",
    "SCHEMA",
    "InvalidResult",
    "Result",
    "dump_result",
    "load_result",
    "validate_result",
]

SCHEMA = "lasso-rpc.battle/2"
READABLE = ("lasso-rpc.battle/1", SCHEMA)

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
_SERIES = (
    "requests", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "failovers", "hedged",
)  # fmt: skip
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
    """Raise ``InvalidResult`` unless ``d`` is a battle result (``READABLE``) reports can read."""
    if not isinstance(d, Mapping):
        raise InvalidResult([f"<root>: must be an object, got {type(d).__name__}"])
    schema = d.get("schema")
    if schema not in READABLE:
        raise InvalidResult(
            [f"schema: unsupported {schema!r}; this lasso-rpc reads {' and '.join(READABLE)}"]
        )
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
    for i, c in enumerate(d.get("contenders") or []):
        if not isinstance(c, dict) or not isinstance(c.get("summary"), dict):
            errors.append(f"contenders[{i}]: must be an object with a summary")
        elif not isinstance(c.get("label"), str):
            errors.append(f"contenders[{i}].label: missing")
    if errors:
        raise InvalidResult(errors)


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
