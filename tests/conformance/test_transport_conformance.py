"""Both UpstreamTransport implementations behave the same against real (misbehaving) sockets."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
import traceback

import pytest

from lasso_rpc.errors import (
    ConnectError,
    ConnectionLost,
    MalformedResponse,
    ResponseTooLarge,
    TransportError,
    UpstreamTimeout,
)
from lasso_rpc.transport import UpstreamTransport

from .conftest import Cert, MakeTransport, ServerConn, response

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":["\xc3\xa9\x00\xff"]}'


async def test_round_trip_keeps_body_bytes(upstream, make_transport: MakeTransport) -> None:
    up = await upstream()
    transport = make_transport(up.url())
    assert isinstance(transport, UpstreamTransport)

    resp = await transport.post(BODY, timeout_s=5)

    assert (resp.status, resp.body, resp.retry_after_s) == (200, BODY, None)
    [req] = up.requests
    assert (req.method, req.target, req.body) == ("POST", "/", BODY)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["content-length"] == str(len(BODY))
    assert req.headers["host"] == f"127.0.0.1:{up.port}"


async def test_extra_headers_and_userinfo_are_sent(upstream, make_transport) -> None:
    up = await upstream()
    transport = make_transport(up.url(userinfo="alice:s%3Acret@"), headers={"X-Api-Key": "k1"})

    await transport.post(BODY, timeout_s=5)

    headers = up.requests[0].headers
    assert headers["x-api-key"] == "k1"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"alice:s:cret").decode()


async def test_keep_alive_reuses_one_connection(upstream, make_transport) -> None:
    up = await upstream()
    transport = make_transport(up.url())

    for i in range(10):
        body = b'{"id":%d}' % i
        assert (await transport.post(body, timeout_s=5)).body == body

    assert up.connections == 1
    assert len(up.requests) == 10


async def test_concurrency_is_capped_by_pool_size(upstream, make_transport) -> None:
    async def slow_echo(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            await asyncio.sleep(0.02)
            await conn.send(response(200, req.body))
        await conn.wait_client_close()

    up = await upstream(slow_echo)
    transport = make_transport(up.url(), pool_size=4)
    bodies = [b'{"id":%d}' % i for i in range(24)]

    results = await asyncio.gather(*(transport.post(b, timeout_s=10) for b in bodies))

    assert [r.body for r in results] == bodies
    assert up.max_active == 4  # used the whole pool, never more
    assert up.connections == 4  # and kept those connections alive


async def test_chunked_response(upstream, make_transport) -> None:
    async def chunked(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await conn.send(response(200, chunks=[b'{"jsonrpc":', b'"2.0",', b'"result":1}']))
        await conn.wait_client_close()

    up = await upstream(chunked)
    transport = make_transport(up.url())

    for _ in range(2):  # the chunked framing leaves the connection reusable
        resp = await transport.post(BODY, timeout_s=5)
        assert resp.body == b'{"jsonrpc":"2.0","result":1}'
    assert up.connections == 1


async def test_close_delimited_http10_body(upstream, make_transport) -> None:
    async def http10(conn: ServerConn) -> None:
        if await conn.read_request() is not None:
            await conn.send(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}")

    up = await upstream(http10)
    transport = make_transport(up.url())

    assert (await transport.post(BODY, timeout_s=5)).body == b"{}"
    assert (await transport.post(BODY, timeout_s=5)).body == b"{}"
    assert up.connections == 2


async def test_connection_close_is_honoured(upstream, make_transport) -> None:
    async def close_each(conn: ServerConn) -> None:
        req = await conn.read_request()
        if req is not None:
            await conn.send(response(200, req.body, close=True))

    up = await upstream(close_each)
    transport = make_transport(up.url())

    for i in range(3):
        body = b'{"id":%d}' % i
        assert (await transport.post(body, timeout_s=5)).body == body
    assert up.connections == 3
    assert len(up.requests) == 3  # no request was lost on a closed connection


async def test_non_2xx_statuses_are_returned(upstream, make_transport) -> None:
    answers = [
        response(500, b"oops"),
        response(429, b"slow down", headers=[("Retry-After", "2")]),
        response(503, b"", headers=[("Retry-After", "soon")]),
        response(307, b"", headers=[("Location", "/elsewhere")]),
    ]

    async def statuses(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await conn.send(answers.pop(0))
        await conn.wait_client_close()

    up = await upstream(statuses)
    transport = make_transport(up.url())

    r500 = await transport.post(BODY, timeout_s=5)
    r429 = await transport.post(BODY, timeout_s=5)
    r503 = await transport.post(BODY, timeout_s=5)
    r307 = await transport.post(BODY, timeout_s=5)

    assert (r500.status, r500.body, r500.retry_after_s) == (500, b"oops", None)
    assert (r429.status, r429.body, r429.retry_after_s) == (429, b"slow down", 2.0)
    assert (r503.status, r503.retry_after_s) == (503, None)  # unparseable: ignored
    assert r307.status == 307  # returned, not followed
    assert [r.target for r in up.requests] == ["/"] * 4
    assert up.connections == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_connect_error(make_transport) -> None:
    transport = make_transport(f"http://127.0.0.1:{_closed_port()}/")

    with pytest.raises(ConnectError) as info:
        await transport.post(BODY, timeout_s=5)

    assert info.value.never_sent is True
    assert isinstance(info.value.__cause__, OSError)


async def test_idle_connection_closed_by_server_is_replaced(upstream, make_transport) -> None:
    async def one_shot(conn: ServerConn) -> None:
        req = await conn.read_request()
        if req is not None:
            await conn.send(response(200, req.body))  # keep-alive promised, then closed

    up = await upstream(one_shot)
    transport = make_transport(up.url())

    assert (await transport.post(b"1", timeout_s=5)).body == b"1"
    await up.wait_until(lambda: up.active == 0)
    assert (await transport.post(b"2", timeout_s=5)).body == b"2"
    assert len(up.requests) == 2


async def test_keep_alive_close_race_is_retried_once(upstream, make_transport) -> None:
    async def close_on_second(conn: ServerConn) -> None:
        # Answers the first request; closes on the second without a byte, as a server whose
        # keep-alive timer fired while the request was in flight.
        req = await conn.read_request()
        if req is not None:
            await conn.send(response(200, req.body))
            await conn.read_request()

    up = await upstream(close_on_second)
    transport = make_transport(up.url())

    assert (await transport.post(b"1", timeout_s=5)).body == b"1"
    assert (await transport.post(b"2", timeout_s=5)).body == b"2"
    assert [r.body for r in up.requests] == [b"1", b"2", b"2"]
    assert up.connections == 2


async def test_reset_mid_response_is_not_retried(upstream, make_transport) -> None:
    async def reset_second(conn: ServerConn) -> None:
        req = await conn.read_request()
        if req is not None:
            await conn.send(response(200, req.body))
        if await conn.read_request() is not None:
            await conn.send(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"jsonrpc"')
            await asyncio.sleep(0.1)  # let the partial answer reach the client first
            conn.reset()

    up = await upstream(reset_second)
    transport = make_transport(up.url())
    await transport.post(b"1", timeout_s=5)

    with pytest.raises(ConnectionLost) as info:
        await transport.post(b"2", timeout_s=5)

    assert info.value.never_sent is False
    assert [r.body for r in up.requests] == [b"1", b"2"]  # the second was seen once
    assert up.connections == 1


async def test_partial_status_line_then_close_is_not_retried(upstream, make_transport) -> None:
    async def cut_second(conn: ServerConn) -> None:
        req = await conn.read_request()
        if req is not None:
            await conn.send(response(200, req.body))
        if await conn.read_request() is not None:
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Le")

    up = await upstream(cut_second)
    transport = make_transport(up.url())
    await transport.post(b"1", timeout_s=5)

    with pytest.raises((ConnectionLost, MalformedResponse)):
        await transport.post(b"2", timeout_s=5)

    assert [r.body for r in up.requests] == [b"1", b"2"]


async def _hang(conn: ServerConn) -> None:
    if await conn.read_request() is not None:
        await conn.wait_client_close()


async def test_hang_times_out_and_closes_connection(upstream, make_transport) -> None:
    up = await upstream(_hang)
    transport = make_transport(up.url())

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await transport.post(BODY, timeout_s=0.3)

    assert time.monotonic() - started < 0.3 + 1.0
    await up.wait_until(lambda: up.client_closes == 1)


async def test_waiting_for_a_full_pool_times_out(upstream, make_transport) -> None:
    up = await upstream(_hang)
    transport = make_transport(up.url(), pool_size=1)
    first = asyncio.create_task(transport.post(BODY, timeout_s=0.6))
    await up.wait_until(lambda: len(up.requests) == 1)

    with pytest.raises(UpstreamTimeout):
        await transport.post(BODY, timeout_s=0.2)

    assert up.connections == 1
    with pytest.raises(UpstreamTimeout):
        await first


async def test_cancellation_closes_the_connection(upstream, make_transport) -> None:
    up = await upstream(_hang)
    transport = make_transport(up.url())
    task = asyncio.create_task(transport.post(BODY, timeout_s=10))
    await up.wait_until(lambda: len(up.requests) == 1)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await up.wait_until(lambda: up.client_closes == 1)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_response_over_the_cap_is_refused(upstream, make_transport, chunked) -> None:
    big = b"x" * 2_000_000  # more than any client buffers on its own

    async def big_answer(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            if req.body == b"small":
                await conn.send(response(200, b"y" * 1000))
            elif not await conn.send(response(200, big, chunks=[big] if chunked else None)):
                return
        await conn.wait_client_close()

    up = await upstream(big_answer)
    transport = make_transport(up.url(), max_response_bytes=1000)

    assert len((await transport.post(b"small", timeout_s=5)).body) == 1000  # exactly the cap
    with pytest.raises(ResponseTooLarge):
        await transport.post(BODY, timeout_s=5)

    await up.wait_until(lambda: up.client_closes == 1)  # closed, not drained for reuse
    assert (await transport.post(b"small", timeout_s=5)).status == 200


async def test_malformed_http_is_malformed_response(upstream, make_transport) -> None:
    async def garbage(conn: ServerConn) -> None:
        if await conn.read_request() is not None:
            await conn.send(b"HTTP/1.1 abc nonsense\r\n\r\n")
            await conn.wait_client_close()

    up = await upstream(garbage)
    transport = make_transport(up.url())

    with pytest.raises(MalformedResponse):
        await transport.post(BODY, timeout_s=5)
    await up.wait_until(lambda: up.client_closes == 1)


async def test_url_path_and_query_are_the_request_target(upstream, make_transport) -> None:
    up = await upstream()
    transport = make_transport(up.url("/v2/KEY123?network=main&x=%2F"))

    await transport.post(BODY, timeout_s=5)
    await transport.post(BODY, timeout_s=5)

    assert [r.target for r in up.requests] == ["/v2/KEY123?network=main&x=%2F"] * 2


SECRETS = ("SECRETKEY123", "SECRET456", "alice", "pw789")


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {text!r}"


async def _failure(transport: UpstreamTransport, timeout_s: float = 5) -> TransportError:
    with pytest.raises(TransportError) as info:
        await transport.post(BODY, timeout_s=timeout_s)
    return info.value


async def test_url_secrets_never_appear_in_repr_or_errors(upstream, make_transport) -> None:
    path = "/v2/SECRETKEY123?key=SECRET456"
    hang = await upstream(_hang)

    async def garbage(conn: ServerConn) -> None:
        if await conn.read_request() is not None:
            await conn.send(b"garbage\r\n\r\n")

    broken = await upstream(garbage)
    transports = [
        make_transport(f"http://alice:pw789@127.0.0.1:{_closed_port()}{path}"),
        make_transport(hang.url(path, userinfo="alice:pw789@")),
        make_transport(broken.url(path, userinfo="alice:pw789@")),
    ]
    errors = [
        await _failure(transports[0]),
        await _failure(transports[1], timeout_s=0.2),
        await _failure(transports[2]),
    ]

    assert [type(e) for e in errors] == [ConnectError, UpstreamTimeout, MalformedResponse]
    for transport, error in zip(transports, errors, strict=True):
        _assert_no_secret(repr(transport))
        assert "127.0.0.1:" in repr(transport)
        _assert_no_secret(str(error))
        _assert_no_secret("".join(traceback.format_exception(error)))


async def test_aclose_closes_every_connection(upstream, make_transport) -> None:
    up = await upstream(_hang)
    transport = make_transport(up.url(), pool_size=3)
    pending = [asyncio.create_task(transport.post(BODY, timeout_s=10)) for _ in range(4)]
    await up.wait_until(lambda: len(up.requests) == 3)

    await transport.aclose()

    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(r, TransportError) for r in results), results
    await up.wait_until(lambda: up.client_closes == 3)
    with pytest.raises(ConnectError):
        await transport.post(BODY, timeout_s=1)


async def test_aclose_closes_idle_connections(upstream, make_transport) -> None:
    up = await upstream()
    transport = make_transport(up.url(), pool_size=3)
    await asyncio.gather(*(transport.post(BODY, timeout_s=5) for _ in range(3)))

    await transport.aclose()

    await up.wait_until(lambda: up.client_closes == up.connections)


async def test_cancelled_waiter_does_not_leak_a_slot(upstream, make_transport) -> None:
    release = asyncio.Event()

    async def gated(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            await release.wait()
            await conn.send(response(200, req.body))
        await conn.wait_client_close()

    up = await upstream(gated)
    transport = make_transport(up.url(), pool_size=1)
    first = asyncio.create_task(transport.post(b"1", timeout_s=5))
    await up.wait_until(lambda: len(up.requests) == 1)
    queued = asyncio.create_task(transport.post(b"2", timeout_s=5))
    await asyncio.sleep(0.05)  # let it queue behind the first
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued

    release.set()
    assert (await first).body == b"1"
    assert (await transport.post(b"3", timeout_s=5)).body == b"3"
    assert [r.body for r in up.requests] == [b"1", b"3"]
    assert up.connections == 1


async def test_https_with_a_trusted_certificate(upstream, make_transport, cert: Cert) -> None:
    up = await upstream(tls=cert.server)
    trusted = ssl.create_default_context(cafile=cert.cafile)
    transport = make_transport(up.url("/v1/k?a=b"), ssl_context=trusted)

    for i in range(3):
        body = b'{"id":%d}' % i
        assert (await transport.post(body, timeout_s=5)).body == body

    assert up.connections == 1
    assert up.requests[0].target == "/v1/k?a=b"


async def test_https_with_an_untrusted_certificate(upstream, make_transport, cert: Cert) -> None:
    up = await upstream(tls=cert.server)
    transport = make_transport(up.url())  # the default context does not trust it

    with pytest.raises(ConnectError) as info:
        await transport.post(BODY, timeout_s=5)

    assert info.value.never_sent is True
    assert up.requests == []
