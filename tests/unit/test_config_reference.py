"""docs/config.md is generated from the models, and says true things: no key without a line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from lasso_rpc.config import load_config_text
from lasso_rpc.config.reference import render, section_example, sections, undocumented
from lasso_rpc.config.reference_text import BAD_EXAMPLE, FULL_EXAMPLE
from lasso_rpc.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
REGENERATE = "python -m lasso_rpc.config.reference > docs/config.md"


def test_docs_config_md_is_what_the_models_generate() -> None:
    assert DOC.read_text() == render(), f"docs/config.md is out of date: run `{REGENERATE}`"


def test_every_key_has_a_description_and_a_value_to_show() -> None:
    assert undocumented() == []


def test_a_key_without_a_description_is_caught() -> None:
    class Block(BaseModel):
        documented: int = Field(default=1, description="Has one.")
        bare: int = 2
        required_no_example: str = Field(description="Nothing to show.")

    class Root(BaseModel):
        block: Block = Field(description="A block.")

    assert undocumented(Root) == [
        "block: no example and no default",  # a required block needs an example too
        "block.bare: no description",
        "block.required_no_example: no example and no default",
    ]


def test_every_key_of_every_block_is_in_the_reference() -> None:
    doc = DOC.read_text()
    for sec in sections():
        assert f'<a id="{sec.anchor}"></a>' in doc
        table = doc.split(f'<a id="{sec.anchor}"></a>', 1)[1].split("<a id=", 1)[0]
        for name in sec.model.model_fields:
            assert re.search(rf"^\| `{name}` \|", table, re.M), f"{sec.path}.{name} has no row"


@pytest.mark.parametrize("sec", sections(), ids=lambda s: s.path or "top")
def test_each_block_example_is_valid(sec: Any) -> None:
    sec.model.model_validate(section_example(sec))


def test_the_documented_issue_keys_are_in_the_reference() -> None:
    doc = DOC.read_text()
    for key in (
        "rate_limit",
        "attempt_timeout_ms",
        "head_poll_ms",
        "max_batch_size",
        "error_overrides",
        "archive",
        "public_ws_base",
        "front",
        "rate_limit_rps",
    ):
        assert f"| `{key}` |" in doc


def _full_example_in_doc() -> str:
    block = DOC.read_text().split("## A full example", 1)[1]
    return block.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_check_config_accepts_the_full_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lasso_rpc.cli import app

    assert _full_example_in_doc() == FULL_EXAMPLE
    for var in re.findall(r"\$\{(\w+)", FULL_EXAMPLE):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "mainnets.yaml"
    path.write_text(_full_example_in_doc())
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok  profile=default chain=ethereum (id 1) providers=2 strategy=fastest" in result.output
    assert "ok  profile=default chain=base (id 8453) providers=1 strategy=priority" in result.output


def _paths(node: dict[str, Any], prefix: str) -> set[str]:
    """Key paths the full example sets, in the reference's spelling (``chains.<name>.id``)."""
    blocks = {s.path for s in sections()}
    out = set()
    for name, value in node.items():
        key = f"{prefix}{name}"
        out.add(key)
        if key in blocks:
            out |= _paths(value, key + ".")
        elif f"{key}[]" in blocks:
            for item in value:
                out |= _paths(item, f"{key}[].")
        elif f"{key}.<name>" in blocks:
            for item in value.values():
                out |= _paths(item, f"{key}.<name>.")
    return out


def test_the_full_example_sets_every_key() -> None:
    every = {f"{s.path}.{n}" if s.path else n for s in sections() for n in s.model.model_fields}
    every.discard("chains.<name>.routing")  # the chain override is shown, not every key of it
    shown = _paths(yaml.safe_load(FULL_EXAMPLE), "")
    assert every - shown == set(), "add these keys to FULL_EXAMPLE in config/reference_text.py"


def test_the_errors_section_is_what_check_config_prints() -> None:
    doc = DOC.read_text()
    section = doc.split("## Errors", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    lines = section.strip().splitlines()
    with pytest.raises(ConfigError) as info:
        load_config_text([("mainnets.yaml", BAD_EXAMPLE)], env={"ALPHA_KEY": "k"})
    assert lines == [
        "$ lasso-rpc check-config mainnets.yaml",
        *info.value.errors,
        f"{len(info.value.errors)} error(s)",
    ]
    assert "chains.ethereum.providers[0].urll: unknown key; did you mean 'url'?" in lines
