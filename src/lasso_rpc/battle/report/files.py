"""Writing a run's reports: ``<id>.json|.md|.html|.junit.xml`` and ``latest.*`` copies."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lasso_rpc.battle.report.junit import render_junit
from lasso_rpc.battle.report.markdown import render_markdown
from lasso_rpc.battle.report.schema import Result, dump_result, validate_result

__all__ = ["ReportPaths", "save_baseline", "write_reports"]


@dataclass(frozen=True, slots=True)
class ReportPaths:
    json: Path
    markdown: Path
    html: Path
    junit: Path
    latest_json: Path
    latest_markdown: Path
    latest_html: Path


def _umask() -> int:
    """The process umask, read without changing it where /proc says it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and put back at once
    os.umask(mask)
    return mask


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp makes 0600 files; a report is for the team: the mode open() would give
        # (0666 less the umask, so 0644 or 0664 usually).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(result: Result, out_dir: str | os.PathLike[str]) -> ReportPaths:
    """Write ``<id>.json|.md|.html|.junit.xml`` and copies ``latest.json|.md|.html``."""
    from lasso_rpc.battle.report.html import render_html  # plotly is heavy: imported on use

    validate_result(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rid = result["id"]
    paths = ReportPaths(
        json=out / f"{rid}.json",
        markdown=out / f"{rid}.md",
        html=out / f"{rid}.html",
        junit=out / f"{rid}.junit.xml",
        latest_json=out / "latest.json",
        latest_markdown=out / "latest.md",
        latest_html=out / "latest.html",
    )
    rendered = {
        (paths.json, paths.latest_json): dump_result(result),
        (paths.markdown, paths.latest_markdown): render_markdown(result).encode(),
        (paths.html, paths.latest_html): render_html(result).encode(),
        (paths.junit,): render_junit(result).encode(),
    }
    for targets, data in rendered.items():
        for path in targets:
            _write_atomic(path, data)
    return paths


def save_baseline(result: Result, path: str | os.PathLike[str]) -> Path:
    """Save ``result`` as a baseline for later ``compare`` runs."""
    validate_result(result)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(p, dump_result(result))
    return p
