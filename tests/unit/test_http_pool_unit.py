"""HttpPoolTransport pieces without sockets: URL handling, Retry-After, response framing."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from lasso_rpc.errors import ConnectionLost, MalformedResponse, ResponseTooLarge
from lasso_rpc.transport import HttpPoolTransport, UpstreamResponse
from lasso_rpc.transport.endpoint import Endpoint, parse_retry_after
from lasso_rpc.transport.http_conn import HttpConnection


def test_endpoint_keeps_secrets_out_of_origin() -> None:
    ep = Endpoint.parse("https://user:p%40ss@Node.Example:8443/v2/KEY?x=1#frag")

    assert ep.origin == "https://node.example:8443"
    assert ep.target == "/v2/KEY?x=1"
    assert ep.host_header == "node.example:8443"
    assert ep.authorization == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert ep.url_without_userinfo == "https://node.example:8443/v2/KEY?x=1"


def test_endpoint_defaults() -> None:
    assert Endpoint.parse("http://h").host_header == "h"
    assert Endpoint.parse("http://h").target == "/"
    assert Endpoint.parse("https://h").port == 443
    assert Endpoint.parse("http://[::1]:81/").origin == "http://[::1]:81"


@pytest.mark.parametrize(
    "url", ["ftp://h/SECRET", "http:///SECRET", "http://h:99999/SECRET", "http://h/a b SECRET"]
)
def test_bad_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError) as info:
        HttpPoolTransport(url)
    assert "SECRET" not in str(info.value)


def test_request_head_is_precomputed() -> None:
    t = HttpPoolTransport("http://a:b@h:8545/p?q=1", headers={"X-K": "v", "user-agent": "me"})

    assert t._head == (
        b"POST /p?q=1 HTTP/1.1\r\nHost: h:8545\r\nContent-Type: application/json\r\n"
        b"Authorization: Basic YTpi\r\nX-K: v\r\nuser-agent: me\r\nContent-Length: "
    )


@pytest.mark.parametrize("headers", [{"Host": "x"}, {"X-A": "b\r\nEvil: 1"}, {"X-A": "é€"}])
def test_unsafe_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        HttpPoolTransport("http://h/", headers=headers)


def test_parse_retry_after() -> None:
    assert parse_retry_after(b"2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(b"-3") == 0.0
    assert parse_retry_after(b"soon") is None
    assert parse_retry_after(None) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after(later) or 0) <= 30


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


async def _exchange(feeds: list[bytes], **kw: int) -> tuple[UpstreamResponse, HttpConnection]:
    pool = HttpPoolTransport("http://h/", **kw)
    conn = HttpConnection(pool)
    conn.connection_made(_FakeTransport())
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(conn.exchange(b"req", loop.time() + 5, 5))
    await asyncio.sleep(0)
    for data in feeds:
        conn.data_received(data)
    return await task, conn


async def test_response_fed_byte_by_byte() -> None:
    raw = b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy"

    resp, conn = await _exchange([raw[i : i + 1] for i in range(len(raw))])

    assert resp == UpstreamResponse(429, b"busy", 7.0)
    assert conn.keep_alive


async def test_interim_100_continue_is_skipped() -> None:
    resp, _ = await _exchange(
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"]
    )
    assert resp.body == b"{}"


async def test_connection_close_header_ends_keep_alive() -> None:
    _, conn = await _exchange(
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"]
    )
    assert not conn.keep_alive


async def test_oversized_and_malformed_answers_abort_the_connection() -> None:
    with pytest.raises(ResponseTooLarge):
        await _exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"], max_response_bytes=10)
    with pytest.raises(MalformedResponse):
        await _exchange([b"HTTP/1.1 2x0 OK\r\n\r\n"])


async def test_close_mid_body_is_connection_lost() -> None:
    pool = HttpPoolTransport("http://h/")
    conn = HttpConnection(pool)
    conn.connection_made(_FakeTransport())
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(conn.exchange(b"req", loop.time() + 5, 5))
    await asyncio.sleep(0)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.connection_lost(None)

    with pytest.raises(ConnectionLost):
        await task
    assert conn.received


async def test_reused_connection_found_closing_is_retried_on_a_new_one() -> None:
    # The server's FIN was processed (transport closing) but connection_lost has not run yet.
    pool = HttpPoolTransport("http://h/")
    conn = HttpConnection(pool)
    transport = _FakeTransport()
    conn.connection_made(transport)
    conn.reused = conn.received = True  # left over from the previous, complete exchange
    transport.aborted = True

    with pytest.raises(ConnectionLost):
        await conn.exchange(b"req", asyncio.get_running_loop().time() + 5, 5)
    assert not conn.received  # so post() may retry: nothing of this answer came back
