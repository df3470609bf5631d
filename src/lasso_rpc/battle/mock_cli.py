"""``lasso-rpc mock`` options → the knobs of each provider of the fleet."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from lasso_rpc.battle.providers.spec import Knobs, default_ids

__all__ = ["fleet_knobs", "parse_override"]

_FIELDS = {f.name: f for f in dataclasses.fields(Knobs)}
_DEFAULTS = Knobs()


def _value(knob: str, text: str) -> Any:
    if knob not in _FIELDS:
        raise ValueError(f"unknown knob {knob!r}; valid: {', '.join(_FIELDS)}")
    default = getattr(_DEFAULTS, knob)
    if knob == "error_rate":
        return None if text.lower() in ("", "none") else float(text)
    if knob == "unsupported_methods":
        return frozenset(m for m in text.split("+") if m)  # eth_getLogs+trace_block
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def parse_override(text: str) -> tuple[str, dict[str, Any]]:
    """``beta:latency_ms=200,failure_mode=http_500`` → ``("beta", {...})``."""
    pid, sep, rest = text.partition(":")
    if not sep or not pid or not rest:
        raise ValueError(f"--set {text!r}: expected ID:knob=value[,knob=value]")
    knobs: dict[str, Any] = {}
    for part in rest.split(","):
        knob, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"--set {text!r}: {part!r} is not knob=value")
        try:
            knobs[knob.strip()] = _value(knob.strip(), value.strip())
        except ValueError as exc:
            raise ValueError(f"--set {text!r}: {exc}") from exc
    return pid, knobs


def fleet_knobs(n: int, *, common: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Knobs]:
    """Knobs per provider id: ``common`` for all (defaults left out), then each ``--set``."""
    base = {k: v for k, v in common.items() if v != getattr(_DEFAULTS, k)}
    ids = default_ids(n)
    per: dict[str, dict[str, Any]] = {pid: dict(base) for pid in ids}
    for text in overrides:
        pid, knobs = parse_override(text)
        if pid not in per:
            raise ValueError(f"--set {text!r}: no provider {pid!r} (the fleet: {', '.join(ids)})")
        per[pid].update(knobs)
    return {pid: Knobs().with_changes(**knobs) for pid, knobs in per.items()}
