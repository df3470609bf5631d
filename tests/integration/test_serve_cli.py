"""`lasso-rpc serve`, `check-config` and `mock` as a user runs them (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_process import RouterProcess
from lasso_rpc.config import load_config_text
from tests.conftest import fleet_config, rpc


async def _spawn(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lasso_rpc",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return proc, []


async def test_workers_share_one_port(fleet: MockFleet, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(fleet_config(fleet))
    async with RouterProcess(path, workers=2, startup_timeout_s=90) as node:
        urls = [w.url for w in node.listening]
        assert len(urls) == 2 and urls[0] == urls[1]  # both workers on the same port
        pids = set()
        for _ in range(60):  # a new connection each time so the kernel spreads them
            async with aiohttp.ClientSession() as http:
                _, body, resp = await rpc(
                    http, urls[0] + "/rpc/ethereum?include_meta=headers", "eth_blockNumber"
                )
                assert "result" in body
                pids.add(resp.headers["X-Lasso-Request-Id"].split("-")[0])
            if len(pids) == 2:
                break
        assert len(pids) == 2, pids
        assert {int(p, 16) for p in pids} == set(node.worker_pids)
        # one worker killed: the parent stops the other and exits non-zero
        os.kill(int(next(iter(pids)), 16), signal.SIGKILL)
        await asyncio.wait_for(node.wait(), 30)
        assert node.returncode == 1


async def test_check_config_lists_every_error_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: X\nslug: x\nchains:\n  ethereum:\n    chain_id: 1\n    providers:\n"
        "      - {id: a, url: 'ftp://x'}\n      - {id: b, url: 'http://ok/${NOT_SET_ANYWHERE}'}\n"
    )
    proc, _ = await _spawn("check-config", str(bad))
    out, err = await proc.communicate()
    assert proc.returncode == 1
    text = err.decode()
    assert "chains.ethereum.providers[0].url: must be an http:// or https:// URL" in text
    assert "chains.ethereum.providers[1].url: unresolved placeholder ${NOT_SET_ANYWHERE}" in text
    good = tmp_path / "good.yaml"
    good.write_text(
        bad.read_text().replace("ftp://x", "http://x").replace("/${NOT_SET_ANYWHERE}", "")
    )
    proc, _ = await _spawn("check-config", str(good))
    out, err = await proc.communicate()
    assert proc.returncode == 0 and b"providers=2" in out


async def test_mock_command_prints_a_ready_config() -> None:
    proc, _ = await _spawn("mock", "--providers", "2", "--block-time-ms", "500")
    try:
        assert proc.stdout is not None
        text = b""
        async with asyncio.timeout(20):
            while b"priority: 2" not in text:
                chunk = await proc.stdout.readline()
                assert chunk, "mock exited early"
                text += chunk
            text += await asyncio.wait_for(proc.stdout.readline(), 5)
        cfg = load_config_text([("mock.yaml", text.decode())])
        providers = cfg.profiles["local"].chains["ethereum"].providers
        assert [p.id for p in providers] == ["alpha", "beta"]
        async with aiohttp.ClientSession() as http:
            _, body, _ = await rpc(http, providers[1].url, "eth_chainId")
        assert body["result"] == "0x1"
        assert yaml.safe_load(text)["chains"]["ethereum"]["chain_id"] == 1
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


@pytest.mark.parametrize("cmd", [["--help"], ["battle", "--help"]])
async def test_help(cmd: list[str]) -> None:
    proc, _ = await _spawn(*cmd)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and b"Usage" in out
