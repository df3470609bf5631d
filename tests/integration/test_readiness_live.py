"""/ready over real sockets: a provider refusing connections is never counted as usable."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import yaml

from lasso_rpc.battle.providers.fleet import MockFleet
from tests.conftest import RouterFactory, fleet_config

POLL_MS = 300


async def _ready(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url + "/ready") as r:
        return r.status, await r.json()


def _only(fleet: MockFleet, *ids: str) -> str:
    doc = yaml.safe_load(fleet_config(fleet, routing={"head_poll_ms": POLL_MS}))
    chain = doc["chains"]["ethereum"]
    chain["providers"] = [p for p in chain["providers"] if p["id"] in ids]
    return yaml.safe_dump(doc)


async def test_ready_goes_503_within_two_poll_rounds_when_the_provider_refuses(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(text=_only(fleet, "alpha"))
    heads = s.router.resolve("ethereum").heads
    async with asyncio.timeout(10):
        while True:
            if (await _ready(http, s.url))[0] == 200:
                break
            await asyncio.sleep(0.02)
    await fleet["alpha"].stop()  # the port now refuses connections
    rounds0, t0 = heads.rounds, time.monotonic()
    async with asyncio.timeout(10):
        while True:
            status, body = await _ready(http, s.url)
            if status == 503:
                break
            await asyncio.sleep(0.01)
    took_rounds, took_ms = heads.rounds - rounds0, (time.monotonic() - t0) * 1000
    print(f"/ready 503 after {took_rounds} poll round(s), {took_ms:.0f} ms (poll {POLL_MS} ms)")
    # A round in flight when the provider stopped may still have answered; the next fails.
    assert took_rounds <= 2
    assert body["ready"] is False
    [reason] = body["reasons"]
    assert reason.startswith("local/ethereum: no provider answered a health poll within")
    alpha = body["chains"]["local/ethereum"]["providers"]["alpha"]
    assert alpha["usable"] is False and "health poll failed" in alpha["reason"]
    assert body["chains"]["local/ethereum"]["usable_providers"] == []


async def test_a_provider_refusing_from_the_start_is_never_usable(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    text = _only(fleet, "alpha", "beta")
    await fleet["beta"].stop()
    s = await make_router(text=text)
    heads = s.router.resolve("ethereum").heads
    seen: list[list[str]] = []
    async with asyncio.timeout(10):
        while heads.rounds < 3:
            status, body = await _ready(http, s.url)
            seen.append(body["chains"]["local/ethereum"]["usable_providers"])
            await asyncio.sleep(0.02)
    assert all("beta" not in usable for usable in seen)  # not even before any poll answered
    assert status == 200 and seen[-1] == ["alpha"]
    beta = body["chains"]["local/ethereum"]["providers"]["beta"]
    assert "health" in beta["reason"] and "failed" in beta["reason"]
    async with http.get(s.url + "/api/providers") as r:
        rows = {p["id"]: p for p in (await r.json())["providers"]}
    assert rows["alpha"]["usable"] is True and rows["beta"]["usable"] is False
    assert rows["beta"]["health"] == beta["reason"] or "failed" in rows["beta"]["health"]
