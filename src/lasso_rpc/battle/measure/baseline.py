"""Baselines: a new battle result against a saved one, with thresholds for a regression."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from lasso_rpc.battle.report.formatting import OPS, chaos_label, fmt
from lasso_rpc.battle.report.schema import Result, validate_result
from lasso_rpc.errors import ConfigError, LassoError

__all__ = ["Comparison", "ComparisonRow", "ScenarioMismatch", "Thresholds", "compare"]


class ScenarioMismatch(LassoError):
    """The new result and the baseline are runs of different scenarios: nothing to compare."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How much worse a new result may be than its baseline before it counts as a regression.

    A metric regresses when it gets worse by more than ``max(growth * |baseline|, floor)``.
    """

    success_rate_drop: float = 0.001  # absolute
    latency_growth: float = 0.20  # p50/p95/p99 and failover latency p95
    latency_floor_ms: float = 2.0
    throughput_drop: float = 0.15
    failover_growth: float = 0.25
    failover_floor: float = 1.0  # failovers (a count)
    recovery_growth: float = 0.25
    recovery_floor_s: float = 1.0
    rss_growth: float = 0.20
    rss_floor_mb: float = 0.0
    errors_growth: float = 0.25  # client requests that failed (a count)
    errors_floor: float = 1.0
    ws_uptime_drop: float = 0.01  # absolute
    stall_growth: float = 0.5
    stall_floor_s: float = 1.0
    cpu_growth: float = 0.30  # router CPU mean
    cpu_floor_pct: float = 5.0
    rss_trend_floor_pct: float = 5.0  # router RSS growth over the run, in points

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, *, path: str = "thresholds") -> Thresholds:
        """Defaults overridden by ``d`` (e.g. a YAML mapping); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        errors: list[str] = []
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigError([f"{path}: must be a mapping"])
        for key, value in d.items():
            if key not in known:
                errors.append(f"{path}.{key}: unknown key (known: {', '.join(sorted(known))})")
            elif _num(value) is None or not math.isfinite(value) or value < 0:
                errors.append(f"{path}.{key}: must be a non-negative number, got {value!r}")
        if errors:
            raise ConfigError(errors)
        return cls(**{k: float(v) for k, v in d.items()})


Better = Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """``limit`` is the worst acceptable new value (a floor when ``better == "higher"``)."""

    metric: str
    baseline: float | None
    new: float | None
    delta: float | None
    limit: float | None
    regressed: bool
    better: Better = "lower"


