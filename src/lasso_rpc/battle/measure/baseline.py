"""Baselines: a new battle result against a saved one, with thresholds for a regression."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from lasso_rpc.battle.report.formatting import OPS, chaos_label, fmt
from lasso_rpc.battle.report.schema import Result, validate_result
from lasso_rpc.errors import ConfigError

__all__ = ["Comparison", "ComparisonRow", "Thresholds", "compare"]


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
    better: Better = "lower", missing_regresses: bool = False,
) -> ComparisonRow:  # fmt: skip
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
    ]


def compare(new: Result, baseline: Result, thresholds: Thresholds | None = None) -> Comparison:
    """Compare ``new`` with ``baseline``; a metric missing from the baseline never regresses."""
    validate_result(new)
    validate_result(baseline)
    t = thresholds or Thresholds()
    ns, bs = new["summary"], baseline["summary"]
    rows = [
        _row(metric, _get(bs, *path), _get(ns, *path), growth=g, floor=f, better=b)
        for metric, path, g, f, b in _rules(t)
    ]
    notes: list[str] = []
    names = (new["scenario"]["name"], baseline["scenario"]["name"])
    if names[0] != names[1]:
        notes.append(f"scenario differs: {names[0]!r} vs {names[1]!r}")
    rows += _chaos_rows(new["chaos"], baseline["chaos"], t, notes)
    return Comparison(new["id"], baseline["id"], tuple(rows), tuple(notes))


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
