"""Chaos windows as chart bands: overlapping windows become one band with one label.

Drawn one by one, three faults injected over the same seconds stack their shading into one
darker block and print their labels on top of each other: nobody can read which faults were
on. ``chaos_bands`` merges windows that overlap (or touch) into one band whose label names
every action in it; a fault never reverted stays a line at its injection time (several at the
same instant share one line). The chaos timeline chart keeps one lane per event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lasso_rpc.battle.report.formatting import chaos_label

__all__ = ["Band", "chaos_bands"]


@dataclass(frozen=True, slots=True)
class Band:
    start: float
    end: float | None  # None: a fault never reverted (a line at ``start``)
    labels: tuple[str, ...]

    @property
    def label(self) -> str:
        return " + ".join(dict.fromkeys(self.labels))


def chaos_bands(chaos: Sequence[Mapping[str, Any]]) -> list[Band]:
    """Merged windows (in time order), then the lines of faults never reverted."""
    windows = sorted(
        (float(c["at_s"]), float(c["end_s"]), chaos_label(c))
        for c in chaos
        if c.get("end_s") is not None
    )
    bands: list[Band] = []
    for start, end, label in windows:
        last = bands[-1] if bands else None
        if last is not None and last.end is not None and start <= last.end:
            bands[-1] = Band(last.start, max(last.end, end), (*last.labels, label))
        else:
            bands.append(Band(start, end, (label,)))
    lines: dict[float, list[str]] = {}
    for c in chaos:
        if c.get("end_s") is None:
            lines.setdefault(float(c["at_s"]), []).append(chaos_label(c))
    return bands + [Band(at, None, tuple(labels)) for at, labels in sorted(lines.items())]
