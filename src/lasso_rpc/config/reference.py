"""docs/config.md from the models: ``python -m lasso_rpc.config.reference > docs/config.md``.

One section per YAML block, found by walking ``ProfileFile``'s fields; one table row per key with
its type and range (the words error messages use), default and description, then a YAML example
of the block made of each key's ``examples[0]`` (else its default). The prose around the tables
is in ``reference_text``. tests/unit/test_config_reference.py fails when docs/config.md differs.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from lasso_rpc.config.describe import Shape, describe, model_of, shape_of, union_members
from lasso_rpc.config.loader import load_config_text
from lasso_rpc.config.models import ProfileFile
from lasso_rpc.config.reference_text import BAD_EXAMPLE, EPILOGUE, PROLOGUE
from lasso_rpc.errors import ConfigError

__all__ = ["Section", "example_value", "render", "section_example", "sections", "undocumented"]


@dataclass(frozen=True, slots=True)
class Section:
    """One YAML block: ``path`` as written in the reference (``chains.<name>.providers[]``)."""

    path: str
    model: type[BaseModel]
    #: Keys and list markers leading to the block, to nest its example in a whole file.
    nesting: tuple[str, ...]

    @property
    def anchor(self) -> str:
        return "key-" + (re.sub(r"[^a-z0-9]+", "-", self.path.lower()).strip("-") or "top")

    @property
    def title(self) -> str:
        return f"`{self.path}`" if self.path else "Top level of a profile file"


def _nested(shape: Shape) -> tuple[type[BaseModel], str] | None:
    """The model a field holds, and the path suffix reaching it: ``""``, ``[]``, ``.<name>``."""
    tp = shape.tp
    members = union_members(tp)
    if members is not None and len(members) == 1:
        tp = shape_of(members[0]).tp  # Optional[X]
    if (m := model_of(tp)) is not None:
        return m, ""
    if get_origin(tp) is list and (m := model_of(shape_of(get_args(tp)[0]).tp)) is not None:
        return m, "[]"
    if get_origin(tp) is dict and (m := model_of(shape_of(get_args(tp)[1]).tp)) is not None:
        return m, ".<name>"
    return None


def _shape(field: FieldInfo) -> Shape:
    return shape_of(field.annotation, field.metadata)


def sections(root: type[BaseModel] = ProfileFile) -> list[Section]:
    """Every block, depth first in field order; a model met again is linked, not repeated."""
    out: list[Section] = []
    seen: set[type[BaseModel]] = set()

    def visit(model: type[BaseModel], path: str, nesting: tuple[str, ...]) -> None:
        seen.add(model)
        out.append(Section(path, model, nesting))
        for name, field in model.model_fields.items():
            nested = _nested(_shape(field))
            if nested is None or nested[0] in seen:
                continue
            child, suffix = nested
            key = f"{path}.{name}" if path else name
            marker = {"": (), "[]": ("[]",), ".<name>": ("<name>",)}[suffix]
            visit(child, key + suffix, (*nesting, name, *marker))

    visit(root, "", ())
    return out


def _plain(value: Any) -> Any:
    """Model instances inside a default (a list of policies) as the YAML that makes them."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _inline(value: Any) -> str:
    value = _plain(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def example_value(field: FieldInfo) -> Any:
    """What the reference shows for a key: its first example, else its default."""
    if field.examples:
        return field.examples[0]
    return None if field.default is PydanticUndefined else field.default


def _type_cell(field: FieldInfo, by_model: dict[type[BaseModel], Section]) -> str:
    shape = _shape(field)
    text = describe(shape).replace("|", "\\|")
    nested = _nested(shape)
    if nested is not None:
        sec = by_model[nested[0]]
        text += f", see [{sec.title}](#{sec.anchor})"
    return text


def _default_cell(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if isinstance(field.default, BaseModel):
        return "(its keys' defaults)"
    if field.default is None:
        return "unset"
    return f"`{_inline(field.default)}`"


def section_example(sec: Section) -> dict[str, Any]:
    """The block's example: keys that hold other blocks only when required (they have theirs)."""
    out: dict[str, Any] = {}
    for name, field in sec.model.model_fields.items():
        if _nested(_shape(field)) is not None and not field.is_required():
            continue
        value = example_value(field)
        if value is not None:
            out[name] = value
    return out


def _yaml_block(sec: Section, example: dict[str, Any]) -> str:
    """The example nested where it sits in a file; block style down to the keys, flow below."""
    lines: list[str] = []
    indent, dash = 0, False
    for step in sec.nesting:
        if step == "[]":
            dash = True
            continue
        lines.append(
            " " * indent + ("- " if dash else "") + ("ethereum" if step == "<name>" else step) + ":"
        )
        indent += 4 if dash else 2
        dash = False
    for i, (key, value) in enumerate(example.items()):
        lead = ("- " if i == 0 else "  ") if dash else ""
        lines.append(f"{' ' * indent}{lead}{key}: {_inline(value)}")
    body = "\n".join(lines)
    return f"```yaml\n{body}\n```"


def _render_section(sec: Section, by_model: dict[type[BaseModel], Section]) -> str:
    doc = (sec.model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ").replace("``", "`")
    rows = [
        "| key | type and range | default | description |",
        "|---|---|---|---|",
    ]
    for name, field in sec.model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        if field.examples and _nested(_shape(field)) is None:
            desc += f" Example: `{_inline(field.examples[0])}`."
        rows.append(
            f"| `{name}` | {_type_cell(field, by_model)} | {_default_cell(field)} | {desc} |"
        )
    parts = [f'<a id="{sec.anchor}"></a>', f"### {sec.title}", "", doc, "", *rows, ""]
    example = section_example(sec)
    if example:
        parts += [_yaml_block(sec, example), ""]
    return "\n".join(parts)


def undocumented(root: type[BaseModel] = ProfileFile) -> list[str]:
    """Keys the reference cannot document fully: no description, or no value to show."""
    out = []
    for sec in sections(root):
        for name, field in sec.model.model_fields.items():
            key = f"{sec.path}.{name}" if sec.path else name
            if not (field.description or "").strip():
                out.append(f"{key}: no description")
            nested = _nested(_shape(field)) is not None
            if example_value(field) is None and (not nested or field.is_required()):
                out.append(f"{key}: no example and no default")
    return out


def _bad_example_errors() -> str:
    try:
        load_config_text([("mainnets.yaml", BAD_EXAMPLE)], env={"ALPHA_KEY": "k"})
    except ConfigError as exc:
        return "\n".join([*exc.errors, f"{len(exc.errors)} error(s)"])
    raise AssertionError("BAD_EXAMPLE loaded")


def render() -> str:
    """The whole of docs/config.md."""
    secs = sections()
    by_model = {s.model: s for s in secs}
    index = "\n".join(f"- [{s.title}](#{s.anchor})" for s in secs)
    body = "\n".join(_render_section(s, by_model) for s in secs)
    prologue = PROLOGUE.replace("{errors}", _bad_example_errors())
    return f"{prologue}\n## Key reference\n\n{index}\n\n{body}\n{EPILOGUE}"


if __name__ == "__main__":
    sys.stdout.write(render())
