"""The lean HTTP/1.1 front on real sockets, byte by byte: keep-alive, pipelining, hand-over to
aiohttp, framing, limits, idle and shutdown. (The API itself runs on both fronts in
test_server_http.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.observability.events import Event, RequestFinished
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory

pytestmark = pytest.mark.asyncio
ADDR = "0x" + "11" * 20


def call(method: str = "eth_blockNumber", params: Any = (), id: Any = 1) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": list(params)})


def post(path: str, body: bytes, *extra: str, version: str = "1.1") -> bytes:
    lines = [
        f"POST {path} HTTP/{version}",
        "Host: test",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return orjson.loads(self.body)


async def read_response(reader: asyncio.StreamReader) -> Response:
    """One HTTP/1.1 response (interim 1xx answers are returned as they come)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return Response(status, headers, body)


async def closed(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection (EOF within a second)."""
    try:
        return await asyncio.wait_for(reader.read(1), 1.0) == b""
    except (TimeoutError, ConnectionError):
        return False


@contextlib.asynccontextmanager
async def connect(
    s: RouterServer,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def door(s: RouterServer) -> Any:
    assert s._door is not None
    return s._door


async def test_keep_alive_connection_is_served_by_the_fast_front(
    make_router: RouterFactory,
) -> None:
    s = await make_router()
    async with connect(s) as (reader, writer):
        for i in range(20):
            writer.write(post("/rpc/ethereum", call(id=i)))
            r = await read_response(reader)
            assert r.status == 200 and r.json()["id"] == i and r.json()["result"].startswith("0x")
            assert r.headers["content-type"] == "application/json"
            assert r.headers["server"] == "lasso-rpc" and r.headers["date"].endswith("GMT")
        assert len(door(s).conns) == 1
    assert door(s).handed_off == 0


async def test_pipelined_requests_are_answered_in_order(make_router: RouterFactory) -> None:
    s = await make_router()
    async with connect(s) as (reader, writer):
        # One write, five requests, some answered locally, one refused: order must hold.
        batch = [
            post("/rpc/ethereum", call(id=1)),
            post("/rpc/ethereum", call("eth_chainId", id=2)),
            post("/rpc/ethereum", call("eth_getBalance", [ADDR, "latest"], id=3)),
            post("/rpc/ethereum", call("eth_sign", id=4)),
            post("/rpc/ethereum", call(id="five")),
        ]
        writer.write(b"".join(batch))
        ids = [(await read_response(reader)).json()["id"] for _ in batch]
    assert ids == [1, 2, 3, 4, "five"]
    assert door(s).handed_off == 0


async def test_a_request_split_into_single_bytes_is_answered(make_router: RouterFactory) -> None:
    s = await make_router()
    async with connect(s) as (reader, writer):
        for b in post("/rpc/ethereum", call(id=7)):
            writer.write(bytes([b]))
            await writer.drain()
        r = await read_response(reader)
    assert r.status == 200 and r.json()["id"] == 7


async def test_other_requests_hand_the_connection_to_aiohttp_mid_stream(
    make_router: RouterFactory,
) -> None:
    s = await make_router()
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum", call(id=1)))
        assert (await read_response(reader)).json()["id"] == 1
        # A GET pipelined behind a POST: the POST is answered first, then aiohttp takes over.
        writer.write(post("/rpc/ethereum", call(id=2)) + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await read_response(reader)).json()["id"] == 2
        health = await read_response(reader)
        assert health.status == 200 and health.json()["status"] == "ok"
        # The same connection keeps working for /rpc, now through aiohttp.
        writer.write(post("/rpc/ethereum", call(id=3)))
        assert (await read_response(reader)).json()["id"] == 3
    assert door(s).handed_off == 1


@pytest.mark.parametrize(
    ("name", "raw", "status"),
    [
        (
            "chunked body",
            b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(call(id=9)), call(id=9)),
            200,
        ),
        ("percent-escaped path", post("/rpc/eth%65reum", call(id=9)), 200),
        ("absolute target", post("http://t/rpc/ethereum", call(id=9)), 200),
        (
            "both Content-Length and chunked",
            b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "space before the colon",
            b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\nContent-Length : 2\r\n\r\n{}",
            400,
        ),
        (
            "two different lengths",
            b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            400,
        ),
        (
            "bare LF line ends",
            b"POST /rpc/ethereum HTTP/1.1\nHost: t\nContent-Length: %d\n\n%s"
            % (len(call(id=9)), call(id=9)),
            400,
        ),
        (
            "another method",
            b"PUT /rpc/ethereum HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            405,
        ),
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n", 400),
    ],
)
async def test_what_the_fast_parser_does_not_take_aiohttp_answers(
    make_router: RouterFactory, name: str, raw: bytes, status: int
) -> None:
    s = await make_router()
    async with connect(s) as (reader, writer):
        writer.write(raw)
        r = await read_response(reader)
    assert r.status == status, name
    if status == 200:
        assert r.json()["id"] == 9
    assert door(s).handed_off == 1


async def test_expect_100_continue_gets_its_interim_answer(make_router: RouterFactory) -> None:
    s = await make_router()
    body = call(id=5)
    async with connect(s) as (reader, writer):
        head = post("/rpc/ethereum", b"", "Expect: 100-continue")
        head = head.replace(b"Content-Length: 0", b"Content-Length: %d" % len(body))
        writer.write(head)
        interim = await read_response(reader)
        assert interim.status == 100
        writer.write(body)
        r = await read_response(reader)
    assert r.status == 200 and r.json()["id"] == 5
    assert door(s).handed_off == 0


async def test_a_body_over_every_limit_gets_413_at_once_and_the_connection_closes(
    make_router: RouterFactory,
) -> None:
    s = await make_router(routing={"max_body_bytes": 1024})
    events: list[Event] = []
    s.router.bus.subscribe(events.append)
    async with connect(s) as (reader, writer):
        # Only the head is sent: the answer must not wait for a body it will never read.
        writer.write(b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        r = await read_response(reader)
        assert r.status == 413 and r.json()["error"]["code"] == -32004
        assert r.json()["error"]["data"] == {"limit": 1024}
        assert r.headers["connection"] == "close"
        assert await closed(reader)
    assert not [e for e in events if isinstance(e, RequestFinished)]  # nothing was called


async def test_connection_close_and_http_1_0(make_router: RouterFactory) -> None:
    s = await make_router()
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum", call(id=1), "Connection: close"))
        r = await read_response(reader)
        assert r.status == 200 and r.headers["connection"] == "close"
        assert await closed(reader)
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum", call(id=2), version="1.0"))
        r = await read_response(reader)
        assert r.json()["id"] == 2 and r.headers["connection"] == "close"
        assert await closed(reader)
    async with connect(s) as (reader, writer):
        for i in (3, 4):
            writer.write(post("/rpc/ethereum", call(id=i), "Connection: keep-alive", version="1.0"))
            r = await read_response(reader)
            assert r.json()["id"] == i and r.headers["connection"] == "keep-alive"
    assert door(s).handed_off == 0


async def test_notification_is_204_without_a_body_and_the_connection_stays(
    make_router: RouterFactory,
) -> None:
    s = await make_router()
    note = orjson.dumps({"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []})
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum", note) + post("/rpc/ethereum", call(id=2)))
        r = await read_response(reader)
        assert r.status == 204 and r.body == b"" and "content-length" not in r.headers
        assert (await read_response(reader)).json()["id"] == 2


async def test_meta_and_failover_from_query_and_header(make_router: RouterFactory) -> None:
    s = await make_router()
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum?include_meta=headers", call(id=1)))
        r = await read_response(reader)
        assert r.headers["x-lasso-attempts"] == "1" and r.headers["x-lasso-request-id"]
        writer.write(
            post(
                "/rpc/ethereum", call(id=2), "X-Lasso-Include-Meta: body", "X-Request-Id: trace-42"
            )
        )
        r = await read_response(reader)
        assert r.json()["lasso_meta"]["request_id"] == "trace-42"
        writer.write(
            post("/rpc/provider/alpha/ethereum?include_meta=body&failover=true", call(id=3))
        )
        meta = (await read_response(reader)).json()["lasso_meta"]
        assert meta["explanation"].startswith("provider: alpha (pinned to alpha, failover")


async def test_a_client_that_leaves_mid_call_does_not_lose_the_call(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router()
    events: list[Event] = []
    s.router.bus.subscribe(events.append)
    for p in fleet:
        p.set_latency(300)
    async with connect(s) as (_, writer):
        writer.write(post("/rpc/ethereum", call("eth_getBalance", [ADDR, "latest"])))
        await writer.drain()
        await asyncio.sleep(0.05)
    for _ in range(100):
        if any(isinstance(e, RequestFinished) and e.method == "eth_getBalance" for e in events):
            break
        await asyncio.sleep(0.02)
    done = [e for e in events if isinstance(e, RequestFinished) and e.method == "eth_getBalance"]
    assert [e.status for e in done] == ["ok"]  # answered upstream; the answer had nowhere to go
    assert door(s).conns == set()


async def test_idle_keep_alive_connections_are_closed(make_router: RouterFactory) -> None:
    s = await make_router()
    door(s).keepalive_s = 0.0
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum", call()))
        await read_response(reader)
        door(s)._sweep()  # what the periodic sweep does every few seconds
        assert await closed(reader)


async def test_shutdown_finishes_the_call_in_flight_then_closes(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router()
    for p in fleet:
        p.set_latency(200)
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum", call("eth_getBalance", [ADDR, "latest"], id=11)))
        await writer.drain()
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(s.aclose())
        r = await read_response(reader)
        assert r.status == 200 and r.json()["id"] == 11
        assert r.headers["connection"] == "close"
        assert await closed(reader)
        await closing
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", s.port)


async def test_the_aiohttp_front_serves_the_same_port_alone(make_router: RouterFactory) -> None:
    s = await make_router(server={"front": "aiohttp"})
    assert s._door is None
    async with connect(s) as (reader, writer):
        writer.write(post("/rpc/ethereum", call(id=1)) + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await read_response(reader)).json()["id"] == 1
        assert (await read_response(reader)).status == 200


@pytest.mark.parametrize(
    "partial",
    [
        b"POST /rpc/ethereum HTTP/1.1\n\r\n",  # bare LF ending the request line
        b"POST /rpc/ethereum HTTP/1.1\r\n \r\n ",  # an indented line after the request line
        b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\r\nNo colon here\r\n",
        b"POST /rpc/ethereum HTTP/1.1\r\nHost: t\rX",  # a bare CR
        b"GET /health\r\n",  # HTTP/0.9
        # Found by fuzz/run.py: request lines and header lines aiohttp refuses at the byte.
        b"GET -/",
        b"POST \x1frp",
        b"POST /rpc/ethereum H\r\n",
        b"POST /rpc/ethereum HTTP/1.1\r\nHost: a\r\nContent-Length:{",
        b"PRI * HTTP/2.0method",
        b"POST /rpc/ethereum HTTP/1.0ngth",
    ],
)
async def test_an_unfinished_head_already_refused_is_answered_without_waiting(
    make_router: RouterFactory, partial: bytes
) -> None:
    # Found by the property suite: the front waited for the end of a head that aiohttp (and
    # the guard) refuse as soon as these bytes are read; the client hung until a timeout.
    s = await make_router()
    async with connect(s) as (reader, writer):
        writer.write(partial)
        r = await read_response(reader)
        assert r.status == 400
        assert await closed(reader)


async def test_an_odd_expect_is_417_not_a_server_error(make_router: RouterFactory) -> None:
    # Found by fuzz/run.py: aiohttp's own Expect check answered 500 for a non-ASCII value.
    s = await make_router()
    for value in (b"\xed\xa0\x80", b"nothing"):
        async with connect(s) as (reader, writer):
            raw = post("/rpc/ethereum", call(id=1)).replace(
                b"Host: test", b"Host: test\r\nExpect: " + value
            )
            writer.write(raw)
            r = await read_response(reader)
            assert r.status == 417 and r.json()["error"]["code"] == -32600
            assert await closed(reader)


async def test_a_websocket_key_that_is_not_ascii_is_400_not_500(make_router: RouterFactory) -> None:
    # Found by fuzz/run.py: aiohttp's handshake check raised ValueError (a 500).
    s = await make_router()
    async with connect(s) as (reader, writer):
        writer.write(
            b"GET /ws/rpc/ethereum HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhl\xffIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        r = await read_response(reader)
    assert r.status == 400 and r.json()["error"]["code"] == -32600
