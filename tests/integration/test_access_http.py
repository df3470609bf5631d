"""API keys and client limits as a client meets them (issue 13): over HTTP on both fronts, over
WebSocket, and shared by two router nodes through Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import yaml

from lasso_rpc.access.redis_keys import add_key
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.redis_server import RedisServer
from lasso_rpc.config import load_config_text
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory, fleet_config, rpc

KEY = "acme-secret-key-0001"
OTHER = "zeta-secret-key-0002"


def access(**extra: Any) -> dict[str, Any]:
    return {
        "access": {
            "keys": [
                {
                    "key": KEY,
                    "name": "acme",
                    "rate_limit": {"rps": 0.01, "burst": 5},
                    "methods": [
                        {"methods": ["eth_getLogs"], "rate_limit": {"rps": 0.01, "burst": 1}}
                    ],
                },
                {"key": OTHER, "quota": {"requests": 2, "period": "day"}},
            ],
            **extra,
        }
    }


async def test_a_key_is_required_and_read_from_a_header_or_the_path(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(extra=access())
    url = s.url + "/rpc/ethereum"
    status, body, _ = await rpc(http, url)
    assert status == 401 and body["error"]["code"] == -32006
    assert "API key is required" in body["error"]["message"]
    status, body, _ = await rpc(http, url, headers={"X-Lasso-Key": "wrong-key-00000"})
    assert status == 401 and body["error"]["message"] == "unknown API key"
    for headers, u in (
        ({"X-Lasso-Key": KEY}, url),
        ({"Authorization": f"Bearer {KEY}"}, url),
        ({}, f"{s.url}/rpc/key/{KEY}/fastest/ethereum"),
    ):
        status, body, _ = await rpc(http, u, headers=headers)
        assert status == 200 and "result" in body, (headers, u, body)
    async with http.get(s.url + "/metrics") as r:
        text = await r.text()
    assert 'lasso_access_requests_total{client="acme",outcome="allowed"} 3.0' in text
    assert 'client="unknown",outcome="unauthorized"' in text
    assert KEY not in text and "wrong-key" not in text


async def test_over_its_limit_a_key_gets_429_with_retry_after(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(extra=access())
    url = s.url + "/rpc/ethereum"
    headers = {"X-Lasso-Key": KEY}
    status, _, _ = await rpc(http, url, "eth_getLogs", [{}], headers=headers)
    assert status == 200
    status, body, resp = await rpc(http, url, "eth_getLogs", [{}], headers=headers)
    assert status == 429 and body["error"]["code"] == -32005  # the method rule
    assert body["error"]["data"]["limit"] == "methods rate_limit"
    assert int(resp.headers["Retry-After"]) >= 99
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []} for i in range(4)
    ]
    status, body, _ = await rpc(http, url, body=batch, headers=headers)  # 1 + 4 = the burst of 5
    assert status == 200 and len(body) == 4
    status, body, resp = await rpc(http, url, headers=headers)
    assert status == 429 and body["error"]["data"]["limit"] == "rate_limit"
    assert "Retry-After" in resp.headers

    # aiohttp's front (a chunked body goes there) answers the same
    async def chunks() -> Any:
        yield b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'

    async with http.post(url, data=chunks(), headers=headers) as r:
        assert r.status == 429 and "Retry-After" in r.headers
        assert (await r.json())["error"]["code"] == -32005
    # another key has its own quota
    for i in range(3):
        status, body, _ = await rpc(http, url, headers={"X-Lasso-Key": OTHER})
        assert (status, i < 2) in ((200, True), (429, False))


async def test_a_key_serves_its_profile_only(fleet: MockFleet, http: aiohttp.ClientSession) -> None:
    default = fleet_config(fleet, extra={"access": {"keys": [{"key": KEY, "profile": "other"}]}})
    doc = yaml.safe_load(fleet_config(fleet))
    doc.pop("server")
    doc.update(slug="other", name="Other")
    doc["chains"]["ethereum"]["chain_id"] = 5  # eth_chainId tells which profile answered
    cfg = load_config_text([("a.yaml", default), ("b.yaml", yaml.safe_dump(doc))])
    assert len(cfg.profiles) == 2 and cfg.default_profile != "other"
    async with RouterServer(cfg, port=0) as s:
        headers = {"X-Lasso-Key": KEY}
        status, body, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_chainId", headers=headers)
        assert status == 200 and body["result"] == "0x5"
        path = f"/rpc/profile/{cfg.default_profile}/ethereum"
        status, body, _ = await rpc(http, s.url + path, headers=headers)
        assert status == 403 and body["error"]["code"] == -32006


async def test_websocket_clients_need_a_key_and_keep_to_its_limits(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(extra=access())
    ws_url = s.url.replace("http", "ws", 1) + "/ws/rpc/ethereum"
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        async with http.ws_connect(ws_url):
            pass
    assert exc.value.status == 401
    async with http.ws_connect(ws_url, headers={"X-Lasso-Key": KEY}) as ws:
        codes = []
        for i in range(7):
            await ws.send_json(
                {"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []}
            )
            msg = await ws.receive_json(timeout=5)
            codes.append(msg.get("error", {}).get("code"))
        assert codes == [None] * 5 + [-32005, -32005]


async def test_a_key_over_quota_on_one_node_is_over_quota_on_the_other(
    fleet: MockFleet, redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    text = fleet_config(
        fleet,
        extra={
            "state": {"backend": "redis", "url": redis_server.url},
            **access(redis_keys=True),
        },
    )
    async with (
        RouterServer(load_config_text([("a.yaml", text)]), port=0) as a,
        RouterServer(load_config_text([("b.yaml", text)]), port=0) as b,
    ):
        headers = {"X-Lasso-Key": OTHER}  # quota: 2 a day
        assert (await rpc(http, a.url + "/rpc/ethereum", headers=headers))[0] == 200
        assert (await rpc(http, a.url + "/rpc/ethereum", headers=headers))[0] == 200
        status, body, resp = await rpc(http, b.url + "/rpc/ethereum", headers=headers)
        assert status == 429 and body["error"]["data"]["limit"] == "quota"
        assert int(resp.headers["Retry-After"]) >= 1
        # a key added to Redis works on every node at once
        redis_client = a.cluster.redis_guard.client  # type: ignore[union-attr]
        await add_key(
            redis_client,
            "lasso",
            "stored-key-000003",
            {"name": "stored", "rate_limit": {"rps": 0.01, "burst": 1}},
        )
        stored = {"Authorization": "Bearer stored-key-000003"}
        assert (await rpc(http, b.url + "/rpc/ethereum", headers=stored))[0] == 200
        assert (await rpc(http, a.url + "/rpc/ethereum", headers=stored))[0] == 429


async def test_limits_fail_open_while_redis_is_down(
    fleet: MockFleet, redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    text = fleet_config(
        fleet,
        extra={"state": {"backend": "redis", "url": redis_server.url, "retry_ms": 100}, **access()},
    )
    async with RouterServer(load_config_text([("a.yaml", text)]), port=0) as a:
        headers = {"X-Lasso-Key": OTHER}
        await redis_server.kill()
        for _ in range(6):  # quota of 2, but nothing can count it: open by default
            status, body, _ = await rpc(http, a.url + "/rpc/ethereum", headers=headers)
            assert status == 200 and "result" in body
        async with http.get(a.url + "/metrics") as r:
            text = await r.text()
        assert 'lasso_access_fallbacks_total{mode="open",store="redis"} 6.0' in text
        await redis_server.restart()
        for _ in range(100):
            if a.cluster is not None and a.cluster.sync.status().connected:
                break
            await asyncio.sleep(0.05)
        codes = [(await rpc(http, a.url + "/rpc/ethereum", headers=headers))[0] for _ in range(3)]
        assert codes == [200, 200, 429]  # counted again once Redis is back


async def test_keys_add_stores_only_the_hash_and_limits(
    fleet: MockFleet, redis_server: RedisServer, tmp_path: Any
) -> None:
    import hashlib
    import os
    import sys

    from redis.asyncio import Redis

    path = tmp_path / "r.yaml"
    path.write_text(
        fleet_config(fleet, extra={"state": {"backend": "redis", "url": redis_server.url}})
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lasso_rpc", "keys", "add", "--config", str(path),
        "--key-env", "NEW_KEY", "--name", "cli", "--rps", "5", "--quota", "1000",
        env={**os.environ, "NEW_KEY": "cli-added-key-0004"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    field = hashlib.sha256(b"cli-added-key-0004").hexdigest()
    assert field in out.decode()
    redis = Redis.from_url(redis_server.url)
    try:
        stored = await redis.hgetall("lasso:keys")
    finally:
        await redis.aclose()
    assert list(stored) == [field.encode()]
    assert b"cli-added-key" not in stored[field.encode()]
    assert b'"rps":5.0' in stored[field.encode()] and b'"requests":1000' in stored[field.encode()]


async def test_a_frozen_redis_costs_a_few_timeouts_then_nothing(
    fleet: MockFleet, redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    text = fleet_config(
        fleet,
        extra={
            "state": {
                "backend": "redis",
                "url": redis_server.url,
                "retry_ms": 100,
                "timeout_ms": 25,
            },
            **access(on_state_down="local"),
        },
    )
    async with RouterServer(load_config_text([("a.yaml", text)]), port=0) as a:
        headers = {"X-Lasso-Key": OTHER}  # quota 2 a day, enforced per node while Redis is away
        assert (await rpc(http, a.url + "/rpc/ethereum", headers=headers))[0] == 200
        redis_server.pause()  # SIGSTOP: connections open, nothing answered
        try:
            codes = [
                (await rpc(http, a.url + "/rpc/ethereum", headers=headers))[0] for _ in range(6)
            ]
            assert codes == [200, 200, 429, 429, 429, 429]  # local buckets: a fresh quota of 2
            assert a.cluster is not None and not a.cluster.sync.status().connected
            async with http.get(a.url + "/metrics") as r:
                metrics = await r.text()
            assert 'lasso_access_fallbacks_total{mode="local",store="redis"} 6.0' in metrics
            guard = a.cluster.redis_guard
            assert guard is not None and guard.errors == 3  # then no call until a probe answers
        finally:
            redis_server.resume()
        for _ in range(100):
            if a.cluster.sync.status().connected:
                break
            await asyncio.sleep(0.05)
        assert a.cluster.sync.status().connected
