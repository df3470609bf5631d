"""The dashboard over HTTP: the page and its assets, and the summary feed on /api/events."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import orjson

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.config import load_config_text
from tests.conftest import RouterFactory, fleet_config, rpc


async def test_page_and_assets_come_from_the_router_with_a_strict_policy(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    async with http.get(s.url + "/dashboard") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        csp = r.headers["Content-Security-Policy"]
        page = await r.text()
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "http" not in csp
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs == ["dashboard/app.css", "dashboard/app.js"]  # relative: works behind a prefix
    for path, ctype in (
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ):
        async with http.get(s.url + path) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith(ctype)
            body = await r.text()
        body = body.replace('"http://www.w3.org/2000/svg"', "")  # a namespace, not a fetch
        assert "http://" not in body and "https://" not in body  # nothing fetched from elsewhere
    async with http.get(s.url + "/dashboard/", allow_redirects=False) as r:
        assert r.status == 301 and r.headers["Location"] == "../dashboard"
    async with http.get(s.url + "/api/subscriptions") as r:
        assert (await r.json()) == {"subscriptions": []}


async def _frames(resp: aiohttp.ClientResponse) -> Any:
    event = None
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, orjson.loads(line[6:])


async def test_summaries_flow_only_to_streams_that_ask_for_them(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    bus = s.router.bus  # the feed reads the metrics' tables: it adds no handler per request

    def handlers() -> int:
        return int(re.search(r"handlers=(\d+)", repr(bus)).group(1))  # type: ignore[union-attr]

    idle = handlers()
    async with http.get(s.url + "/api/events?types=breaker.changed") as r:
        await r.content.readline()
        assert handlers() == idle
    async with http.get(s.url + "/api/events?types=stats.summary,breaker.changed") as r:
        frames = _frames(r)
        kind, first = await asyncio.wait_for(anext(frames), 5)
        assert kind == "stats.summary" and first["node"] and first["interval_s"] > 0
        assert handlers() == idle
        for _ in range(5):
            assert (await rpc(http, s.url + "/rpc/ethereum", "eth_blockNumber"))[0] == 200
        requests = 0
        async with asyncio.timeout(5):
            while requests < 5:
                kind, d = await anext(frames)
                if kind == "stats.summary":
                    requests += d["chains"][0]["requests"]
                    providers = {p["provider"]: p for p in d["providers"]}
        assert requests == 5
        assert set(providers) == {"alpha", "beta", "gamma"}
        assert {"breaker", "usable", "health", "head", "lag", "in_flight"} <= set(
            providers["alpha"]
        )
        assert sum(p["attempts"] for p in providers.values()) >= 1


def test_dashboard_block_is_read_from_one_file(fleet: MockFleet) -> None:
    text = fleet_config(fleet, extra={"dashboard": {"enabled": True}})
    assert load_config_text([("a.yaml", text)]).dashboard.enabled is True
    assert load_config_text([("a.yaml", fleet_config(fleet))]).dashboard.enabled is False
