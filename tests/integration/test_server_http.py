"""The router's HTTP API on real sockets, in front of a real mock fleet (SPEC §3)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory, fleet_config, rpc

pytestmark = pytest.mark.asyncio
ADDR = "0x" + "11" * 20


@pytest.fixture(params=["fast", "aiohttp"])
def make_router(lasso_router: RouterFactory, request: pytest.FixtureRequest) -> RouterFactory:
    """Every test here runs on both HTTP fronts: the lean one and aiohttp, its reference."""
    front = request.param

    async def factory(
        *, text: str | None = None, server: dict[str, Any] | None = None, **kw: Any
    ) -> RouterServer:
        if text is not None:
            doc = yaml.safe_load(text)
            doc.setdefault("server", {})["front"] = front
            return await lasso_router(text=yaml.safe_dump(doc))
        return await lasso_router(server={**(server or {}), "front": front}, **kw)

    return factory


def _calls(fleet: MockFleet, method: str) -> dict[str, int]:
    return {p.id: p.method_counts.get(method, 0) for p in fleet}


@pytest.mark.parametrize(
    ("path", "strategy"),
    [
        ("/rpc/ethereum", "load-balanced"),
        ("/rpc/eth", "load-balanced"),
        ("/rpc/1", "load-balanced"),
        ("/rpc/fastest/ethereum", "fastest"),
        ("/rpc/load-balanced/mainnet", "load-balanced"),
        ("/rpc/round-robin/ethereum", "load-balanced"),
        ("/rpc/latency-weighted/ethereum", "latency-weighted"),
        ("/rpc/priority/ethereum", "priority"),
        ("/rpc/profile/local/ethereum", "load-balanced"),
        ("/rpc/profile/local/priority/1", "priority"),
    ],
)
async def test_every_route_answers_with_its_strategy(
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    fleet: MockFleet,
    path: str,
    strategy: str,
) -> None:
    s = await make_router()
    status, body, resp = await rpc(
        http, s.url + path + "?include_meta=headers", "eth_getBalance", [ADDR, "latest"]
    )
    assert status == 200 and body["id"] == 1
    assert body["result"].startswith("0x")
    assert resp.headers["X-Lasso-Strategy"] == strategy
    assert resp.headers["X-Lasso-Provider"] in fleet.ids
    assert sum(_calls(fleet, "eth_getBalance").values()) == 1


async def test_pinned_provider_and_profile_route(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    for path in ("/rpc/provider/beta/ethereum", "/rpc/profile/local/provider/beta/eth"):
        status, body, resp = await rpc(
            http,
            s.url + path,
            "eth_getBalance",
            [ADDR, "latest"],
            headers={"X-Lasso-Include-Meta": "headers"},
        )
        assert status == 200 and "result" in body
        assert resp.headers["X-Lasso-Provider"] == "beta"
        assert resp.headers["X-Lasso-Strategy"] == "provider"
    assert _calls(fleet, "eth_getBalance") == {"alpha": 0, "beta": 2, "gamma": 0}


async def test_pinned_provider_does_not_fail_over_unless_asked(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    fleet["beta"].set_failure("http_500")
    _, body, _ = await rpc(
        http, s.url + "/rpc/provider/beta/ethereum", "eth_getBalance", [ADDR, "latest"]
    )
    assert body["error"]["code"] == -32002
    assert [a["provider"] for a in body["error"]["data"]["attempts"]] == ["beta"] * len(
        body["error"]["data"]["attempts"]
    )
    _, body, resp = await rpc(
        http,
        s.url + "/rpc/provider/beta/ethereum?failover=true&include_meta=headers",
        "eth_getBalance",
        [ADDR, "latest"],
    )
    assert "result" in body
    assert resp.headers["X-Lasso-Provider"] != "beta"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/rpc/polygon", "unknown chain"),
        ("/rpc/provider/nope/ethereum", "unknown provider"),
        ("/rpc/profile/nope/ethereum", "unknown profile"),
        ("/rpc/slowest/ethereum", "unknown route"),
    ],
)
async def test_unknown_chain_provider_profile_route(
    make_router: RouterFactory, http: aiohttp.ClientSession, path: str, fragment: str
) -> None:
    s = await make_router()
    status, body, _ = await rpc(http, s.url + path)
    assert status == 200
    assert body["error"]["code"] == -32602
    assert fragment in body["error"]["message"]


async def test_batch_keeps_order_ids_and_skips_notifications(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    fleet["alpha"].set_latency(30)  # answers arrive out of order; the reply must not
    batch = [
        {"jsonrpc": "2.0", "id": "first", "method": "eth_getBalance", "params": [ADDR, "latest"]},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},  # notification
        {"jsonrpc": "1.0", "id": 4, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": None, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": "BIG", "method": "eth_gasPrice", "params": []},
        {"jsonrpc": "2.0", "id": 7, "method": "eth_sign", "params": ["0x1", "0x2"]},
    ]
    # An id beyond 64 bits must come back digit for digit.
    raw = orjson.dumps(batch).replace(b'"BIG"', b"18446744073709551617")
    async with http.post(s.url + "/rpc/ethereum", data=raw) as r:
        status, body = r.status, json.loads(await r.read())
    assert status == 200
    assert [item.get("id", "missing") for item in body] == [
        "first",
        2,
        4,
        None,
        18446744073709551617,
        7,
    ]
    assert body[0]["result"].startswith("0x")
    assert body[1]["result"] == "0x1"
    assert body[2]["error"]["code"] == -32600
    assert body[3]["result"].startswith("0x")
    assert "result" in body[4]
    assert body[5]["error"]["code"] == -32601


async def test_batch_limits(make_router: RouterFactory, http: aiohttp.ClientSession) -> None:
    s = await make_router(routing={"max_batch_size": 3})
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", body=[])
    assert body["error"]["code"] == -32600 and body["id"] is None
    big = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(4)]
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", body=big)
    assert isinstance(body, dict) and body["error"]["code"] == -32600
    notes = [{"jsonrpc": "2.0", "method": "eth_chainId"}] * 2
    status, body, _ = await rpc(http, s.url + "/rpc/ethereum", body=notes)
    assert status == 204 and body is None


async def test_notification_gets_204_and_is_forwarded(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    status, body, _ = await rpc(
        http,
        s.url + "/rpc/ethereum",
        body={"jsonrpc": "2.0", "method": "eth_getBalance", "params": [ADDR]},
    )
    assert status == 204 and body is None
    assert sum(_calls(fleet, "eth_getBalance").values()) == 1


async def test_client_id_is_returned_unchanged(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    for cid in ["abc", 0, -5, "0x1", 12345678901234567890, None, "ünï"]:
        _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_blockNumber", id=cid)
        assert body["id"] == cid


async def test_chain_id_is_answered_locally(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    for _ in range(3):
        _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_chainId")
        assert body["result"] == "0x1"
    assert sum(_calls(fleet, "eth_chainId").values()) == 0


async def test_parse_and_invalid_request_errors(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", body=b'{"jsonrpc": "2.0", "id": 1, "meth')
    assert body["error"]["code"] == -32700 and body["id"] is None
    _, body, _ = await rpc(
        http, s.url + "/rpc/ethereum", body={"jsonrpc": "2.0", "id": 1, "method": 7}
    )
    assert body["error"]["code"] == -32600
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", body=b"12")
    assert body["error"]["code"] == -32600


@pytest.mark.parametrize(
    "method", ["eth_sendTransaction", "eth_sign", "personal_unlockAccount", "eth_accounts"]
)
async def test_signing_methods_are_refused_and_never_forwarded(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet, method: str
) -> None:
    s = await make_router()
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", method, [{}])
    assert body["error"]["code"] == -32601
    assert sum(_calls(fleet, method).values()) == 0


async def test_subscribe_over_http_points_to_websocket(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    _, body, _ = await rpc(http, s.url + "/rpc/eth", "eth_subscribe", ["newHeads"])
    assert body["error"]["code"] == -32601
    assert body["error"]["data"]["websocket_url"].endswith("/ws/rpc/ethereum")


async def test_no_provider_available(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    deny = {"methods": {"deny": ["trace_*"]}}
    s = await make_router(providers={"alpha": deny, "beta": deny, "gamma": deny})
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "trace_block", ["latest"])
    assert body["error"]["code"] == -32001
    assert {x["provider"] for x in body["error"]["data"]["skipped"]} == {"alpha", "beta", "gamma"}


async def test_all_attempts_failed_lists_each_attempt(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    for p in fleet:
        p.set_failure("http_500", http_status=503)
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_getBalance", [ADDR, "latest"])
    err = body["error"]
    assert err["code"] == -32002
    attempts = err["data"]["attempts"]
    assert len(attempts) == 3
    assert {a["provider"] for a in attempts} == {"alpha", "beta", "gamma"}
    assert all(a["error_class"] == "provider" for a in attempts)


async def test_deadline_exceeded(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(routing={"request_timeout_ms": 300})
    for p in fleet:
        p.set_failure("hang")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_getBalance", [ADDR, "latest"])
    assert body["error"]["code"] == -32003
    assert loop.time() - t0 < 2.0
    for p in fleet:
        p.heal()


async def test_body_too_large(make_router: RouterFactory, http: aiohttp.ClientSession) -> None:
    s = await make_router(routing={"max_body_bytes": 1024})
    status, body, _ = await rpc(
        http, s.url + "/rpc/ethereum", "eth_call", [{"data": "0x" + "ab" * 2000}]
    )
    assert status == 413 and body["error"]["code"] == -32004


async def test_client_rate_limit(make_router: RouterFactory, http: aiohttp.ClientSession) -> None:
    s = await make_router(server={"rate_limit": {"requests_per_second": 0.01, "burst": 2}})
    codes = [(await rpc(http, s.url + "/rpc/ethereum", "eth_chainId"))[:2] for _ in range(3)]
    assert [c[0] for c in codes] == [200, 200, 429]
    assert codes[2][1]["error"]["code"] == -32005


async def test_upstream_client_errors_pass_through_without_failover(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    _, body, _ = await rpc(
        http,
        s.url + "/rpc/ethereum",
        "eth_call",
        [{"to": "0x1", "data": "0xdeadbeef"}, "latest"],
        id="r",
    )
    assert body["id"] == "r"
    assert body["error"]["code"] == 3 and "revert" in body["error"]["message"]
    assert sum(_calls(fleet, "eth_call").values()) == 1


async def test_include_meta_body(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    _, body, _ = await rpc(
        http, s.url + "/rpc/priority/ethereum?include_meta=body", "eth_getBalance", [ADDR, "latest"]
    )
    meta = body["lasso_meta"]
    assert meta["provider"] == "alpha" and meta["strategy"] == "priority"
    assert meta["attempts"] == 1 and meta["attempt_list"][0]["outcome"] == "ok"
    assert "alpha" in meta["explanation"] and meta["request_id"]
    _, body, resp = await rpc(
        http,
        s.url + "/rpc/priority/ethereum?include_meta=headers",
        "eth_getBalance",
        [ADDR, "latest"],
    )
    assert "lasso_meta" not in body
    assert resp.headers["X-Lasso-Attempts"] == "1"
    assert float(resp.headers["X-Lasso-Latency-Ms"]) >= 0
    assert resp.headers["X-Lasso-Request-Id"]


SECRET = "SuperSecretKey12345"


async def test_secrets_are_masked_in_errors_metrics_api_and_logs(
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    fleet: MockFleet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = fleet_config(fleet).replace(fleet["alpha"].url, fleet["alpha"].url + "/v2/${ALPHA_KEY}")
    import os

    os.environ["ALPHA_KEY"] = SECRET
    try:
        s = await make_router(text=text)
    finally:
        del os.environ["ALPHA_KEY"]
    caplog.set_level(logging.DEBUG, logger="lasso_rpc")
    fleet["alpha"].set_failure("http_500")
    fleet["beta"].set_failure("http_500")
    fleet["gamma"].set_failure("http_500")
    _, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_getBalance", [ADDR, "latest"])
    assert body["error"]["code"] == -32002
    await fleet["alpha"].stop()
    _, body2, _ = await rpc(
        http, s.url + "/rpc/provider/alpha/ethereum", "eth_getBalance", [ADDR, "latest"]
    )
    async with http.get(s.url + "/metrics") as r:
        metrics = await r.text()
    async with http.get(s.url + "/api/providers") as r:
        providers = await r.text()
    everything = orjson.dumps([body, body2]).decode() + metrics + providers + caplog.text
    assert "lasso_requests_total" in metrics and "api/providers" not in metrics
    assert SECRET not in everything
    assert "/v2/" not in providers
    assert "WARNING" in caplog.text or "warning" in caplog.text.lower()


async def test_metrics_content(make_router: RouterFactory, http: aiohttp.ClientSession) -> None:
    s = await make_router()
    for _ in range(3):
        await rpc(http, s.url + "/rpc/priority/ethereum", "eth_getBalance", [ADDR, "latest"])
    async with http.get(s.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    assert (
        'lasso_requests_total{chain="ethereum",method="eth_getBalance",provider="alpha",status="ok",transport="http"} 3.0'
        in text
    )
    assert (
        'lasso_request_duration_seconds_count{chain="ethereum",method="eth_getBalance"} 3.0' in text
    )
    assert (
        'lasso_upstream_attempts_total{chain="ethereum",outcome="ok",provider="alpha"} 3.0' in text
    )
    assert 'lasso_breaker_state{chain="ethereum",profile="local",provider="alpha"} 0.0' in text
    assert 'lasso_in_flight{chain="ethereum",profile="local",provider="beta"} 0.0' in text


async def test_api_providers_and_chains(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router()
    for _ in range(4):
        await rpc(http, s.url + "/rpc/priority/ethereum", "eth_getBalance", [ADDR, "latest"])
    for _ in range(50):  # wait for the first head poll
        async with http.get(s.url + "/api/providers?chain=eth") as r:
            data = await r.json()
        if all(p["head"] is not None for p in data["providers"]):
            break
        await asyncio.sleep(0.05)
    by_id = {p["id"]: p for p in data["providers"]}
    assert set(by_id) == {"alpha", "beta", "gamma"}
    alpha = by_id["alpha"]
    assert alpha["breaker"]["state"] == "closed"
    assert alpha["head"] == fleet.chain.head.number and alpha["lag"] == 0
    assert alpha["in_flight"] == 0 and alpha["cordoned"] is False
    m = alpha["stats"]["http"]["methods"]["eth_getBalance"]
    assert m["samples"] == 4 and m["success_rate"] == 1.0 and m["p50"] > 0 and m["p95"] >= m["p50"]
    async with http.get(s.url + "/api/chains") as r:
        chains = (await r.json())["chains"]
    assert (
        chains[0]["name"] == "ethereum"
        and chains[0]["chain_id"] == 1
        and "eth" in chains[0]["aliases"]
    )


async def test_health_ready_and_event_stream(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    async with http.get(s.url + "/health") as r:
        assert r.status == 200
    # Ready once a health poll answered (the first round runs just after start).
    for _ in range(100):
        async with http.get(s.url + "/ready") as r:
            status, ready = r.status, (await r.json())["ready"]
        if status == 200:
            break
        await asyncio.sleep(0.02)
    assert status == 200 and ready is True
    async with http.get(s.url + "/api/events?types=request.finished") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        await r.content.readline()
        await r.content.readline()
        await rpc(http, s.url + "/rpc/ethereum", "eth_getBalance", [ADDR, "latest"])
        lines = []
        while True:
            line = await asyncio.wait_for(r.content.readline(), 5)
            if line == b"\n":
                break
            lines.append(line.decode())
    assert lines[0].strip() == "event: request.finished"
    ev = orjson.loads(lines[1].removeprefix("data: "))
    assert (
        ev["method"] == "eth_getBalance"
        and ev["status"] == "ok"
        and ev["attempts"][0]["outcome"] == "ok"
    )
    assert ev["explanation"]
    for p in s.router.chains()[0].providers.values():
        p.cordoned = True
    async with http.get(s.url + "/ready") as r:
        assert r.status == 503


async def test_large_and_chunked_bodies_are_read_whole(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(routing={"max_body_bytes": 200_000})
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": ["x" * 3000]}
        for i in range(40)
    ]
    raw = orjson.dumps(batch)
    assert 100_000 < len(raw) < 200_000

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(raw), 7000):
            yield raw[i : i + 7000]
            await asyncio.sleep(0)

    async with http.post(
        s.url + "/rpc/ethereum", data=chunks(), headers={"Content-Type": "application/json"}
    ) as r:
        body = await r.json()
    assert len(body) == 40 and all(item["result"] == "0x1" for item in body)
    async with http.post(
        s.url + "/rpc/ethereum", data=raw * 2, headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 413

    async def too_big():  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield raw

    async with http.post(
        s.url + "/rpc/ethereum", data=too_big(), headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == -32004
