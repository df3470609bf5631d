"""One way to run a router node as a process: start, crash, restart on the same port, freeze,
stop; the asyncio face (battles, tests) and the synchronous one (benchmarks)."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_process import RouterProcess, RouterProcessError
from lasso_rpc.battle.providers.router_process_sync import RouterProcessSync
from tests.conftest import fleet_config, rpc


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        _, body, _ = await rpc(http, url + "/rpc/ethereum", "eth_chainId")
    except aiohttp.ClientConnectionError:
        return False
    return body.get("result") == "0x1"


async def test_a_killed_node_restarts_on_the_same_port(
    fleet: MockFleet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(fleet_config(fleet))
    async with RouterProcess(path, startup_timeout_s=30) as node:
        url, first_pid = node.url, node.pid
        assert node.port > 0 and url.endswith(f":{node.port}")
        assert node.worker_pids == [first_pid] and "listening on" in node.output
        assert await _answers(http, url)

        await node.kill()  # a crash: SIGKILL, nothing answers any more
        assert not node.running and node.returncode == -signal.SIGKILL
        assert not await _answers(http, url)

        await node.restart()
        assert node.url == url and node.pid != first_pid
        assert await _answers(http, url)
    assert node.returncode == 0  # stopped by SIGTERM, cleanly


async def test_a_frozen_node_still_stops(fleet: MockFleet, tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(fleet_config(fleet))
    node = await RouterProcess(path, startup_timeout_s=30, stop_timeout_s=10).start()
    node.send_signal(signal.SIGSTOP)
    await node.stop()  # SIGTERM then SIGCONT to the group: it wakes up and exits
    assert node.returncode == 0


async def test_a_node_that_cannot_start_says_why(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("chains: [not, valid]\n")
    node = RouterProcess(path, startup_timeout_s=30)
    with pytest.raises(RouterProcessError, match=r"exited with 2:\n(.|\n)*chains"):
        await node.start()
    assert not node.running


def test_the_synchronous_face(tmp_path: Path) -> None:
    """No event loop here (the benchmarks have none): a provider that is not there is enough
    for the router to listen and serve /health."""
    path = tmp_path / "router.yaml"
    path.write_text(
        "name: P\nslug: p\nchains:\n  ethereum:\n    chain_id: 1\n    providers:\n"
        "      - {id: a, url: 'http://127.0.0.1:9/'}\nserver: {host: 127.0.0.1, port: 0}\n"
    )
    log = tmp_path / "router.log"
    with RouterProcessSync(path, log=log, startup_timeout_s=30) as node:
        url = node.url
        assert _health(url) == 200
        node.restart()
        assert node.url == url and _health(url) == 200
    assert node.popen is not None and node.popen.returncode == 0
    assert log.read_text().count("lasso-rpc listening on") == 2  # both starts, one log


def _health(url: str) -> int:
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        return int(r.status)
