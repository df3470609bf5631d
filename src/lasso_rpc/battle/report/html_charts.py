"""The HTML report's newer charts: hedges over time, the chaos timeline (one lane per event),
and the contenders overlaid (success rate and p95 latency per bucket, one line each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lasso_rpc.battle.report.formatting import chaos_label
from lasso_rpc.battle.report.html_base import PALETTE, SECONDARY, layout, time_axis

__all__ = ["chaos_lanes", "contender_latency", "contender_success", "hedging", "success_series"]


def hedging(d: Mapping[str, Any]) -> go.Figure:
    """Hedged requests per bucket, and their share of the requests (how a slow provider is
    survived: the hedge to the next provider answers first)."""
    ts = d["timeseries"]
    hedged = ts.get("hedged") or [0] * len(ts["t"])
    requests = ts.get("requests") or [0] * len(ts["t"])
    share = [100.0 * h / n if n else None for h, n in zip(hedged, requests, strict=False)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=ts["t"], y=hedged, name="hedged requests", marker_color="#19d3f3",
                secondary_y=False)  # fmt: skip
    fig.add_scatter(x=ts["t"], y=share, name="% of requests hedged", mode="lines",
                    line={"color": "#ab63fa"}, secondary_y=True)  # fmt: skip
    layout(fig, f"Hedging: {sum(hedged)} hedged requests", y_title="per bucket")
    fig.update_yaxes(title_text="% hedged", secondary_y=True, rangemode="tozero", **SECONDARY)
    fig.update_yaxes(rangemode="tozero", secondary_y=False)
    time_axis(fig, d)
    return fig


def chaos_lanes(d: Mapping[str, Any]) -> go.Figure:
    """One lane per chaos event, from injection to revert (to the end when never reverted), so
    faults that overlap in time stay apart; the recovery after each is marked."""
    end = float(d["duration_s"])
    fig = go.Figure()
    lanes = [f"{i + 1}. {chaos_label(c)}" for i, c in enumerate(d["chaos"])]
    for lane, c in zip(lanes, d["chaos"], strict=True):
        stop = float(c["end_s"]) if c.get("end_s") is not None else max(end, float(c["at_s"]))
        fig.add_bar(
            y=[lane], x=[stop - float(c["at_s"])], base=[float(c["at_s"])], orientation="h",
            marker_color="#d62728", opacity=0.7 if c.get("end_s") is not None else 0.35,
            width=0.5, showlegend=False,
            hovertemplate=f"{lane}<br>%{{base:.2f}} to {stop:.2f} s<extra></extra>",
        )  # fmt: skip
        if c.get("recovery_s") is not None:
            t = float(c["at_s"]) + float(c["recovery_s"])
            fig.add_scatter(
                x=[t], y=[lane], mode="markers", marker={"symbol": "star", "size": 11,
                "color": "#2ca02c"}, name="recovered", showlegend=False,
                hovertemplate=f"recovered after {float(c['recovery_s']):.2f} s<extra></extra>",
            )  # fmt: skip
    layout(fig, "Chaos timeline (one lane per event; ★ recovery)", y_title="",
           hovermode="closest", barmode="overlay")  # fmt: skip
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)))
    fig.update_layout(height=max(200, 120 + 40 * len(lanes)))
    time_axis(fig, d)
    return fig


def success_series(c: Mapping[str, Any]) -> list[float | None]:
    """Success rate per bucket (%): answered requests over requests; None without requests."""
    ts = c["timeseries"]
    return [
        100.0 * (n - e) / n if n else None
        for n, e in zip(ts.get("requests") or [], ts.get("errors") or [], strict=False)
    ]


def _overlay(
    d: Mapping[str, Any],
    contenders: Sequence[Mapping[str, Any]],
    title: str,
    y_title: str,
    series: Any,
) -> go.Figure:
    fig = go.Figure()
    for i, c in enumerate(contenders):
        width = 3 if c.get("primary") else 1.8
        fig.add_scatter(
            x=c["timeseries"]["t"], y=series(c), name=c["label"], mode="lines",
            line={"color": PALETTE[i % len(PALETTE)], "width": width}, connectgaps=False,
        )  # fmt: skip
    layout(fig, title, y_title=y_title)
    time_axis(fig, d)
    return fig


def contender_success(d: Mapping[str, Any]) -> go.Figure:
    return _overlay(
        d, d["contenders"], "Contenders: success rate over time (%)", "% answered", success_series
    )


def contender_latency(d: Mapping[str, Any]) -> go.Figure:
    return _overlay(
        d,
        d["contenders"],
        "Contenders: p95 latency over time (ms, from the intended send time)",
        "ms",
        lambda c: c["timeseries"].get("p95_ms"),
    )
