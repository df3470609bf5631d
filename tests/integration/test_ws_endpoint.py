"""The client WebSocket endpoint (SPEC §4): unary calls, routes, limits, slow clients, release."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.observability.events import Event, RequestFinished, SubscriptionFailover
from tests.conftest import RouterFactory
from tests.integration.test_ws_failover import (
    WsClient,
    manager_of,
    miner,
    only_feed,
    wait_for,
    wait_live,
    ws_url,
)

pytestmark = pytest.mark.asyncio


async def test_unary_calls_single_and_batch_take_the_http_path(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    events: list[Event] = []
    s.router.bus.subscribe(events.append)
    c = await WsClient.open(http, ws_url(s))
    reply = await c.call("eth_blockNumber", [], id="a")
    assert reply == {"jsonrpc": "2.0", "id": "a", "result": hex(fleet.chain.head_number)}
    assert (await c.call("eth_chainId", [], id=7))["result"] == "0x1"
    refused = await c.call("eth_sendTransaction", [{}], id=8)
    assert refused["error"]["code"] == -32601
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},  # notification
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBlockByNumber", "params": ["0x1", False]},
        {"id": 4},
    ]
    await c.ws.send_bytes(orjson.dumps(batch))
    answer = (await c.reply((1, 3, 4)))["batch"]
    assert [a["id"] for a in answer] == [1, 3, 4]
    assert answer[1]["result"]["number"] == "0x1" and answer[2]["error"]["code"] == -32600
    await c.ws.send_str("{nope")
    assert (await c.reply(None))["error"]["code"] == -32700
    ws_calls = [e for e in events if isinstance(e, RequestFinished) and e.transport == "ws"]
    assert {e.method for e in ws_calls} >= {
        "eth_blockNumber",
        "eth_chainId",
        "eth_getBlockByNumber",
    }
    assert all(e.transport == "ws" for e in events if isinstance(e, RequestFinished))
    await c.aclose()


async def test_routes_and_handshake_errors(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(ws_url(s, "/ws/rpc/nochain"))
    assert err.value.status == 400
    async with http.get(s.url + "/ws/rpc/ethereum") as r:  # no upgrade
        assert r.status == 400 and (await r.json())["error"]["code"] == -32600
    for path in (
        "/ws/rpc/eth",
        "/ws/rpc/1",
        "/ws/rpc/fastest/ethereum",
        "/ws/rpc/profile/local/priority/mainnet",
    ):
        c = await WsClient.open(http, ws_url(s, path))
        assert (await c.call("eth_chainId", []))["result"] == "0x1"
        await c.aclose()
    c = await WsClient.open(http, ws_url(s, "/ws/rpc/provider/gamma/ethereum"))
    await c.subscribe("newHeads")
    assert (await wait_live(s, 1)).provider == "gamma"
    before = fleet["gamma"].method_counts.get("eth_getBalance", 0)
    await c.call("eth_getBalance", ["0x" + "11" * 20, "latest"])
    assert fleet["gamma"].method_counts["eth_getBalance"] == before + 1
    await c.aclose()


async def test_subscription_needs_a_provider_with_a_ws_url(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router(providers={"alpha": {"ws_url": None}, "beta": {"ws_url": None}})
    pinned = await WsClient.open(http, ws_url(s, "/ws/rpc/provider/alpha/ethereum"))
    err = await pinned.call("eth_subscribe", ["newHeads"])
    assert err["error"]["code"] == -32001 and "ws_url" in err["error"]["message"]
    c = await WsClient.open(http, ws_url(s))
    await c.subscribe("newHeads")
    assert (await wait_live(s, 1)).provider == "gamma"
    bad = await c.call("eth_subscribe", ["newPendingTransactions"], id=2)
    assert bad["error"]["code"] == -32602
    await pinned.aclose()
    await c.aclose()


async def test_unsubscribe_and_the_last_client_releases_the_upstream(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    a, b = await WsClient.open(http, ws_url(s)), await WsClient.open(http, ws_url(s))
    sid_a = await a.subscribe("newHeads")
    await b.subscribe("newHeads")
    await b.subscribe("logs", {}, id="logs")
    serving = (await wait_live_count(s, 2)).provider
    assert sum(p.ws_connections for p in fleet) == 1  # heads and logs share one upstream socket
    assert (await a.call("eth_unsubscribe", [sid_a]))["result"] is True
    assert (await a.call("eth_unsubscribe", [sid_a], id=2))["result"] is False
    assert (await a.call("eth_unsubscribe", ["0xdead"], id=3))["result"] is False
    fleet.chain.mine()
    await b.until(lambda: len(b.results) >= 2, what="b's notifications")
    await asyncio.sleep(0.05)
    assert a.results == []  # nothing after unsubscribe
    await b.aclose()  # a closed socket releases its share: the feeds stop
    await wait_for(lambda: not manager_of(s).feeds(), "feeds released")
    await wait_for(lambda: fleet[serving].ws_connections == 0, "upstream socket closed")
    await a.aclose()


async def wait_live_count(s: Any, feeds: int) -> Any:
    await wait_for(
        lambda: (
            len(manager_of(s).feeds()) == feeds
            and all(f.state == "live" for f in manager_of(s).feeds())
        ),
        f"{feeds} live feeds",
    )
    return manager_of(s).feeds()[0]


async def test_per_connection_limits_answer_with_clear_errors(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    manager_of(s).configure(max_subscriptions=2, max_message_bytes=1024)
    c = await WsClient.open(http, ws_url(s))
    await c.subscribe("newHeads", id=1)
    await c.subscribe("logs", {}, id=2)
    third = await c.call("eth_subscribe", ["newHeads"], id=3)
    assert third["error"]["code"] == -32005 and third["error"]["data"] == {"limit": 2}
    big = {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "eth_call",
        "params": [{"data": "0x" + "00" * 1000}],
    }
    await c.ws.send_bytes(orjson.dumps(big))
    too_big = await c.reply(None)
    assert too_big["error"]["code"] == -32004 and too_big["error"]["data"] == {"limit": 1024}
    assert (await c.call("eth_chainId", [], id=5))["result"] == "0x1"  # still open
    await c.ws.send_bytes(b"[" + b" " * 5000 + b"]")  # past 4x the limit: closed
    await c.until(lambda: c.closed is not None, what="close")
    assert c.closed is not None and c.closed[0] == 1009
    await wait_for(lambda: not manager_of(s).feeds(), "released")


async def test_idle_socket_without_subscriptions_is_closed(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    manager_of(s).configure(idle_timeout_s=0.2)
    idle = await WsClient.open(http, ws_url(s))
    busy = await WsClient.open(http, ws_url(s))
    await busy.subscribe("newHeads")
    await idle.until(lambda: idle.closed is not None, what="idle close", timeout=3)
    assert idle.closed is not None and idle.closed[0] == 1000
    assert busy.closed is None
    await busy.aclose()


def _small_rcvbuf(addr_info: Any) -> socket.socket:
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_slow_client_is_closed_and_cannot_grow_memory(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    manager_of(s).configure(send_queue_messages=16)
    fast = await WsClient.open(http, ws_url(s))
    await fast.subscribe("newHeads")
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(socket_factory=_small_rcvbuf)
    ) as slow_http:
        slow = await slow_http.ws_connect(ws_url(s))
        await slow.send_str(
            '{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}'
        )
        assert "result" in orjson.loads((await slow.receive()).data)
        await wait_live(s, 2)
        start = fleet.chain.head_number
        for _ in range(500):  # up to 4000 notifications of ~1 KB: more than any buffer holds
            fleet.chain.mine(8)  # bursts below the queue bound: a reading client keeps up
            await asyncio.sleep(0.002)
            if only_feed(s).clients == 1:
                break
        await wait_for(lambda: only_feed(s).clients == 1, "the slow client detached")
        final = fleet.chain.head_number
        codes = []
        async for msg in slow:  # now read: the backlog, then the close frame
            codes.append(msg.type)
        assert slow.close_code == 1008
        assert aiohttp.WSMsgType.TEXT in codes
    await fast.until(lambda: len(fast.results) == final - start, what="fast client blocks")
    assert fast.numbers() == list(range(start + 1, final + 1))
    await fast.aclose()


async def test_stale_or_cordoned_provider_is_left(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router(routing={"max_lag_blocks": 1_000_000})
    events: list[Event] = []
    s.router.bus.subscribe(events.append)
    manager_of(s).configure(stale_min_ms=300, stale_factor=0.0)
    c = await WsClient.open(http, ws_url(s))
    await c.subscribe("newHeads")
    first = (await wait_live(s, 1)).provider
    assert first is not None
    start = fleet.chain.head_number
    async with miner(fleet, 0.02):
        await asyncio.sleep(0.1)
        fleet[first].set_lag(1_000_000)  # silent, still connected: only staleness can tell
        second = (await wait_live(s, 1, not_on=first)).provider
        assert second is not None
        s.router.cordon("ethereum", second, True)
        await wait_live(s, 1, not_on=second)
        await asyncio.sleep(0.1)
    final = fleet.chain.head_number
    await c.until(lambda: len(c.results) == final - start, what="every block")
    assert c.numbers() == list(range(start + 1, final + 1))
    moves = [(e.from_provider, e.gap) for e in events if isinstance(e, SubscriptionFailover)]
    assert moves[:2] == [(first, False), (second, False)]
    await c.aclose()
