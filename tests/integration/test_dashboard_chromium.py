"""The live dashboard in headless Chromium (driven over the DevTools protocol, not --dump-dom).

A router with two chains over a mock fleet, traffic and a WebSocket subscriber: the page shows
every configured provider, loads nothing but from the router, and shows a breaker opened
through the control API within 1 s. ``LASSO_DASHBOARD_SCREENSHOT=docs/dashboard.png`` also
writes the screenshot committed under docs/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.config import load_config_text
from lasso_rpc.server.app import RouterServer
from tests.cdp import Chromium, chromium_binary
from tests.conftest import fleet_config

TOKEN = "dashboard-test-token"
ADDR = "0x00000000000000000000000000000000000000aa"


@pytest.fixture
def chromium() -> str:
    path = chromium_binary()
    if path is None:
        pytest.skip("chromium is not installed (run scripts/ensure-chromium.sh)")
    return path


def _config(fleet: MockFleet) -> str:
    doc = yaml.safe_load(
        fleet_config(
            fleet,
            routing={"head_poll_ms": 250},
            server={"control": {"enabled": True, "token": TOKEN}},
        )
    )
    base = {
        "chain_id": 8453,
        "providers": [
            {"id": f"base-{p.id}", "url": p.url, "priority": i + 1} for i, p in enumerate(fleet)
        ],
    }
    doc["chains"]["base"] = base
    return yaml.safe_dump(doc)


async def _traffic(http: aiohttp.ClientSession, url: str) -> None:
    calls = [
        ("ethereum", "eth_blockNumber", []),
        ("ethereum", "eth_getBalance", [ADDR, "latest"]),
        ("ethereum", "eth_getBlockByNumber", ["latest", False]),
        ("base", "eth_blockNumber", []),
    ]
    while True:
        for chain, method, params in calls:
            body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            with contextlib.suppress(aiohttp.ClientError):
                async with http.post(f"{url}/rpc/{chain}", data=body) as r:
                    await r.read()
        await asyncio.sleep(0.01)


async def _subscriber(http: aiohttp.ClientSession, url: str) -> None:
    async with http.ws_connect(url.replace("http", "ws", 1) + "/ws/rpc/ethereum") as ws:
        await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
        async for _ in ws:
            pass


@contextlib.asynccontextmanager
async def _busy(http: aiohttp.ClientSession, url: str) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(_traffic(http, url)), asyncio.create_task(_subscriber(http, url))]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _control(http: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with http.post(url + path, data=orjson.dumps(body), headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_dashboard_shows_every_provider_and_a_breaker_opened_within_one_second(
    chromium: str, tmp_path: Path
) -> None:
    fleet = await MockFleet.start(
        {"alpha": {"latency_ms": 4}, "beta": {"latency_ms": 15}, "gamma": {"latency_ms": 30}},
        block_time_ms=500,
    )
    async with (
        fleet,
        RouterServer(load_config_text([("t.yaml", _config(fleet))]), port=0) as server,
        aiohttp.ClientSession() as http,
        _busy(http, server.url),
        Chromium(chromium) as browser,
    ):
        url = server.url
        page = await browser.open(url + "/dashboard")
        expected = sorted(
            f"{c.profile}/{c.name}/{pid}" for c in server.router.chains() for pid in c.providers
        )
        assert len(expected) == 6
        shown = await page.wait_for(
            f"(() => {{ const k = [...document.querySelectorAll('tr.provider')]"
            f".map((r) => r.dataset.key).sort(); return k.length === {len(expected)} && k; }})()"
        )
        assert shown == expected
        # Live: summaries arrive (the status says so and the request rate is drawn).
        await page.wait_for("document.getElementById('status').dataset.state === 'live'")
        await page.wait_for("document.querySelector('#timeline path.rps') !== null")
        await page.wait_for("document.querySelectorAll('#decisions li').length > 0")
        await page.wait_for("document.querySelector('#subscriptions td.num') !== null")
        beta = "document.querySelector('tr.provider[data-key=\"local/ethereum/beta\"]')"
        assert await page.evaluate(f"{beta}.dataset.breaker") == "closed"

        t0 = time.monotonic()
        assert (
            await _control(
                http, url, "/api/control/breaker/open", {"chain": "ethereum", "provider": "beta"}
            )
        )["state"] == "open"
        await page.wait_for(f"{beta}.dataset.breaker === 'open'", timeout_s=5, every_s=0.01)
        took = time.monotonic() - t0
        print(f"breaker open shown on the page {took * 1000:.0f} ms after the control API answered")
        assert took < 1.0
        assert await page.evaluate(f"{beta}.querySelector('.breaker').textContent") == "open"
        other = "document.querySelector('tr.provider[data-key=\"local/base/base-beta\"]')"
        assert await page.evaluate(f"{other}.dataset.breaker") == "closed"  # same id elsewhere

        # Chaos from a battle shows as a band on the timeline, and in the event log.
        await _control(
            http, url, "/api/control/chaos", {"action": "kill_provider", "target": "gamma"}
        )
        await page.wait_for("document.querySelector('#timeline rect.chaos') !== null")
        await page.wait_for(
            "[...document.querySelectorAll('#events li')].some((li) => "
            "li.textContent.includes('chaos injected: kill_provider gamma'))"
        )
        # Per-method p50/p95 of a provider, one click away.
        await page.evaluate(
            "document.querySelector('tr.provider[data-key=\"local/ethereum/alpha\"]').click()"
        )
        # (/api/providers is polled every 2 s: the method may need one more poll to appear)
        assert await page.wait_for(
            "document.querySelector('tr.methods tr[data-method=\"eth_getBalance\"] td.num') "
            "?.textContent"
        )

        # Several router processes (workers, nodes): their summaries add up.
        await page.evaluate(
            "(() => { const S = window.lassoDashboard.state; const mine = [...S.nodes.values()][0].s;"
            " window.lassoDashboard.onEvent('stats.summary', {...mine, node: 'elsewhere:1',"
            " ts: S.now, interval_s: 1, decisions: [], subscriptions: [],"
            " chains: mine.chains.map((c) => ({...c, requests: 1000, errors: 0})),"
            " providers: mine.providers.map((p) => ({...p, attempts: 1000}))}); })()"
        )
        assert await page.wait_for(
            "document.getElementById('nodes').textContent === '2 router processes'"
        )
        # ("head" comes first in a card; requests/s second)
        shown = await page.evaluate(
            "[...document.querySelectorAll('.chain-card[data-chain=\"local/base\"] .figures b')]"
            ".map((b) => b.textContent)"
        )
        assert float(shown[1].replace(",", "")) >= 1000, shown

        assert page.console == []
        origins = {u.split("/")[2] for u in page.requests if u.startswith("http")}
        assert origins == {url.split("/")[2]}, page.requests
        assert all(u.startswith(url) for u in page.requests), page.requests

        target = os.environ.get("LASSO_DASHBOARD_SCREENSHOT")
        if target:  # the picture for docs/: a fresh page that sees a breaker and a chaos window
            await _control(
                http, url, "/api/control/breaker/close", {"chain": "ethereum", "provider": "beta"}
            )
            page = await browser.open(url + "/dashboard")
            await asyncio.sleep(4)
            await _control(
                http, url, "/api/control/breaker/open", {"chain": "ethereum", "provider": "gamma"}
            )
            await _control(
                http, url, "/api/control/chaos", {"action": "kill_provider", "target": "gamma"}
            )
            await asyncio.sleep(6)
            body = {"action": "kill_provider", "target": "gamma", "reverted": True}
            await _control(http, url, "/api/control/chaos", body)
            await _control(
                http, url, "/api/control/breaker/close", {"chain": "ethereum", "provider": "gamma"}
            )
            await asyncio.sleep(5)
            await page.evaluate(
                "document.querySelector('tr.provider[data-key=\"local/ethereum/alpha\"]').click()"
            )
        await asyncio.sleep(1.5)  # a little history on the timeline
        shot = tmp_path / "dashboard.png"
        await page.screenshot(shot, width=1400, height=1500)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 60_000
        if target:
            shutil.copyfile(shot, target)
