"""The battle report as one self-contained, interactive HTML page (plotly.js inlined once).

The page works offline: no script, style or font is fetched. Each chart sits in an element with a
stable id (``CHART_IDS``) so tests and readers can find it; the system chart only appears when the
result has system samples. Every time chart shades the chaos windows (a dashed line when a chaos
action was never reverted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from lasso_rpc.battle.report import html_charts as charts
from lasso_rpc.battle.report import html_sections as sections
from lasso_rpc.battle.report.formatting import breaker_lane, chaos_label, fmt
from lasso_rpc.battle.report.html_base import (
    CONFIG,
    CSS,
    SECONDARY,
    STATE_COLORS,
    colors,
    esc,
    layout,
    rows_table,
    time_axis,
)
from lasso_rpc.battle.report.schema import validate_result

__all__ = ["CHART_IDS", "CONTENDER_CHART_IDS", "breaker_segments", "render_html"]


CHART_IDS = (
    "chart-latency",
    "chart-throughput",
    "chart-hedging",
    "chart-share",
    "chart-breakers",
    "chart-chaos",
    "chart-system",
)
#: Charts of a run with contenders (``Scenario.contenders``): one line per contender.
CONTENDER_CHART_IDS = ("chart-contenders-success", "chart-contenders-latency")


def _latency(d: Mapping[str, Any]) -> go.Figure:
    ts = d["timeseries"]
    fig = go.Figure()
    for key, name, color in (("p50_ms", "p50", "#2ca02c"), ("p95_ms", "p95", "#ff7f0e"),
                             ("p99_ms", "p99", "#d62728")):  # fmt: skip
        if ts.get(key) is not None:
            fig.add_scatter(x=ts["t"], y=ts[key], name=name, mode="lines", line={"color": color})
    layout(fig, "Latency over time (ms)", y_title="ms")
    time_axis(fig, d)
    return fig


def _throughput(d: Mapping[str, Any]) -> go.Figure:
    ts = d["timeseries"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=ts["t"], y=ts.get("throughput_rps"), name="throughput (req/s)",
                    mode="lines", line={"color": "#636efa"}, secondary_y=False)  # fmt: skip
    fig.add_bar(x=ts["t"], y=ts.get("errors"), name="errors", marker_color="#d62728",
                opacity=0.75, secondary_y=True)  # fmt: skip
    if ts.get("failovers") is not None:
        fig.add_bar(x=ts["t"], y=ts["failovers"], name="failovers", marker_color="#ffa15a",
                    opacity=0.75, secondary_y=True)  # fmt: skip
    layout(fig, "Throughput, errors and failovers", y_title="req/s", barmode="group")
    fig.update_yaxes(title_text="per bucket", secondary_y=True, rangemode="tozero", **SECONDARY)
    fig.update_yaxes(rangemode="tozero", secondary_y=False)
    time_axis(fig, d)
    return fig


def _providers(d: Mapping[str, Any]) -> list[str]:
    """Provider ids in report order, then breaker lanes of other transports (``alpha (ws)``)."""
    names = list(d["providers"])
    names += [p for p in d["timeseries"].get("provider_share", {}) if p not in names]
    for lane in map(breaker_lane, d["breakers"]):
        if lane not in names:
            names.append(lane)
    return names


def _share(d: Mapping[str, Any], colors: Mapping[str, str]) -> go.Figure:
    ts = d["timeseries"]
    share: Mapping[str, Sequence[float | None]] = ts.get("provider_share", {})
    # buckets nobody answered in have no share (not 0 % for everyone): leave them out
    keep = [i for i in range(len(ts["t"])) if sum(v[i] or 0 for v in share.values()) > 0]
    fig = go.Figure()
    for p, values in share.items():
        fig.add_scatter(
            x=[ts["t"][i] for i in keep], y=[(values[i] or 0) * 100 for i in keep], name=p,
            stackgroup="share", mode="lines", line={"width": 0.5, "color": colors.get(p)},
            hovertemplate="%{y:.1f} %",
        )  # fmt: skip
    layout(fig, "Provider share over time (%)", y_title="% of requests")
    fig.update_layout(legend_traceorder="normal")
    fig.update_yaxes(range=[0, 100])
    time_axis(fig, d, above=True)
    return fig


def breaker_segments(
    d: Mapping[str, Any], lanes: Sequence[str]
) -> list[tuple[str, str, float, float, str]]:
    """(lane, state, start_s, end_s, reason): each breaker's state over the run, per lane
    (``breaker_lane``: provider, plus the transport when not HTTP).

    A lane starts in the ``from`` state of its first transition (closed when it has none).
    """
    end = float(d["duration_s"])
    out: list[tuple[str, str, float, float, str]] = []
    for p in lanes:
        changes = sorted((b for b in d["breakers"] if breaker_lane(b) == p), key=lambda b: b["t_s"])
        state, since, reason = (changes[0]["from"] if changes else "closed"), 0.0, "initial"
        for b in changes:
            out.append((p, state, since, float(b["t_s"]), reason))
            state, since, reason = b["to"], float(b["t_s"]), str(b.get("reason", ""))
        out.append((p, state, since, max(end, since), reason))
    return out


def _breakers(d: Mapping[str, Any], providers: Sequence[str]) -> go.Figure:
    segments = breaker_segments(d, providers)
    fig = go.Figure()
    for state, color in STATE_COLORS.items():
        segs = [s for s in segments if s[1] == state]
        fig.add_bar(
            y=[s[0] for s in segs], x=[s[3] - s[2] for s in segs], base=[s[2] for s in segs],
            orientation="h", name=state, marker_color=color, width=0.6,
            customdata=[[s[2], s[3], s[4]] for s in segs], showlegend=True,
            hovertemplate="%{y}: " + state + " %{customdata[0]:.2f} to %{customdata[1]:.2f} s"
            "<br>%{customdata[2]}<extra></extra>",
        )  # fmt: skip
    layout(fig, "Circuit breaker states", y_title="", barmode="overlay", hovermode="closest")
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(providers)))
    fig.update_layout(height=max(220, 110 + 45 * len(providers)))
    time_axis(fig, d)
    return fig


def _system(d: Mapping[str, Any]) -> go.Figure:
    samples = d["system"]
    t = [s["t_s"] for s in samples]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=t, y=[s.get("rss_mb") for s in samples], name="RSS (MB)", mode="lines",
                    line={"color": "#636efa"}, secondary_y=False)  # fmt: skip
    fig.add_scatter(x=t, y=[s.get("cpu_pct") for s in samples], name="CPU (%)", mode="lines",
                    line={"color": "#ff7f0e"}, secondary_y=True)  # fmt: skip
    title = "Router process: memory and CPU"
    if d.get("system_scope") == "battle":
        title = "Battle process (the router ran in it): memory and CPU"
    layout(fig, title, y_title="MB")
    fig.update_yaxes(title_text="CPU %", secondary_y=True, rangemode="tozero", **SECONDARY)
    fig.update_yaxes(rangemode="tozero", secondary_y=False)
    time_axis(fig, d)
    return fig


def _figures(d: Mapping[str, Any]) -> list[tuple[str, go.Figure]]:
    providers = _providers(d)
    figs = []
    if d.get("contenders"):
        figs += [
            ("chart-contenders-success", charts.contender_success(d)),
            ("chart-contenders-latency", charts.contender_latency(d)),
        ]
    figs += [
        ("chart-latency", _latency(d)),
        ("chart-throughput", _throughput(d)),
    ]
    figs.append(("chart-hedging", charts.hedging(d)))
    figs += [
        ("chart-share", _share(d, colors(providers))),
        ("chart-breakers", _breakers(d, providers)),
    ]
    if d["chaos"]:
        figs.append(("chart-chaos", charts.chaos_lanes(d)))
    if d.get("system"):
        figs.append(("chart-system", _system(d)))
    return figs


def _header(d: Mapping[str, Any]) -> str:
    sc, s = d["scenario"], d["summary"]
    router = sc.get("router") or {}
    verdict = '<span class="badge pass">PASS</span>' if d["passed"] else (
        '<span class="badge fail">FAIL</span>')  # fmt: skip
    if not (d.get("validity") or {}).get("valid", True):
        verdict += '<span class="badge fail">INVALID</span>'
    if d.get("contenders"):
        verdict += f'<span class="badge other">{len(d["contenders"])} contenders</span>'
    meta = (
        f"{esc(d['id'])} · started {esc(d['started_at'])} · {fmt(d['duration_s'])} s · "
        f"seed {esc(sc.get('seed', '—'))} · strategy {esc(router.get('strategy', '—'))}"
    )
    lat = s["latency_ms"]
    cards = [
        ("requests", fmt(s["requests"])), ("success rate", f"{s['success_rate'] * 100:.3f} %"),
        ("throughput", fmt(s["throughput_rps"], "req/s")), ("p50", fmt(lat.get("p50"), "ms")),
        ("p95", fmt(lat.get("p95"), "ms")), ("p99", fmt(lat.get("p99"), "ms")),
        ("max", fmt(lat.get("max"), "ms")), ("failovers", fmt(s["failovers"])),
        ("hedged", fmt(s.get("hedged", 0))), ("RSS max", fmt(s.get("router_rss_mb_max"), "MB")),
    ]  # fmt: skip
    if truth := d.get("truth"):  # measure/staleness.py: counted at the providers, and the chain
        if truth.get("upstream_saved_pct") is not None:
            cards.append(("upstream calls saved", fmt(truth["upstream_saved_pct"], "%")))
        if truth.get("stale_answers") is not None:
            cards.append(("stale answers", fmt(truth["stale_answers"])))
    ops = {">=": "≥", "<=": "≤"}
    slos = [
        (x["key"], f"{ops.get(x['op'], x['op'])} {fmt(x['target'])}", fmt(x["actual"]),
         (("pass", "ok") if x.get("applicable", True) else ("n/a", "ok")) if x["passed"]
         else ("FAIL", "bad"),
         "" if x["passed"] and x.get("applicable", True) else x.get("message", ""))
        for x in d["slos"]
    ]  # fmt: skip
    chaos = [
        (fmt(c["at_s"], "s"), fmt(c["end_s"], "s"), chaos_label(c),
         fmt(c.get("recovery_s"), "s"), fmt(c.get("recovery_after_revert_s"), "s"))
        for c in d["chaos"]
    ]  # fmt: skip
    parts = [
        f"<h1>{esc(sc['name'])}{verdict}</h1>",
        f'<div class="meta">{meta}</div>',
        f"<p>{esc(sc['description'])}</p>" if sc.get("description") else "",
        '<div class="cards">'
        + "".join(f"<div class=card><b>{esc(v)}</b><span>{esc(k)}</span></div>" for k, v in cards)
        + "</div>",
        sections.validity_banner(d),
        "<h2>SLOs</h2>",
        rows_table(slos, ["SLO", "target", "actual", "", "note"]) if slos else "<p>(none)</p>",
        sections.contenders_section(d),
    ]
    if chaos:
        parts += [
            "<h2>Chaos</h2>",
            rows_table(chaos, ["at", "until", "action", "recovery", "after revert"]),
        ]
    parts += [
        sections.ws_section(d),
        sections.truth_section(d),
        sections.comparison_section(d),
        sections.notifications_section(d),
    ]
    return "\n".join(p for p in parts if p)


def render_html(d: Mapping[str, Any]) -> str:
    """The whole page: header, SLO table and the interactive charts, plotly.js inlined once."""
    validate_result(d)
    sections = [
        '<section class="chart">'
        + pio.to_html(fig, config=CONFIG, include_plotlyjs=False, full_html=False,
                      div_id=cid, default_height=f"{fig.layout.height}px")
        + "</section>"
        for cid, fig in _figures(d)
    ]  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Battle: {esc(d["scenario"]["name"])} — {"PASS" if d["passed"] else "FAIL"}</title>
<style>{CSS}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<main>
{_header(d)}
<h2>Charts</h2>
{"".join(sections)}
<p class="meta">lasso-rpc battle report · schema {esc(d["schema"])} · data in
{esc(d["id"])}.json</p>
</main>
</body>
</html>
"""
