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


def _truth_rows(t: Mapping[str, Any]) -> list[str]:
    rows: list[list[Any]] = []
    if t.get("upstream_calls") is not None:
        saved = t.get("upstream_saved_pct")
        rows.append(
            [
                "upstream calls saved",
                f"{fmt(saved, '%')} (client requests {t['client_requests']}, calls received "
                f"by the providers {t['upstream_calls']}, router head polls included)",
            ]
        )
    if t.get("stale_answers") is not None:
        rows.append(
            [
                "stale answers (vs the chain)",
                f"{t['stale_answers']} of {t['answers_checked']} answers naming a block "
                f"({t.get('reorgs', 0)} reorgs; {fmt(t.get('grace_s'), 's')} grace after each)",
            ]
        )
    rows += [["stale example", e] for e in t.get("examples") or ()]
    return _table(["figure", "value"], rows) if rows else []


def _truth(d: Result) -> list[str]:
    """Validity, telemetry, load generator and the independent upstream view."""
    out: list[str] = []
    v = d.get("validity") or {}
    if v and not v.get("valid", True):
        out += ["## ⚠️ Invalid run", "", "The figures below cannot be trusted:", ""]
        out += [f"- {r}" for r in v.get("reasons", [])] + [""]
    rows: list[list[Any]] = []
    if t := d.get("telemetry"):
        rows += [
            ["router events from", t["source"]],
            ["events lost / stream reconnects / undecodable",
             f"{t['events_lost']} / {t['stream_reconnects']} / {t['decode_errors']}"],
            ["request events / requests the router answered",
             f"{t['router_requests']} / {t['answered_by_router']}"],
        ]  # fmt: skip
    for x in d.get("load") or []:
        rows.append(
            [f"workload {x['workload']} ({x['sender']}, {x['transport']})",
             f"sent {x['sent']}, lag p99 {fmt(x['generator_lag_ms_p99'])} ms, "
             f"max {fmt(x['generator_lag_ms_max'])} ms"]
        )  # fmt: skip
    if up := d.get("upstream"):
        per = ", ".join(
            f"{p} {fmt(c['claimed'])}/{c['received']}" for p, c in up["providers"].items()
        )
        rows.append(
            ["upstream calls, router claims / providers received",
             f"{per}; {fmt(up['calls_per_request'])} per request"
             f"{'' if up['consistent'] else ' (INCONSISTENT)'}"]
        )  # fmt: skip
    if d.get("system_scope") == "battle" and d.get("system"):
        rows.append(["system samples", "the battle process (router in-process): not the router's"])
    if rows:
        out += ["## Ground truth and load", "", *_table(["", "value"], rows)]
    out += [f"- note: {n}" for n in d.get("notes") or []]
    return out


def _contenders(d: Result) -> list[str]:
    contenders = d.get("contenders") or []
    if not contenders:
        return []
    rows = []
    for c in contenders:
        s, lat = c["summary"], c["summary"]["latency_ms"]
        errors = sorted((c.get("errors_by_class") or {}).items(), key=lambda kv: -kv[1])
        rows.append(
            [c["label"] + (" *" if c.get("primary") else ""), s["requests"],
             f"{s['success_rate'] * 100:.1f} %", fmt(lat.get("p50")), fmt(lat.get("p95")),
             fmt(lat.get("p99")), ", ".join(f"`{k}` x{v}" for k, v in errors[:2]) or "—",
             fmt((c.get("upstream") or {}).get("calls_per_request")),
             "✅" if c["passed"] else "❌"]
        )  # fmt: skip
    head = ["contender", "requests", "success", "p50 ms", "p95 ms", "p99 ms", "top errors",
            "calls / request", "SLOs"]  # fmt: skip
    notes = [f"- {c['label']}: {n}" for c in contenders for n in c.get("notes") or []]
    return [
        "## Contenders",
        "",
        "The same providers, workload and chaos, reached other ways (* the scenario's router).",
        "",
        *_table(head, rows),
        *notes,
    ]


def _after(d: Result) -> list[str]:
    out: list[str] = []
    if cmp := d.get("comparison"):
        rows = [
            [r["metric"], fmt(r["baseline"]), fmt(r["new"]), fmt(r["limit"]),
             "REGRESSED" if r["regressed"] else "ok"]
            for r in cmp["rows"]
        ]  # fmt: skip
        verdict = "REGRESSED" if cmp["regressed"] else "OK"
        out += [f"## Against baseline `{cmp['baseline_id']}`: {verdict}", ""]
        out += _table(["metric", "baseline", "new", "limit", ""], rows)
    if sent := d.get("notifications"):
        rows = [
            [n["channel"], n["target"], "sent" if n["ok"] else f"NOT sent: {n['error']}",
             n["attempts"]]
            for n in sent
        ]  # fmt: skip
        out += ["## Notifications", "", *_table(["channel", "to", "", "tries"], rows)]
    return out


def render_markdown(d: Result) -> str:
    """A Markdown summary: verdict, SLOs, numbers, chaos and breaker timelines, provider share."""
    validate_result(d)
    sc, s = d["scenario"], d["summary"]
    router = sc.get("router") or {}
    verdict = "PASS ✅" if d["passed"] else "FAIL ❌"
    if not (d.get("validity") or {}).get("valid", True):
        verdict += " (INVALID RUN)"
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
         ("✅" if x.get("applicable", True) else "n/a") if x["passed"] else "❌",
         "" if x["passed"] and x.get("applicable", True) else x.get("message", "")]
        for x in d["slos"]
    ]  # fmt: skip
    out += _table(["SLO", "target", "actual", "", "note"], slo_rows) if slo_rows else ["(none)", ""]
    out += _contenders(d)
    out += ["## Summary", "", *_table(["metric", "value"], _summary_rows(s))]
    out += _truth(d)
    if truth := d.get("truth"):
        out += ["## Upstream calls and the chain's truth", "", *_truth_rows(truth)]
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
    out += _after(d)
    return "\n".join(out)