@dataclass(frozen=True, slots=True)
class Comparison:
    new_id: str
    baseline_id: str
    rows: tuple[ComparisonRow, ...]
    notes: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return any(r.regressed for r in self.rows)

    @property
    def regressions(self) -> tuple[ComparisonRow, ...]:
        return tuple(r for r in self.rows if r.regressed)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as it goes into the result JSON (``comparison``)."""
        return {
            "baseline_id": self.baseline_id,
            "regressed": self.regressed,
            "rows": [
                {
                    "metric": r.metric, "baseline": r.baseline, "new": r.new, "delta": r.delta,
                    "limit": r.limit, "better": r.better, "regressed": r.regressed,
                }
                for r in self.rows
            ],
            "notes": list(self.notes),
        }  # fmt: skip

    def render(self) -> str:
        """A plain-text table, one metric a line, and the verdict."""
        head = ("metric", "baseline", "new", "delta", "limit", "")
        body = [
            (
                r.metric, fmt(r.baseline), fmt(r.new),
                "—" if r.delta is None else f"{r.delta:+.6g}{_pct(r.delta, r.baseline)}",
                "—" if r.limit is None else f"{OPS[r.better]} {fmt(r.limit)}",
                "REGRESSED" if r.regressed else "ok",
            )
            for r in self.rows
        ]  # fmt: skip
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        lines = [f"battle compare: {self.new_id} vs baseline {self.baseline_id}"]
        lines += [f"note: {n}" for n in self.notes]
        for row in [head, *body]:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                   enumerate(zip(row, widths, strict=True))).rstrip())  # fmt: skip
        n = len(self.regressions)
        lines.append(f"verdict: REGRESSED ({n} metric{'s' * (n != 1)})" if n else "verdict: OK")
        return "\n".join(lines)


def _pct(delta: float, base: float | None) -> str:
    return f" ({delta / abs(base) * 100:+.1f}%)" if base else ""


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or math.isnan(x):
        return None
    return float(x)


def _row(
    metric: str, base: Any, new: Any, *, growth: float, floor: float,
    better: Better = "lower", missing_regresses: bool = True,
) -> ComparisonRow:  # fmt: skip
    """A metric the baseline has and the new run lacks is a regression (it stopped being
    measured, or never recovered); one the baseline lacks is not compared."""
    b, n = _num(base), _num(new)
    if b is None:
        return ComparisonRow(metric, b, n, None, None, False, better)
    slack = max(growth * abs(b), floor)
    limit = b + slack if better == "lower" else b - slack
    if n is None:
        return ComparisonRow(metric, b, n, None, limit, missing_regresses, better)
    eps = 1e-9 * max(1.0, abs(limit))  # the edge itself is allowed, whatever the float rounding
    regressed = n > limit + eps if better == "lower" else n < limit - eps
    return ComparisonRow(metric, b, n, n - b, limit, regressed, better)


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, Mapping) else None
    return d


def _rules(t: Thresholds) -> list[tuple[str, tuple[str, ...], float, float, Better]]:
    """(metric, path in the summary, relative growth, absolute floor, which way is better)."""
    lat = (t.latency_growth, t.latency_floor_ms)
    return [
        ("success_rate", ("success_rate",), 0.0, t.success_rate_drop, "higher"),
        *((f"latency_{p}_ms", ("latency_ms", p), *lat, "lower") for p in ("p50", "p95", "p99")),
        ("throughput_rps", ("throughput_rps",), t.throughput_drop, 0.0, "higher"),
        ("failovers", ("failovers",), t.failover_growth, t.failover_floor, "lower"),
        ("failover_latency_p95_ms", ("failover_latency_ms", "p95"), *lat, "lower"),
        ("router_rss_mb_max", ("router_rss_mb_max",), t.rss_growth, t.rss_floor_mb, "lower"),
        ("latency_p90_ms", ("latency_ms", "p90"), *lat, "lower"),
        ("latency_p999_ms", ("latency_ms", "p999"), *lat, "lower"),
        ("latency_max_ms", ("latency_ms", "max"), *lat, "lower"),
        ("failover_latency_max_ms", ("failover_latency_ms", "max"), *lat, "lower"),
        ("router_cpu_pct_mean", ("router_cpu_pct_mean",), t.cpu_growth, t.cpu_floor_pct, "lower"),
        ("router_rss_growth_pct", ("router_rss_growth_pct",), 0.0, t.rss_trend_floor_pct, "lower"),
        ("errors", ("errors",), t.errors_growth, t.errors_floor, "lower"),
        ("ws_gaps", ("ws", "gaps"), 0.0, 0.0, "lower"),
        ("ws_duplicates", ("ws", "duplicates"), 0.0, 0.0, "lower"),
        ("ws_uptime", ("ws", "uptime"), 0.0, t.ws_uptime_drop, "higher"),
        ("ws_max_stall_s", ("ws", "max_stall_s"), t.stall_growth, t.stall_floor_s, "lower"),
        ("ws_stalled_clients", ("ws", "stalled_clients"), 0.0, 0.0, "lower"),
    ]


def compare(new: Result, baseline: Result, thresholds: Thresholds | None = None) -> Comparison:
    """Compare ``new`` with ``baseline``: every summary metric, every chaos recovery, every
    SLO verdict and the run's validity. A metric or SLO the baseline has and the new run lacks
    is a regression; a metric only the new run has is not compared. Results of different
    scenarios cannot be compared (``ScenarioMismatch``)."""
    validate_result(new)
    validate_result(baseline)
    names = (new["scenario"]["name"], baseline["scenario"]["name"])
    if names[0] != names[1]:
        raise ScenarioMismatch(
            f"different scenarios: {names[0]!r} ({new['id']}) vs {names[1]!r} "
            f"({baseline['id']}); compare runs of the same scenario"
        )
    t = thresholds or Thresholds()
    ns, bs = new["summary"], baseline["summary"]
    rows = [
        _row(metric, _get(bs, *path), _get(ns, *path), growth=g, floor=f, better=b)
        for metric, path, g, f, b in _rules(t)
    ]
    notes: list[str] = []
    rows += _chaos_rows(new["chaos"], baseline["chaos"], t, notes)
    rows += _slo_rows(new["slos"], baseline["slos"])
    base_valid = (baseline.get("validity") or {}).get("valid", True)
    new_valid = (new.get("validity") or {}).get("valid", True)
    rows.append(
        ComparisonRow("valid", float(base_valid), float(new_valid), float(new_valid) - float(
            base_valid), float(base_valid), new_valid < base_valid, "higher")
    )  # fmt: skip
    only_new = [r.metric for r in rows if r.baseline is None and r.new is not None]
    if only_new:
        notes.append(f"not in the baseline, not compared: {', '.join(only_new)}")
    return Comparison(new["id"], baseline["id"], tuple(rows), tuple(notes))


def _slo_rows(new: list[Any], base: list[Any]) -> list[ComparisonRow]:
    """Each SLO of the baseline: 1 passed, 0 failed; failing (or gone) after passing regresses."""
    got = {v["key"]: v for v in new}
    rows = []
    for v in base:
        n = got.get(v["key"])
        b_ok = float(bool(v["passed"]))
        n_ok = None if n is None else float(bool(n["passed"]))
        regressed = n_ok is None or n_ok < b_ok
        delta = None if n_ok is None else n_ok - b_ok
        rows.append(ComparisonRow(f"slo {v['key']}", b_ok, n_ok, delta, b_ok, regressed, "higher"))
    return rows


def _chaos_key(c: Mapping[str, Any]) -> tuple[Any, Any]:
    return c["action"], c.get("target")


def _chaos_rows(
    new: list[Any], base: list[Any], t: Thresholds, notes: list[str]
) -> list[ComparisonRow]:
    """Recovery times, pairing chaos events by position when action and target agree.

    A recovery the baseline saw but the new run never reached (null) is a regression.
    """
    rows: list[ComparisonRow] = []
    if [_chaos_key(c) for c in new] != [_chaos_key(c) for c in base]:
        notes.append("chaos events differ; only events matching by position are compared")
    for nc, bc in zip(new, base, strict=False):
        if _chaos_key(nc) != _chaos_key(bc):
            continue
        label = f"{chaos_label(nc)}@{fmt(nc['at_s'])}s"
        for field in ("recovery_s", "recovery_after_revert_s"):
            if bc.get(field) is None and nc.get(field) is None:
                continue
            rows.append(_row(f"{field} {label}", bc.get(field), nc.get(field),
                             growth=t.recovery_growth, floor=t.recovery_floor_s,
                             missing_regresses=True))  # fmt: skip
    return rows
