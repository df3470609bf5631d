"""The Python example in docs/battle.md runs as written (shortened in time)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.battle
DOC = Path(__file__).resolve().parents[2] / "docs" / "battle.md"


def test_battle_doc_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    code = blocks[0].replace("duration_s=30", "duration_s=3").replace("at_s=10", "at_s=1")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, str(DOC), "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(cwd)
    assert list((tmp_path / "battle_results").glob("provider-failover-*.html"))
