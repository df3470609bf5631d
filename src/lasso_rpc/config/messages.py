"""pydantic validation errors → "key.path: message" lines a user can act on.

Rules: the path is the one the user wrote (no union branch tags such as ``constrained-int``);
one line per path and problem; type and range errors say what the value must be, in the words
``describe`` also prints in the reference; an unknown key names the closest known key; a
"required" key is not reported when an unknown key next to it is its misspelling.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from lasso_rpc.config.describe import Located, choices, describe, locate

__all__ = ["Loc", "did_you_mean", "format_loc", "validation_errors"]

Loc = tuple[int | str, ...]


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    if not close:  # "request-timeout-ms", "Max_Attempts": same words, other spelling
        norm = {k.replace("_", "").replace("-", "").lower(): k for k in known}
        hit = norm.get(word.replace("_", "").replace("-", "").lower())
        close = [hit] if hit else []
    return close[0] if close else None


def _unknown_key(key: object, parent: type[BaseModel] | None) -> tuple[str, str | None]:
    known = list(parent.model_fields if parent else ())
    guess = did_you_mean(str(key), known)
    if guess is not None:
        return f"unknown key; did you mean {guess!r}?", guess
    return (f"unknown key (known keys: {', '.join(known)})" if known else "unknown key"), None


def _must_be(located: Located, value: Any) -> str:
    assert located.shape is not None
    text = f"must be {describe(located.shape)}"
    if isinstance(value, str):
        guess = did_you_mean(value, choices(located.shape))
        if guess is not None and guess != value:
            text += f"; did you mean {guess!r}?"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text += f" (got {value!r})"  # numbers only: a string here may hold a secret
    return text


def validation_errors(root: type[BaseModel], exc: ValidationError) -> list[tuple[Loc, str]]:
    """Every problem in ``exc`` once, at the path the user wrote."""
    out: dict[tuple[Loc, str], None] = {}
    typed: set[Loc] = set()  # paths that already say "must be ...": union branches collapse
    unknown: dict[Loc, list[str]] = {}  # parent path -> keys offered as "did you mean"
    for err in exc.errors(include_url=False):
        located = locate(root, tuple(err["loc"]))
        path, kind = located.path, err["type"]
        if located.shape is None or kind == "extra_forbidden":
            msg, guess = _unknown_key(path[-1] if path else "", located.parent)
            if guess is not None:
                unknown.setdefault(path[:-1], []).append(guess)
        elif kind == "missing":
            msg = "required"
        elif kind in ("value_error", "assertion_error"):
            msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        else:
            if path in typed:
                continue
            typed.add(path)
            msg = _must_be(located, err.get("input"))
        out[(path, msg)] = None
    deeper = {p[:n] for p, _ in out for n in range(len(p))}

    def redundant(path: Loc, msg: str) -> bool:
        # "required" beside its misspelling; "must be" for a union whose mapping branch was
        # taken (the errors inside that mapping say what is wrong)
        if msg == "required" and path and path[-1] in unknown.get(path[:-1], ()):
            return True
        return path in typed and path in deeper and msg.startswith("must be")

    return [(path, msg) for path, msg in out if not redundant(path, msg)]
