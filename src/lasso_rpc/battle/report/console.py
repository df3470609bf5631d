"""The verdict on a terminal: the SLO table and a one-line summary (``battle run``, ``demo``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from lasso_rpc.battle.report.schema import Result

__all__ = ["print_slo_table"]


def print_slo_table(data: Result, console: Console | None = None) -> None:
    """Every SLO with its target, actual value and verdict, the summary, then each violation."""
    out = console if console is not None else Console()
    s = data["summary"]
    lat = s["latency_ms"]
    verdict = "PASSED" if data["passed"] else "FAILED"
    if not (data.get("validity") or {}).get("valid", True):
        verdict += " (INVALID RUN)"
    table = Table(title=f"{data['scenario']['name']} — {verdict}")
    for col in ("SLO", "target", "actual", "verdict"):
        table.add_column(col)
    for v in data["slos"]:
        table.add_row(
            v["key"],
            f"{v['op']} {v['target']}",
            _shown(v["actual"]),
            ("[green]ok[/]" if v.get("applicable", True) else "n/a (optional)")
            if v["passed"]
            else "[red]VIOLATED[/]",
        )
    out.print(table)
    out.print(
        f"requests {s['requests']}  success {s['success_rate']:.4%}  "
        f"throughput {s['throughput_rps']:.1f}/s  "
        f"p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms  p99 {lat['p99']:.1f} ms  "
        f"failovers {s['failovers']} (client view {s['failovers_client_view']})"
    )
    for v in data["slos"]:
        if not v["passed"]:
            out.print(f"[red]violation:[/] {v['message']}")
    validity = data.get("validity") or {}
    for reason in validity.get("reasons") or []:
        out.print(f"[red]invalid run:[/] {reason}")
    contenders = data.get("contenders") or []
    if contenders:
        cmp = Table(title="contenders: the same providers, workload and chaos")
        for col in ("contender", "requests", "success", "p95 ms", "calls/request", "SLOs"):
            cmp.add_column(col)
        for c in contenders:
            cs = c["summary"]
            cmp.add_row(
                c["label"],
                str(cs["requests"]),
                f"{cs['success_rate']:.2%}",
                _shown(cs["latency_ms"].get("p95")),
                _shown((c.get("upstream") or {}).get("calls_per_request")),
                "[green]pass[/]" if c["passed"] else "[red]FAIL[/]",
            )
        out.print(cmp)


def _shown(actual: Any) -> str:
    if actual is None:
        return "n/a"
    return f"{actual:.4g}" if isinstance(actual, float) else str(actual)
