"""What the HTML report's parts share: palette, CSS, escaping, layout, the time axis with the
chaos bands, and tables."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from lasso_rpc.battle.report.bands import chaos_bands

__all__ = [
    "CONFIG",
    "CSS",
    "NOTE_FONT",
    "PALETTE",
    "SECONDARY",
    "STATE_COLORS",
    "colors",
    "esc",
    "layout",
    "rows_table",
    "td",
    "time_axis",
]

PALETTE = ("#636efa", "#00a884", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880")
NOTE_FONT = {"size": 11, "color": "#c0392b"}
STATE_COLORS = {"closed": "#2ca02c", "half_open": "#f0ad00", "open": "#d62728"}
CONFIG = {"displaylogo": False, "responsive": True}
SECONDARY = {"showgrid": False, "tickmode": "auto"}  # plotly.js 3 syncs overlaying ticks
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;
background:#f5f7fa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#52606d}.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;
font-weight:600;margin-left:8px;vertical-align:middle;font-size:14px}
.pass{background:#2ca02c}.fail{background:#d62728}.other{background:#52606d}
.invalid{background:#fff4f4;border:1px solid #d62728;border-radius:6px;padding:8px 14px;
margin:12px 0}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #d9e2ec;padding:4px 10px;text-align:left}th{background:#eef2f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.ok{color:#2ca02c;font-weight:600}td.bad{color:#d62728;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:18px}.card span{color:#52606d;font-size:12px}
section.chart{background:#fff;border:1px solid #d9e2ec;border-radius:6px;margin:14px 0;padding:6px}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def colors(names: Sequence[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def layout(fig: go.Figure, title: str, *, y_title: str, **extra: Any) -> None:
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "template": "plotly_white",
        "height": 340,
        "margin": {"l": 60, "r": 60, "t": 80, "b": 45},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.1, "xanchor": "right", "x": 1},
        "hovermode": "x unified",
    }
    fig.update_layout(**{**base, **extra})
    fig.update_xaxes(title_text="seconds since start")
    fig.update_yaxes(title_text=y_title)


def time_axis(fig: go.Figure, d: Mapping[str, Any], *, above: bool = False) -> None:
    """The whole run on the x axis (all charts line up), and a shaded window per chaos event
    (a dashed line when never reverted), labelled above the plot."""
    ts = d["timeseries"]["t"]
    fig.update_xaxes(range=[0, max([float(d["duration_s"]), *(float(t) for t in ts[-1:])])])
    for band in chaos_bands(d["chaos"]):  # overlapping windows: one band, one label
        note = {"text": band.label, "yanchor": "bottom", "font": NOTE_FONT}
        if band.end is None:
            fig.add_vline(
                x=band.start, line={"color": "#d62728", "dash": "dash", "width": 1.5},
                annotation=note, annotation_position="top right",
            )  # fmt: skip
        else:
            fig.add_vrect(
                x0=band.start, x1=band.end, fillcolor="#d62728", line_width=0,
                opacity=0.12 if above else 0.10, layer="above" if above else "below",
                annotation=note, annotation_position="top left",
            )  # fmt: skip


def td(c: Any) -> str:
    """A table cell; ``(text, css_class)`` sets the class, numbers are right-aligned."""
    if isinstance(c, tuple):
        return f'<td class="{c[1]}">{esc(c[0])}</td>'
    num = isinstance(c, int | float) or (isinstance(c, str) and c[:1].isdigit())
    return f'<td class="num">{esc(c)}</td>' if num else f"<td>{esc(c)}</td>"


def rows_table(rows: Sequence[Sequence[Any]], head: Sequence[str]) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(td(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
