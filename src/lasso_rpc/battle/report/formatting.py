"""Formatting shared by the report renderers: numbers, operators, chaos and breaker labels."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["OPS", "breaker_lane", "chaos_label", "fmt"]


def fmt(x: Any, unit: str = "") -> str:
    """A number for a table cell: short, but never rounding 0.99899 up to 0.999."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e15):
        s = f"{x:.0f}"
    elif abs(x) >= 1:
        s = f"{x:.{1 if abs(x) >= 100 else 2}f}".rstrip("0").rstrip(".")
    else:
        s = f"{x:.6g}"
    return f"{s} {unit}" if unit else s


OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "higher": "≥", "lower": "≤"}


def breaker_lane(b: Mapping[str, Any]) -> str:
    """Breakers are per provider and transport: ``"alpha"`` (HTTP) or ``"alpha (ws)"``."""
    transport = b.get("transport") or "http"
    return str(b["provider"]) if transport == "http" else f"{b['provider']} ({transport})"


def chaos_label(ev: Mapping[str, Any]) -> str:
    """``"kill_provider alpha"``: a chaos event's action and target."""
    return f"{ev['action']} {ev['target']}" if ev.get("target") else str(ev["action"])
