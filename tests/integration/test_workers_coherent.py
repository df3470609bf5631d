"""``lasso-rpc serve --workers 2`` behaves as one router (issue 13): metrics, control actions,
provider state and events are the same whichever worker a connection lands on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_process import RouterProcess
from tests.conftest import fleet_config, rpc

TOKEN = "workers-test-token"


@pytest.fixture
async def node(fleet: MockFleet, tmp_path: Path) -> AsyncIterator[RouterProcess]:
    path = tmp_path / "w.yaml"
    path.write_text(
        fleet_config(
            fleet,
            strategy="priority",
            server={"control": {"enabled": True, "token": TOKEN}, "log_level": "warning"},
        )
    )
    async with RouterProcess(path, workers=2, startup_timeout_s=90) as n:
        yield n


def _requests_total(text: str) -> float:
    return sum(
        float(m.group(1)) for m in re.finditer(r"^lasso_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


async def _fresh(url: str, method: str = "eth_blockNumber") -> tuple[dict[str, object], str]:
    """One call on a new connection (so the kernel spreads calls over the workers)."""
    async with aiohttp.ClientSession() as http:
        _, body, resp = await rpc(http, url + "?include_meta=headers", method)
        return body, resp.headers["X-Lasso-Request-Id"].split("-")[0]


async def test_every_scrape_shows_every_workers_requests(node: RouterProcess) -> None:
    served: set[str] = set()
    sent = 0
    while sent < 40 or len(served) < 2:
        body, pid = await _fresh(node.url + "/rpc/ethereum")
        assert "result" in body
        served.add(pid)
        sent += 1
        assert sent < 400, "the kernel never spread connections over both workers"
    assert {int(p, 16) for p in served} == set(node.worker_pids)
    for _ in range(5):  # five scrapes, each on a new connection: each shows the total
        async with aiohttp.ClientSession() as http, http.get(node.url + "/metrics") as r:
            text = await r.text()
        assert _requests_total(text) == sent
        assert re.search(r"^lasso_workers 2\.0$", text, re.M)


async def test_a_breaker_opened_through_one_worker_is_open_on_all(
    node: RouterProcess, fleet: MockFleet
) -> None:
    url = node.url + "/rpc/ethereum"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            node.url + "/api/control/breaker/open",
            json={"chain": "ethereum", "provider": "alpha", "hold": True},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as r,
    ):
        assert r.status == 200 and (await r.json())["state"] == "open"
    before = fleet["alpha"].method_counts.get("eth_getBalance", 0)
    pids: set[str] = set()
    for _ in range(100):  # alpha is first by priority: only its breaker keeps calls away
        body, pid = await _fresh(url, "eth_getBalance")
        assert "result" in body or "error" in body
        pids.add(pid)
    assert len(pids) == 2
    assert fleet["alpha"].method_counts.get("eth_getBalance", 0) == before
    for _ in range(6):  # /api/providers agrees whichever worker answers
        async with (
            aiohttp.ClientSession() as http,
            http.get(node.url + "/api/providers?chain=eth") as r,
        ):
            data = await r.json()
        alpha = next(p for p in data["providers"] if p["id"] == "alpha")
        assert alpha["breaker"]["state"] == "open"
        assert sorted(w["breaker"] for w in alpha["workers"]) == ["open", "open"]
        assert data["workers"] == 2


async def test_the_event_stream_carries_every_workers_events(node: RouterProcess) -> None:
    ws_url = node.url.replace("http", "ws", 1) + "/api/events?types=request.finished"
    seen: set[int] = set()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:

        async def reader() -> None:
            async for msg in ws:
                seen.add(orjson.loads(msg.data)["worker"])
                if len(seen) == 2:
                    return

        task = asyncio.create_task(reader())
        for _ in range(200):
            if task.done():
                break
            await _fresh(node.url + "/rpc/ethereum")
        await asyncio.wait_for(task, 10)
    assert seen == {0, 1}


async def test_a_quota_is_one_quota_whichever_worker_counts_it(
    fleet: MockFleet, tmp_path: Path
) -> None:
    path = tmp_path / "q.yaml"
    key = "worker-quota-key-01"
    path.write_text(
        fleet_config(fleet, extra={"access": {"keys": [{"key": key, "quota": {"requests": 5}}]}})
    )
    async with RouterProcess(path, workers=2, startup_timeout_s=90) as n:
        pids: dict[str, list[int]] = {}
        for _ in range(12):  # new connections: both workers count
            async with aiohttp.ClientSession() as http:
                status, _, resp = await rpc(
                    http,
                    n.url + "/rpc/ethereum?include_meta=headers",
                    headers={"X-Lasso-Key": key},
                )
            pid = resp.headers.get("X-Lasso-Request-Id", "refused").split("-")[0]
            pids.setdefault(pid, []).append(status)
        statuses = [s for ss in pids.values() for s in ss]
        assert statuses.count(200) == 5 and statuses.count(429) == 7
