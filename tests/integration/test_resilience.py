"""Resilience seen from the client: failover, hedging, rate limits, writes, outages, lag."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from tests.conftest import RouterFactory, rpc

pytestmark = pytest.mark.chaos
ADDR = "0x" + "33" * 20
RAW_TX = "0x02f87001808459682f00850c9f5e0c0082520894" + "44" * 20 + "880de0b6b3a764000080c0"


def _count(fleet: MockFleet, method: str) -> dict[str, int]:
    return {p.id: p.method_counts.get(method, 0) for p in fleet}


async def _load(http: aiohttp.ClientSession, url: str, n: int, conc: int = 8) -> list[dict]:
    out: list[dict] = []
    it = iter(range(n))

    async def worker() -> None:
        for _ in it:
            _, body, _ = await rpc(http, url, "eth_getBalance", [ADDR, "latest"])
            out.append(body)

    await asyncio.gather(*(worker() for _ in range(conc)))
    return out


async def test_provider_stopped_mid_load_loses_no_request(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    url = s.url + "/rpc/load-balanced/ethereum?include_meta=body"
    load = asyncio.create_task(_load(http, url, 400))
    await asyncio.sleep(0.05)
    await fleet["alpha"].stop()
    bodies = await load
    assert len(bodies) == 400
    assert all("result" in b for b in bodies), [b for b in bodies if "result" not in b][:3]
    failed_over = [b for b in bodies if b["lasso_meta"]["attempts"] > 1]
    assert failed_over, "the stop must have caused at least one failover"
    assert all(b["lasso_meta"]["provider"] != "alpha" for b in failed_over)


async def test_hanging_provider_is_hedged_and_requests_stay_fast(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(
        routing={"hedge": {"enabled": True, "after": 100}, "request_timeout_ms": 5000}
    )
    url = s.url + "/rpc/priority/ethereum?include_meta=body"
    fleet["alpha"].set_failure("hang")
    loop = asyncio.get_running_loop()
    for _ in range(5):
        t0 = loop.time()
        _, body, _ = await rpc(http, url, "eth_getBalance", [ADDR, "latest"])
        assert "result" in body
        assert loop.time() - t0 < 2.0  # hedge after 100 ms, far inside the 5 s deadline
        meta = body["lasso_meta"]
        assert meta["provider"] == "beta" and meta["hedged"] is True
        outcomes = {a["provider"]: a["outcome"] for a in meta["attempt_list"]}
        assert outcomes == {"alpha": "cancelled", "beta": "ok"}
    fleet["alpha"].heal()


async def test_hanging_provider_without_hedging_times_out_within_deadline(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(routing={"attempt_timeout_ms": 300, "request_timeout_ms": 3000})
    fleet["alpha"].set_failure("hang")
    _, body, _ = await rpc(
        http, s.url + "/rpc/priority/ethereum?include_meta=body", "eth_getBalance", [ADDR]
    )
    assert "result" in body
    attempts = body["lasso_meta"]["attempt_list"]
    assert [a["provider"] for a in attempts] == ["alpha", "beta"]
    assert attempts[0]["outcome"] == "provider" and 250 <= attempts[0]["latency_ms"] < 1500
    fleet["alpha"].heal()


async def test_rate_limited_provider_loses_traffic_then_gets_it_back(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(
        routing={"breaker": {"rate_limit_threshold": 2, "recovery_ms": 300, "jitter": 0}}
    )
    url = s.url + "/rpc/priority/ethereum?include_meta=body"
    fleet["alpha"].configure(failure_mode="rate_limit", retry_after_s=0)
    bodies = await _load(http, url, 40, conc=2)
    assert all("result" in b for b in bodies)
    served = [b["lasso_meta"]["provider"] for b in bodies]
    assert served.count("alpha") == 0
    alpha_calls = _count(fleet, "eth_getBalance")["alpha"]
    assert alpha_calls <= 4, "backoff and the breaker must keep traffic away from a 429ing provider"
    fleet["alpha"].heal()
    for _ in range(60):  # the background probe closes the breaker after recovery_ms
        await asyncio.sleep(0.1)
        _, body, _ = await rpc(http, url, "eth_getBalance", [ADDR])
        if body["lasso_meta"]["provider"] == "alpha":
            break
    else:
        pytest.fail("traffic never came back to the recovered provider")


async def test_execution_reverted_returns_at_once_upstream_hit_once(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    # Hedging on, but later than the answer: a 1 ms hedge raced the revert under load, and a
    # hedge sent before the answer is a second upstream hit by design, not a failover.
    s = await make_router(routing={"hedge": {"enabled": True, "after": 2000}})
    _, body, _ = await rpc(
        http,
        s.url + "/rpc/ethereum?include_meta=body",
        "eth_call",
        [{"to": ADDR, "data": "0xdeadbeef"}, "latest"],
    )
    assert body["error"]["code"] == 3 and "reverted" in body["error"]["message"]
    assert sum(_count(fleet, "eth_call").values()) == 1


async def test_send_raw_transaction_against_500_reaches_exactly_one_provider(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(routing={"hedge": {"enabled": True, "after": 1}})
    for p in fleet:
        p.set_failure("http_500")
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_sendRawTransaction", [RAW_TX])
    assert body["error"]["code"] == -32002
    assert len(body["error"]["data"]["attempts"]) == 1
    assert sum(_count(fleet, "eth_sendRawTransaction").values()) == 1


async def test_send_raw_transaction_retried_only_when_never_sent(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    await fleet["alpha"].stop()  # connection refused: the transaction certainly never left
    _, body, _ = await rpc(
        http, s.url + "/rpc/priority/ethereum?include_meta=body", "eth_sendRawTransaction", [RAW_TX]
    )
    assert body["result"].startswith("0x")
    assert [a["provider"] for a in body["lasso_meta"]["attempt_list"]] == ["alpha", "beta"]
    assert sum(_count(fleet, "eth_sendRawTransaction").values()) == 1
    # the same transaction again: "already known" is a success for a write
    _, again, _ = await rpc(
        http, s.url + "/rpc/priority/ethereum", "eth_sendRawTransaction", [RAW_TX]
    )
    assert "error" not in again or "already known" in again["error"]["message"]


async def test_all_down_gives_clean_error_within_deadline_then_full_recovery(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(
        routing={
            "request_timeout_ms": 1000,
            "breaker": {"failure_threshold": 2, "recovery_ms": 200, "jitter": 0},
        }
    )
    url = s.url + "/rpc/ethereum"
    for p in fleet:
        await p.stop()
    loop = asyncio.get_running_loop()
    for _ in range(10):
        t0 = loop.time()
        _, body, _ = await rpc(http, url, "eth_getBalance", [ADDR])
        assert body["error"]["code"] in (-32001, -32002)
        assert loop.time() - t0 < 1.5
    for p in fleet:
        await p.start()
    for _ in range(50):
        await asyncio.sleep(0.1)
        _, body, _ = await rpc(http, url, "eth_getBalance", [ADDR])
        if "result" in body:
            break
    bodies = await _load(http, url, 60)
    assert all("result" in b for b in bodies)
    async with http.get(s.url + "/api/providers") as r:
        states = {p["id"]: p["breaker"]["state"] for p in (await r.json())["providers"]}
    for _ in range(30):
        if set(states.values()) == {"closed"}:
            break
        await asyncio.sleep(0.1)
        await _load(http, url, 10)
        async with http.get(s.url + "/api/providers") as r:
            states = {p["id"]: p["breaker"]["state"] for p in (await r.json())["providers"]}
    assert set(states.values()) == {"closed"}, states


async def test_dead_provider_without_traffic_is_detected_by_head_probes(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(routing={"breaker": {"failure_threshold": 2, "recovery_ms": 60000}})
    await fleet["gamma"].stop()
    for _ in range(60):
        async with http.get(s.url + "/api/providers") as r:
            gamma = next(p for p in (await r.json())["providers"] if p["id"] == "gamma")
        if gamma["breaker"]["state"] == "open":
            break
        await asyncio.sleep(0.05)
    assert gamma["breaker"]["state"] == "open"
    async with http.get(s.url + "/ready") as r:
        assert (await r.json())["chains"]["local/ethereum"]["usable_providers"] == ["alpha", "beta"]


async def test_lagging_provider_skipped_for_latest(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    fleet["alpha"].set_lag(20)
    s = await make_router(routing={"max_lag_blocks": 5})
    for _ in range(50):  # wait until the head tracker has seen the lag
        async with http.get(s.url + "/api/providers") as r:
            lags = {p["id"]: p["lag"] for p in (await r.json())["providers"]}
        if lags.get("alpha") == 20:
            break
        await asyncio.sleep(0.05)
    assert lags == {"alpha": 20, "beta": 0, "gamma": 0}
    url = s.url + "/rpc/priority/ethereum?include_meta=body"
    _, body, _ = await rpc(http, url, "eth_getBlockByNumber", ["latest", False])
    assert body["lasso_meta"]["provider"] == "beta"
    assert int(body["result"]["number"], 16) == fleet.chain.head.number
    assert "alpha (lagging 20 blocks)" in body["lasso_meta"]["explanation"]
    # a historical block is not head-sensitive: the lagging provider may serve it
    _, body, _ = await rpc(http, url, "eth_getBlockByNumber", ["0x1", False])
    assert body["lasso_meta"]["provider"] == "alpha"


async def test_breaker_changes_show_in_events_metrics_and_api(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(routing={"breaker": {"failure_threshold": 3, "recovery_ms": 60000}})
    events: list = []
    s.router.bus.subscribe(lambda ev: events.append(ev) if ev.kind == "breaker.changed" else None)
    fleet["alpha"].set_failure("http_500")
    url = s.url + "/rpc/priority/ethereum"
    for _ in range(5):
        _, body, _ = await rpc(http, url, "eth_getBalance", [ADDR])
        assert "result" in body
    assert [(e.provider, e.from_state, e.to_state) for e in events][:1] == [
        ("alpha", "closed", "open")
    ]
    async with http.get(s.url + "/metrics") as r:
        text = await r.text()
    assert 'lasso_breaker_state{chain="ethereum",profile="local",provider="alpha"} 2.0' in text
    assert (
        'lasso_breaker_transitions_total{chain="ethereum",provider="alpha",to_state="open"} 1.0'
        in text
    )
    async with http.get(s.url + "/api/providers") as r:
        alpha = next(p for p in (await r.json())["providers"] if p["id"] == "alpha")
    assert alpha["breaker"]["state"] == "open"
    # head probes count too, so at most the threshold of user requests ever reached alpha
    assert _count(fleet, "eth_getBalance")["alpha"] <= 3


async def test_response_over_the_cap_is_refused_once_without_charging_providers(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(routing={"max_response_bytes": 2048})
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_getBlockByNumber", ["latest", True])
    assert body["error"]["code"] == -32004 and "max_response_bytes" in body["error"]["message"]
    assert sum(_count(fleet, "eth_getBlockByNumber").values()) == 1
    async with http.get(s.url + "/api/providers") as r:
        assert all(p["breaker"]["consecutive_failures"] == 0 for p in (await r.json())["providers"])


async def test_a_short_stall_of_every_provider_is_not_a_long_outage(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    # Every breaker trips during the stall; clients must be served again as soon as it ends,
    # not after the 60 s recovery delay.
    s = await make_router(
        routing={
            "attempt_timeout_ms": 200,
            "request_timeout_ms": 600,
            "breaker": {"failure_threshold": 2, "recovery_ms": 60000},
        }
    )
    for p in fleet:
        p.set_failure("hang")
    await _load(http, s.url + "/rpc/ethereum", 12, conc=6)
    async with http.get(s.url + "/api/providers") as r:
        assert {p["breaker"]["state"] for p in (await r.json())["providers"]} == {"open"}
    for p in fleet:
        p.heal()
    bodies = await _load(http, s.url + "/rpc/ethereum", 30, conc=3)
    assert all("result" in b for b in bodies), bodies[:2]
