"""deploy/lasso-rpc.service: systemd accepts it (``systemd-analyze verify``, when the machine has
it) and it runs the commands our CLI really has."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lasso_rpc.cli import app

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "lasso-rpc.service"
INSTALLED = "/opt/lasso-rpc/bin/lasso-rpc"


def _service_lines() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    # The unit names the installed path; verify checks that the binary exists, so point it at
    # this checkout's console script.
    script = Path(sys.executable).parent / "lasso-rpc"
    assert script.exists()
    unit = tmp_path / "lasso-rpc.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(script)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # Unknown keys and bad values are only warnings for systemd: nothing at all may be printed.
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


def test_the_unit_runs_commands_the_cli_has(tmp_path: Path) -> None:
    lines = _service_lines()
    [start] = lines["ExecStart"]
    argv = shlex.split(start)
    assert argv[0] == INSTALLED and argv[1] == "serve"
    assert lines["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    [pre] = lines["ExecStartPre"]
    assert shlex.split(pre)[1] == "check-config"
    # The same options parse, against a real (empty) config directory.
    config = tmp_path / "etc"
    config.mkdir()
    args = [a.replace("/etc/lasso-rpc", str(config)) for a in argv[1:]]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2 and "no *.yaml profile files" in out.output  # read the directory
