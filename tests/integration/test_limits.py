"""``server.limits`` on real sockets: connections per address and in total (the whole port, the
connections handed to aiohttp and WebSockets included), slow heads and bodies, pipelining,
WebSocket message rate and subscriptions per address; each counted as ``limit.rejected``.

Timeouts are driven by calling the front's sweep with a later time (no sleeping), except where
aiohttp's own timer is the one under test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.observability.events import Event, LimitRejected
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory
from tests.integration.test_http1_front import call, door, post, read_response
from tests.integration.test_smuggling import rest_until_closed
from tests.integration.test_ws_failover import WsClient, wait_for, ws_url

pytestmark = pytest.mark.asyncio
HEALTH = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"


@contextlib.asynccontextmanager
async def conns(
    s: RouterServer, n: int
) -> AsyncIterator[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    opened = [await asyncio.open_connection("127.0.0.1", s.port) for _ in range(n)]
    try:
        yield opened
    finally:
        for _, w in opened:
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()


def limit_events(s: RouterServer) -> list[LimitRejected]:
    seen: list[LimitRejected] = []

    def keep(e: Event) -> None:
        if isinstance(e, LimitRejected):
            seen.append(e)

    s.router.bus.subscribe(keep)
    return seen


@pytest.mark.parametrize("front", ["fast", "aiohttp"])
async def test_connections_per_address_hold_for_the_whole_port(
    make_router: RouterFactory, front: str
) -> None:
    s = await make_router(server={"front": front, "limits": {"max_connections_per_ip": 3}})
    seen = limit_events(s)
    async with conns(s, 3) as held:
        # One stays on the lean front, one is handed to aiohttp, one sends nothing yet.
        (r0, w0), (r1, w1), _ = held
        w0.write(post("/rpc/ethereum", call(id=1)))
        assert (await read_response(r0)).json()["id"] == 1
        w1.write(HEALTH)
        assert (await read_response(r1)).status == 200
        async with conns(s, 1) as [(r, w)]:
            refused = await read_response(r)
            assert refused.status == 429 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == -32005
            assert await rest_until_closed(r) == b""
        assert s.gate is not None and s.gate.total == 3
    await wait_for(lambda: s.gate is not None and s.gate.total == 0, "places given back")
    async with conns(s, 1) as [(r, w)]:  # a place is free again
        w.write(post("/rpc/ethereum", call(id=2)))
        assert (await read_response(r)).json()["id"] == 2
    assert [e.limit for e in seen] == ["connections_per_ip"]


async def test_total_connections_and_websockets_count(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(server={"limits": {"max_connections": 2}})
    seen = limit_events(s)
    ws = await WsClient.open(http, ws_url(s))  # a WebSocket holds its place while open
    async with conns(s, 1) as [_], conns(s, 1) as [(r, _w)]:
        refused = await read_response(r)
        assert refused.status == 503 and refused.json()["error"]["code"] == -32005
    await ws.aclose()
    await wait_for(lambda: s.gate is not None and s.gate.total == 0, "places given back")
    assert [e.limit for e in seen] == ["connections"]


async def test_a_slow_head_gets_408_and_the_connection_closes(make_router: RouterFactory) -> None:
    s = await make_router(server={"limits": {"header_timeout_s": 5}})
    seen = limit_events(s)
    loop = asyncio.get_running_loop()
    async with conns(s, 3) as [(r1, w1), (r2, _w2), (r3, w3)]:
        w1.write(b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # then nothing
        await w1.drain()
        w3.write(post("/rpc/ethereum", call(id=3)))  # a normal client meanwhile
        assert (await read_response(r3)).json()["id"] == 3
        await asyncio.sleep(0.05)
        door(s).sweep(loop.time() + 4)  # within the limit: nothing happens
        assert not seen
        door(s).sweep(loop.time() + 6)
        for r in (r1, r2):  # r2 never sent a byte: its first head is overdue too
            late = await read_response(r)
            assert late.status == 408 and late.headers["connection"] == "close"
            assert await rest_until_closed(r) == b""
        # The answered connection is idle, not slow: it stays.
        w3.write(post("/rpc/ethereum", call(id=4)))
        assert (await read_response(r3)).json()["id"] == 4
    assert [e.limit for e in seen] == ["header_timeout", "header_timeout"]


async def test_a_slow_body_gets_408(make_router: RouterFactory) -> None:
    s = await make_router(server={"limits": {"body_timeout_s": 5}})
    seen = limit_events(s)
    loop = asyncio.get_running_loop()
    async with conns(s, 1) as [(r, w)]:
        w.write(post("/rpc/ethereum", call(id=1))[:-10])  # all but the last 10 body bytes
        await w.drain()
        await asyncio.sleep(0.05)
        door(s).sweep(loop.time() + 6)
        late = await read_response(r)
        assert late.status == 408 and b"body" in late.body
        assert await rest_until_closed(r) == b""
    assert [e.limit for e in seen] == ["body_timeout"]


async def test_aiohttp_side_slow_heads_and_bodies_are_cut_too(make_router: RouterFactory) -> None:
    # Real time here: aiohttp's own keep-alive timer and the handler's body deadline.
    s = await make_router(server={"limits": {"header_timeout_s": 0.3, "body_timeout_s": 0.3}})
    async with conns(s, 2) as [(r1, w1), (r2, w2)]:
        w1.write(HEALTH)
        assert (await read_response(r1)).status == 200  # now the connection is aiohttp's
        w1.write(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        assert await rest_until_closed(r1) == b""  # closed within the header timeout
        w2.write(
            b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"
        )
        late = await read_response(r2)
        assert late.status == 408
        assert await rest_until_closed(r2) == b""


async def test_pipelined_read_ahead_pauses_and_every_request_is_answered_in_order(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router(server={"limits": {"max_pipelined": 4}})
    seen = limit_events(s)
    for p in fleet:
        p.set_latency(50)
    async with conns(s, 1) as [(r, w)]:
        w.write(post("/rpc/ethereum", call(id=0)))
        await w.drain()
        await asyncio.sleep(0.01)  # the first is in flight: the rest is read ahead
        w.write(b"".join(post("/rpc/ethereum", call(id=i)) for i in range(1, 40)))
        ids = [(await read_response(r)).json()["id"] for _ in range(40)]
    assert ids == list(range(40))
    assert "pipelined" in {e.limit for e in seen}


async def test_a_deep_body_over_http_is_invalid_request_and_counted(
    make_router: RouterFactory,
) -> None:
    s = await make_router(server={"limits": {"max_json_depth": 8}})
    seen = limit_events(s)
    async with conns(s, 1) as [(r, w)]:
        w.write(post("/rpc/ethereum", b"[" * 20_000 + b"]" * 20_000))
        deep = await read_response(r)
        assert deep.status == 200 and deep.json()["error"]["code"] == -32600
        nested = b'{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[[[[[[[[1]]]]]]]]}'
        w.write(post("/rpc/ethereum", nested))
        assert (await read_response(r)).json()["error"]["data"] == {"max_depth": 8}
        w.write(post("/rpc/ethereum", call(id=2)))  # the connection is fine
        assert (await read_response(r)).json()["id"] == 2
    assert [e.limit for e in seen] == ["json_depth", "json_depth"]


async def test_websocket_message_rate_and_subscriptions_per_address(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(
        server={
            "limits": {
                "ws_max_messages_per_second": 0.001,  # no refill within the test
                "ws_message_burst": 5,
                "ws_max_subscriptions_per_ip": 3,
                "ws_max_subscriptions": 2,
                "ws_max_message_bytes": 512,
            }
        }
    )
    seen = limit_events(s)
    a = await WsClient.open(http, ws_url(s))
    for i in range(5):
        assert (await a.call("eth_chainId", [], id=i))["result"] == "0x1"
    await a.ws.send_bytes(orjson.dumps({"jsonrpc": "2.0", "id": 9, "method": "eth_chainId"}))
    over = await a.reply(None)
    assert over["error"]["code"] == -32005 and "rate" in over["error"]["message"]
    # Subscriptions: three over two sockets of one address, the fourth refused.
    b = await WsClient.open(http, ws_url(s))
    c = await WsClient.open(http, ws_url(s))
    for n, client in enumerate((b, b, c)):
        assert "result" in await client.call("eth_subscribe", ["newHeads"], id=10 + n)
    refused = await c.call("eth_subscribe", ["newHeads"], id=20)
    assert refused["error"]["code"] == -32005 and refused["error"]["data"] == {"limit": 3}
    await b.aclose()  # its two are released
    await wait_for(lambda: s.router is not None and _subs(s) == 1, "released")
    assert "result" in await c.call("eth_subscribe", ["newHeads"], id=21)
    d = await WsClient.open(http, ws_url(s))
    await d.ws.send_bytes(
        b'{"jsonrpc":"2.0","id":30,"method":"eth_chainId","params":["' + b"0" * 600 + b'"]}'
    )
    big = await d.reply(None)
    assert big["error"]["code"] == -32004 and big["error"]["data"] == {"limit": 512}
    await c.aclose()
    e = await WsClient.open(http, ws_url(s))  # c's subscription is released: room for two
    for n in (40, 41):
        assert "result" in await e.call("eth_subscribe", ["newHeads"], id=n)
    per_conn = await e.call("eth_subscribe", ["newHeads"], id=42)
    assert per_conn["error"]["code"] == -32005 and per_conn["error"]["data"] == {"limit": 2}
    for client in (a, d, e):
        await client.aclose()
    assert [e.limit for e in seen] == [
        "ws_messages_per_second",
        "ws_subscriptions_per_ip",
        "ws_message_bytes",
        "ws_subscriptions",
    ]


def _subs(s: RouterServer) -> int:
    from lasso_rpc.server.app import WS_KEY

    assert s._runner is not None
    return s._runner.app[WS_KEY].limits.subscriptions_of("127.0.0.1")
