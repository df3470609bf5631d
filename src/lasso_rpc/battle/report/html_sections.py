"""The HTML report's tables beyond the SLOs: validity and telemetry, the load generator, the
independent upstream view, WebSocket subscribers, contenders side by side, the baseline
comparison and the notifications sent. Each returns "" when the result has nothing for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lasso_rpc.battle.report.formatting import fmt
from lasso_rpc.battle.report.html_base import esc, rows_table

__all__ = [
    "comparison_section",
    "contenders_section",
    "notifications_section",
    "truth_section",
    "validity_banner",
    "ws_section",
]


def _pct(x: Any) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def validity_banner(d: Mapping[str, Any]) -> str:
    v = d.get("validity") or {}
    if v.get("valid", True):
        return ""
    items = "".join(f"<li>{esc(r)}</li>" for r in v.get("reasons", []))
    return (
        '<div class="invalid"><b>INVALID RUN</b>: its figures cannot be trusted, so it does not '
        f"pass whatever its SLOs say.<ul>{items}</ul></div>"
    )


def truth_section(d: Mapping[str, Any]) -> str:
    parts = []
    t = d.get("telemetry")
    if t:
        rows = [
            ["router events from", t["source"]],
            ["events lost on the stream (seq gaps)", t["events_lost"]],
            ["stream reconnects", t["stream_reconnects"]],
            ["undecodable frames", t["decode_errors"]],
            ["events out of range / past a cap", t["out_of_range"]],
            ["request events vs requests the router answered",
             f"{t['router_requests']} / {t['answered_by_router']}"],
        ]  # fmt: skip
        parts.append(rows_table(rows, ["telemetry", "value"]))
    loads = d.get("load") or []
    if loads:
        rows = [
            [x["workload"], x["sender"], x["transport"], x["sent"], x["completed"],
             x["cancelled"], x["delayed_by_cap"], fmt(x["generator_lag_ms_p99"]),
             fmt(x["generator_lag_ms_max"])]
            for x in loads
        ]  # fmt: skip
        head = ["workload", "sender", "over", "sent", "completed", "cancelled",
                "waited for a slot", "lag p99 ms", "lag max ms"]  # fmt: skip
        parts.append(rows_table(rows, head))
    up = d.get("upstream")
    if up:
        rows = [
            [p, fmt(v["claimed"]), v["received"]] for p, v in (up.get("providers") or {}).items()
        ]
        rows.append(["total", fmt(up.get("claimed_total")), up.get("received_total")])
        parts.append(
            f"<p>Calls of {esc(', '.join(up['methods']))} counted at the providers vs the "
            f"router's claim: {fmt(up.get('calls_per_request'))} calls per request; "
            f"{'consistent' if up.get('consistent') else 'INCONSISTENT'} "
            f"({up.get('unclaimed')} unclaimed).</p>"
            + rows_table(rows, ["provider", "router claims", "provider received"])
        )
    if d.get("system_scope") == "battle" and d.get("system"):
        parts.append(
            "<p>System samples are of the battle process (the router ran in it): no router "
            "memory or CPU figure is derived from them.</p>"
        )
    notes = d.get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    return "<h2>Ground truth and load</h2>" + "".join(parts) if parts else ""


def ws_section(d: Mapping[str, Any]) -> str:
    ws = d["summary"].get("ws")
    if not ws:
        return ""
    cards = (
        f"<p>{ws['clients']} clients, {ws['events']} events, gaps {ws['gaps']} "
        f"(in stream {fmt(ws.get('gaps_in_stream'))}), duplicates {ws['duplicates']}, reorgs "
        f"{ws['reorgs']}, uptime {_pct(ws['uptime'])} (from "
        f"{'blocks arriving' if ws.get('truth') else 'socket time'}), longest stall "
        f"{fmt(ws.get('max_stall_s'), 's')}, stalled at the end {fmt(ws.get('stalled_clients'))}"
        f" (truth: {esc(ws.get('truth') or 'none')})</p>"
    )
    subs = [s for s in d.get("subscribers") or [] if s.get("gaps") or (s.get("behind_s") or 0) > 1]
    subs.sort(key=lambda s: (-(s.get("gaps") or 0), -(s.get("max_stall_s") or 0)))
    rows = [
        [s["client"], s["kind"], s["events"], fmt(s.get("expected_blocks")), s["gaps"],
         s["duplicates"], fmt(s.get("max_stall_s")), fmt(s.get("behind_s")), _pct(s.get("uptime"))]
        for s in subs[:25]
    ]  # fmt: skip
    head = ["client", "kind", "events", "expected", "gaps", "dups", "max stall s", "behind s",
            "uptime"]  # fmt: skip
    table = rows_table(rows, head) if rows else "<p>Every client got every block.</p>"
    return "<h2>WebSocket subscribers</h2>" + cards + table


def contenders_section(d: Mapping[str, Any]) -> str:
    contenders = d.get("contenders") or []
    if not contenders:
        return ""
    rows = []
    for c in contenders:
        s, lat = c["summary"], c["summary"]["latency_ms"]
        errors = sorted((c.get("errors_by_class") or {}).items(), key=lambda kv: -kv[1])
        top = ", ".join(f"{k} x{v}" for k, v in errors[:2]) or "—"
        up = c.get("upstream") or {}
        verdict = ("pass", "ok") if c["passed"] else ("FAIL", "bad")
        rows.append(
            [c["label"] + (" (the scenario's)" if c.get("primary") else ""), s["requests"],
             (f"{s['success_rate'] * 100:.1f} %", "ok" if s["success_rate"] >= 0.999 else "bad"),
             fmt(lat.get("p50")), fmt(lat.get("p95")), fmt(lat.get("p99")), s["errors"], top,
             fmt(up.get("calls_per_request")), verdict]
        )  # fmt: skip
    head = ["contender", "requests", "success", "p50 ms", "p95 ms", "p99 ms", "errors",
            "top errors", "upstream calls / request", "SLOs"]  # fmt: skip
    notes = [f"{c['label']}: {n}" for c in contenders for n in c.get("notes") or []]
    extra = "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>" if notes else ""
    return (
        '<h2 id="contenders">Contenders: the same providers, load and chaos</h2>'
        + rows_table(rows, head)
        + extra
    )


def comparison_section(d: Mapping[str, Any]) -> str:
    cmp = d.get("comparison")
    if not cmp:
        return ""
    rows = [
        [r["metric"], fmt(r["baseline"]), fmt(r["new"]), fmt(r["limit"]),
         ("REGRESSED", "bad") if r["regressed"] else ("ok", "ok")]
        for r in cmp["rows"]
    ]  # fmt: skip
    verdict = "REGRESSED" if cmp["regressed"] else "OK"
    return f"<h2>Against baseline {esc(cmp['baseline_id'])}: {verdict}</h2>" + rows_table(
        rows, ["metric", "baseline", "new", "limit", ""]
    )


def notifications_section(d: Mapping[str, Any]) -> str:
    sent = d.get("notifications")
    if not sent:
        return ""
    rows = [
        [n["channel"], n["target"], ("sent", "ok") if n["ok"] else ("NOT sent", "bad"),
         n["attempts"], n.get("error") or ""]
        for n in sent
    ]  # fmt: skip
    return "<h2>Notifications</h2>" + rows_table(rows, ["channel", "to", "", "tries", "error"])
