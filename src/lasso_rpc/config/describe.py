"""Config types said in plain words, for error messages and the generated reference.

``describe`` turns a field's type and constraints into a phrase ("an integer from 1 to 10",
"one of fastest, load-balanced, ..."); error messages read "must be <phrase>" and the reference
prints the same phrase, so the two cannot disagree. ``locate`` follows a pydantic error location
through the models to the path the user wrote (union branch tags dropped) and the type found there.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = [
    "Expect",
    "Located",
    "Shape",
    "choices",
    "describe",
    "locate",
    "model_of",
    "shape_of",
    "union_members",
]

Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class Expect:
    """``Annotated`` marker: what a value must be, in words (instead of a regex or a Literal)."""

    text: str
    #: Accepted spellings, offered as "did you mean" for a near miss.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Shape:
    """A type with its constraints (``Ge``, patterns, ``Expect``) gathered from ``Annotated``."""

    tp: Any
    meta: tuple[object, ...] = ()


def shape_of(annotation: Any, metadata: tuple[object, ...] | list[Any] = ()) -> Shape:
    meta: list[object] = []
    for m in metadata:
        meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    tp = annotation
    while get_origin(tp) is Annotated:
        tp, *extra = get_args(tp)
        for m in extra:
            meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return Shape(tp, tuple(meta))


def model_of(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def union_members(tp: Any) -> list[Any] | None:
    """The non-None members of a union, or None when ``tp`` is no union."""
    if get_origin(tp) in (Union, types.UnionType):
        return [a for a in get_args(tp) if a is not type(None)]
    return None


def _num(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _bounded(noun: str, meta: tuple[object, ...]) -> str:
    lo = hi = None
    for m in meta:
        if isinstance(m, at.Ge):
            lo = f">= {_num(m.ge)}"
        elif isinstance(m, at.Gt):
            lo = f"> {_num(m.gt)}"
        elif isinstance(m, at.Le):
            hi = f"<= {_num(m.le)}"
        elif isinstance(m, at.Lt):
            hi = f"< {_num(m.lt)}"
    if lo and hi and lo.startswith(">=") and hi.startswith("<="):
        return f"{noun} from {lo[3:]} to {hi[3:]}"
    parts = [p for p in (lo, hi) if p]
    return f"{noun} {' and '.join(parts)}" if parts else noun


_PLURALS = {"a string": "strings", "a mapping": "mappings", "true or false": "booleans"}


def _plural(phrase: str) -> str:
    if phrase.startswith("one of "):
        return phrase
    for one, many in _PLURALS.items():
        if phrase == one:
            return many
    for article, noun in (("an integer", "integers"), ("a number", "numbers")):
        if phrase.startswith(article):
            return noun + phrase[len(article) :]
    return f"items that are each {phrase}"


def describe(shape: Shape) -> str:
    """A phrase that completes "must be ...": "an integer >= 1", "one of a, b", "a mapping"."""
    for m in shape.meta:
        if isinstance(m, Expect):
            return m.text
    tp = shape.tp
    members = union_members(tp)
    if members is not None:
        return " or ".join(describe(shape_of(a)) for a in members)
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if tp is bool:
        return "true or false"
    if tp is int:
        return _bounded("an integer", shape.meta)
    if tp is float:
        return _bounded("a number", shape.meta)
    if tp is str:
        pattern = next((getattr(m, "pattern", None) for m in shape.meta), None)
        return f"a string matching {pattern}" if pattern else "a string"
    if origin is list:
        items = _plural(describe(shape_of(get_args(tp)[0])))
        non_empty = any(isinstance(m, at.MinLen) and m.min_length > 0 for m in shape.meta)
        return f"a {'non-empty ' if non_empty else ''}list of {items}"
    if origin is dict:
        return f"a mapping of names to {_plural(describe(shape_of(get_args(tp)[1])))}"
    if model_of(tp) is not None:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def choices(shape: Shape) -> tuple[str, ...]:
    """The accepted spellings of an enumerated value (empty for open-ended types)."""
    for m in shape.meta:
        if isinstance(m, Expect) and m.choices:
            return m.choices
    members = union_members(shape.tp)
    if members is not None:
        return tuple(c for a in members for c in choices(shape_of(a)))
    if get_origin(shape.tp) is Literal:
        return tuple(str(a) for a in get_args(shape.tp))
    return ()


@dataclass(frozen=True, slots=True)
class Located:
    """Where a pydantic error points, as the user wrote it."""

    path: Loc
    #: The type at ``path``; None when the last key is unknown to ``parent``.
    shape: Shape | None
    #: The model holding the last key of ``path`` (for "did you mean").
    parent: type[BaseModel] | None


def locate(root: type[BaseModel], loc: Loc) -> Located:
    shape: Shape = Shape(root)
    path: list[int | str] = []
    parent: type[BaseModel] | None = None
    i = 0
    while i < len(loc):
        part, tp = loc[i], shape.tp
        model = model_of(tp)
        members = union_members(tp)
        if model is not None:
            if not isinstance(part, str) or part not in model.model_fields:
                return Located((*path, part), None, model)
            field = model.model_fields[part]
            shape, parent = shape_of(field.annotation, field.metadata), model
        elif members is not None:
            if len(members) == 1:  # Optional[X]: pydantic adds no branch tag
                shape = shape_of(members[0], shape.meta)
                continue
            # A branch tag: follow it into a model branch, else the error is the whole union's.
            branch = next((m for m in members if getattr(m, "__name__", None) == part), None)
            if model_of(branch) is None:
                return Located(tuple(path), shape, parent)
            shape = Shape(branch)
            i += 1
            continue
        elif get_origin(tp) is list and isinstance(part, int):
            shape = shape_of(get_args(tp)[0])
        elif get_origin(tp) is dict:
            if part == "[key]":
                return Located(tuple(path), Shape(str), parent)
            shape = shape_of(get_args(tp)[1])
        else:
            return Located(tuple(path), shape, parent)
        path.append(part)
        i += 1
    return Located(tuple(path), shape, parent)
