"""Chaos actions from YAML/dicts: ``chaos_from_dict`` checks every key against the action."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lasso_rpc.battle.chaos.base import ChaosAction
from lasso_rpc.battle.chaos.factory import ACTIONS

__all__ = ["chaos_from_dict"]


def chaos_from_dict(d: Mapping[str, Any]) -> ChaosAction:
    """``{"action": "kill_provider", "provider": "alpha", "at_s": 10}`` (or the one-key form
    ``{"kill_provider": {...}}``) → the action; ValueError naming the valid actions or keys."""
    if not isinstance(d, Mapping):
        raise ValueError(f"a chaos action must be a mapping, not {type(d).__name__}")
    data = dict(d)
    if "action" not in data and len(data) == 1 and isinstance(next(iter(data.values())), Mapping):
        name, inner = next(iter(data.items()))
        data = {"action": name, **inner}
    name = data.pop("action", None)
    cls = ACTIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown chaos action {name!r}; valid: {', '.join(ACTIONS)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; valid: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in data]
    if missing:
        raise ValueError(f"{name}: missing key(s) {missing}")
    for key, value in list(data.items()):
        data[key] = _coerce(name, key, str(fields[key].type), value)
    return cls(**data)


def _coerce(action: str, key: str, kind: str, value: Any) -> Any:
    """Check a YAML value against the field's annotation (a string: postponed annotations)."""
    if value is None and "None" in kind:
        return None
    ok: bool
    if kind.startswith("tuple"):
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif kind.startswith("bool"):
        ok = isinstance(value, bool)
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"{action}.{key}: expected {kind}, got {value!r}")
    return value
