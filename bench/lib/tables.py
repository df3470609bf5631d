"""Output: numbers and Markdown tables that paste straight into docs/performance.md."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence


def fmt(v: object, digits: int = 3) -> str:
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


_NUMERIC = re.compile(r"[-+]?[0-9][0-9.,]*\s?(%|x|µs|ms|MB|MB/s|MB/min|s)?|—|")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """A Markdown table (right-aligned numbers) that pastes straight into docs/performance.md."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    numeric = [all(_NUMERIC.fullmatch(r[i]) for r in cells) for i in range(len(headers))]

    def line(vals: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                v.rjust(w) if num else v.ljust(w)
                for v, w, num in zip(vals, widths, numeric, strict=True)
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2))
            for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    out = [f"\n{title}\n" if title else "", line(headers), sep, *(line(r) for r in cells)]
    return "\n".join(out)


def delta_us(a_ms: float, b_ms: float) -> str:
    d = 1000 * (a_ms - b_ms)
    return f"+{d:,.0f} µs" if d >= 0 else f"-{-d:,.0f} µs"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "—"


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))
