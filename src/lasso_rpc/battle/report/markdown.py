"""The Markdown report: verdict, SLOs, numbers, chaos and breaker timelines, provider share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lasso_rpc.battle.report.formatting import OPS, breaker_lane, fmt
from lasso_rpc.battle.report.schema import Result, validate_result

__all__ = ["render_markdown"]


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
        [f"`{x['key']}`", f"{OPS.get(x['op'], x['op'])} {fmt(x['target'])}", fmt(x["actual"]),
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
    if d.get("ejections"):
        rows = [
            [fmt(e["t_s"], "s"), e["provider"],
             f"ejected for {fmt(e['duration_ms'], 'ms')}" if e["ejected"] else "back",
             e.get("reason", "")]
            for e in d["ejections"]
        ]  # fmt: skip
        out += ["## Ejections", "", *_table(["t", "provider", "change", "reason"], rows)]
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
