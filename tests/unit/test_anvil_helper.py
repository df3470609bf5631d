"""AnvilNode's binary discovery and command line, without starting anything."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lasso_rpc.battle.providers.anvil import (
    AnvilError,
    AnvilNode,
    AnvilNotFound,
    anvil_binary,
    find_anvil,
)
from lasso_rpc.battle.providers.lockstep import AnvilLockstep


def _fake_anvil(root: Path) -> Path:
    exe = root / "node_modules" / ".bin" / "anvil"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_lasso_anvil_wins_over_node_modules(tmp_path: Path) -> None:
    exe = _fake_anvil(tmp_path / "explicit")
    _fake_anvil(tmp_path / "repo")
    env = {"LASSO_ANVIL": str(exe), "PATH": ""}
    assert find_anvil(env=env, roots=[tmp_path / "repo"]) == str(exe)


def test_node_modules_then_path(tmp_path: Path) -> None:
    repo = _fake_anvil(tmp_path / "repo")
    assert find_anvil(env={"PATH": ""}, roots=[tmp_path / "repo"]) == str(repo)
    bin_dir = _fake_anvil(tmp_path / "elsewhere").parent
    assert find_anvil(env={"PATH": str(bin_dir)}, roots=[]) == str(bin_dir / "anvil")


def test_broken_lasso_anvil_fails_instead_of_skipping(tmp_path: Path) -> None:
    env = {"LASSO_ANVIL": str(tmp_path / "missing"), "PATH": ""}
    with pytest.raises(AnvilNotFound, match="LASSO_ANVIL"):
        anvil_binary(env=env, roots=[])


def test_absent_binary_skips_with_a_reason() -> None:
    with pytest.raises(pytest.skip.Exception, match="make anvil"):
        anvil_binary(env={"PATH": ""}, roots=[])


def test_command_line() -> None:
    node = AnvilNode(chain_id=5, block_time_s=0.5, genesis_timestamp=1_700_000_000, binary="a")
    assert node.args() == [
        *("a", "--host", "127.0.0.1", "--port", "0", "--silent", "--chain-id", "5"),
        *("--block-time", "0.5", "--timestamp", "1700000000"),
    ]
    quiet = AnvilNode(no_mining=True, extra_args=["--order", "fifo"], binary="a")
    assert quiet.args()[-3:] == ["--no-mining", "--order", "fifo"]
    with pytest.raises(ValueError, match="exclude"):
        AnvilNode(block_time_s=1, no_mining=True)
    with pytest.raises(AnvilError, match="not been started"):
        _ = quiet.url
    assert "new" in repr(quiet)


def test_lockstep_nodes_share_genesis_and_chain_id() -> None:
    chain = AnvilLockstep(3, chain_id=9, genesis_timestamp=1_700_000_000, binary="a")
    args = [n.args() for n in chain]
    assert all(a == args[0] for a in args)
    assert {"--no-mining", "--timestamp", "1700000000", "9"} <= set(args[0])
    assert len(chain) == 3 and repr(chain) == "<AnvilLockstep 0/3 running head=0>"
