"""Strategies measured on real sockets against mock providers of different latencies."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory, rpc

ADDR = "0x" + "22" * 20


@pytest.fixture
def make_router(lasso_router: RouterFactory) -> RouterFactory:
    """Routers without in-flight dedup: every call here is counted where it lands, so
    identical calls in flight at once must not share one upstream call."""

    async def factory(**kw: Any) -> RouterServer:
        kw["routing"] = {"shaping": {"dedup": False}, **(kw.get("routing") or {})}
        return await lasso_router(**kw)

    return factory


async def _send(http: aiohttp.ClientSession, url: str, n: int, conc: int = 4) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for _ in it:
            status, body, _ = await rpc(http, url, "eth_getBalance", [ADDR, "latest"])
            assert status == 200 and "result" in body, body

    await asyncio.gather(*(worker() for _ in range(conc)))


def _share(fleet: MockFleet) -> dict[str, int]:
    return {p.id: p.method_counts.get("eth_getBalance", 0) for p in fleet}


async def test_fastest_sends_at_least_90_percent_to_the_really_fastest(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    # gamma is the fastest, and last in priority order: the ranking must come from measurement.
    for pid, ms in {"alpha": 30.0, "beta": 15.0, "gamma": 4.0}.items():
        fleet[pid].set_latency(ms, ms * 0.1)
    s = await make_router()
    url = s.url + "/rpc/fastest/ethereum"
    await _send(http, url, 30)  # warm-up: every provider gets its samples
    warm = _share(fleet)
    assert all(v >= 1 for v in warm.values()), warm  # no provider left untried
    fleet.reset_counters()
    await _send(http, url, 200)
    share = _share(fleet)
    assert sum(share.values()) == 200
    assert share["gamma"] >= 180, share


async def test_load_balanced_spreads_evenly_across_equal_providers(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    for p in fleet:
        p.set_latency(2.0, 1.0)
    s = await make_router()
    await _send(http, s.url + "/rpc/load-balanced/ethereum", 300, conc=6)
    share = _share(fleet)
    assert sum(share.values()) == 300
    for pid, n in share.items():
        assert 85 <= n <= 115, (pid, share)  # within ±15% of 100


async def test_load_balanced_respects_weights(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(
        providers={"alpha": {"weight": 3}, "beta": {"weight": 1}, "gamma": {"weight": 1}}
    )
    await _send(http, s.url + "/rpc/round-robin/ethereum", 250)
    share = _share(fleet)
    assert 135 <= share["alpha"] <= 165, share
    assert 35 <= share["beta"] <= 65 and 35 <= share["gamma"] <= 65, share


async def test_priority_follows_priority_and_fails_over_in_order(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(
        providers={"alpha": {"priority": 3}, "beta": {"priority": 1}, "gamma": {"priority": 2}},
        routing={"breaker": {"failure_threshold": 100}},
    )
    url = s.url + "/rpc/priority/ethereum"
    await _send(http, url, 50)
    assert _share(fleet) == {"alpha": 0, "beta": 50, "gamma": 0}
    fleet.reset_counters()
    fleet["beta"].set_failure("http_500")
    _, body, _resp = await rpc(http, url + "?include_meta=body", "eth_getBalance", [ADDR, "latest"])
    assert body["lasso_meta"]["provider"] == "gamma"
    assert [a["provider"] for a in body["lasso_meta"]["attempt_list"]] == ["beta", "gamma"]


async def test_latency_weighted_prefers_fast_but_still_uses_slow(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    for pid, ms in {"alpha": 3.0, "beta": 12.0, "gamma": 12.0}.items():
        fleet[pid].set_latency(ms)
    s = await make_router()
    url = s.url + "/rpc/latency-weighted/ethereum"
    await _send(http, url, 30)
    fleet.reset_counters()
    await _send(http, url, 200)
    share = _share(fleet)
    assert share["alpha"] > share["beta"] and share["alpha"] > share["gamma"], share
    assert share["alpha"] >= 120, share
