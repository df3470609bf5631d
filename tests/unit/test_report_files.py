"""Report files are for the team: the mode ``open()`` would give (0666 less the umask), not the
0600 of a temporary file."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lasso_rpc.battle.report.files import save_baseline, write_reports

FIXTURE = Path(__file__).parent.parent / "fixtures" / "battle_result_sample.json"


@pytest.fixture
def umask() -> Iterator[Any]:
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_reports_are_readable_by_the_group(umask: Any, tmp_path: Path) -> None:
    sample = json.loads(FIXTURE.read_text())
    paths = write_reports(sample, tmp_path / "out")
    for p in (paths.json, paths.markdown, paths.html, paths.junit, paths.latest_html):
        assert _mode(p) == 0o644, p
    umask(0o027)
    assert _mode(save_baseline(sample, tmp_path / "baseline.json")) == 0o640
    umask(0o002)
    assert _mode(save_baseline(sample, tmp_path / "baseline2.json")) == 0o664
