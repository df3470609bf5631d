"""Request smuggling and desync, on a real socket, for the whole port (issue 16).

Each row is an attack and the RFC 9112 rule (or the RFC it points to) the router enforces. Every
attack is followed, in the same write, by a hidden request (``eth_chainId``, id "smuggled").
The attack must get exactly one refusal, then the connection must close: no other byte is
answered, the hidden request is never served. Each row runs in three places: as the first
request of a connection (the lean front's guard), after a request the lean front answered
(keep-alive), and after a request handed to aiohttp (the connection is aiohttp's from then on;
its parser and the strict middleware answer).
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest

from lasso_rpc.observability.events import Event, LimitRejected, RequestFinished
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory
from tests.integration.test_http1_front import call, post, read_response

pytestmark = pytest.mark.asyncio

HIDDEN_BODY = orjson.dumps({"jsonrpc": "2.0", "id": "smuggled", "method": "eth_chainId"})
HIDDEN = post("/rpc/ethereum", HIDDEN_BODY)
BODY = call(id=1)


def req(*lines: str, body: bytes = b"", end: str = "\r\n") -> bytes:
    return (end.join(lines) + end + end).encode("latin-1") + body


def pr(path: str = "/rpc/ethereum", *extra: str, version: str = "1.1", body: bytes = BODY) -> bytes:
    return req(
        f"POST {path} HTTP/{version}", "Host: t", f"Content-Length: {len(body)}", *extra, body=body
    )


# (name, rule, raw, status from the lean front, status from aiohttp's side)
ROWS: list[tuple[str, str, bytes, int, int]] = [
    (
        "CL and TE together",
        "RFC 9112 §6.1: Content-Length with Transfer-Encoding is refused, then close",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "TE then CL",
        "RFC 9112 §6.1: whatever the order",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding: chunked",
            "Content-Length: 5",
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "two different Content-Lengths",
        "RFC 9112 §6.3 (5): an invalid Content-Length is 400, then close",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Content-Length: 2",
            "Content-Length: 7",
            body=b"{}",
        ),
        400,
        400,
    ),
    (
        "two equal Content-Lengths",
        "RFC 9112 §6.3 (5): refused rather than merged",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            f"Content-Length: {len(BODY)}",
            f"Content-Length: {len(BODY)}",
            body=BODY,
        ),
        400,
        400,
    ),
    (
        "Content-Length list",
        "RFC 9112 §6.3 (5): '5, 5' is not a length",
        req("POST /rpc/ethereum HTTP/1.1", "Host: t", "Content-Length: 2, 2", body=b"{}"),
        400,
        400,
    ),
    (
        "signed Content-Length",
        "RFC 9110 §8.6: Content-Length is 1*DIGIT",
        req("POST /rpc/ethereum HTTP/1.1", "Host: t", "Content-Length: +2", body=b"{}"),
        400,
        400,
    ),
    (
        "hex Content-Length",
        "RFC 9110 §8.6: Content-Length is 1*DIGIT",
        req("POST /rpc/ethereum HTTP/1.1", "Host: t", "Content-Length: 0x2", body=b"{}"),
        400,
        400,
    ),
    (
        "empty Content-Length",
        "RFC 9110 §8.6: Content-Length is 1*DIGIT",
        req("POST /rpc/ethereum HTTP/1.1", "Host: t", "Content-Length: ", body=b"{}"),
        400,
        400,
    ),
    (
        "Content-Length overflow",
        "RFC 9112 §6.3 (5) / RFC 9110 §8.6: a length past 18 digits is invalid: 400, close",
        req("POST /rpc/ethereum HTTP/1.1", "Host: t", "Content-Length: 99999999999999999999999"),
        400,
        400,
    ),
    (
        "Content-Length over every limit",
        "RFC 9112 §6.3 / RFC 9110 §15.5.14: 413 at once, the body unread, then close",
        req("POST /rpc/ethereum HTTP/1.1", "Host: t", "Content-Length: 999999999999"),
        413,
        413,
    ),
    (
        "TE not ending in chunked",
        "RFC 9112 §6.3 (4): a request whose final coding is not chunked is 400, close",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding: chunked, identity",
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "obfuscated TE value",
        "RFC 9112 §6.3 (4): 'xchunked' is not chunked",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding: xchunked",
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "quoted TE value",
        "RFC 9112 §6.3 (4): '\"chunked\"' is not chunked",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            'Transfer-Encoding: "chunked"',
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "TE given twice",
        "RFC 9112 §6.1 / §7: chunked applied twice is refused",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "TE with a space before the colon",
        "RFC 9112 §5.1: whitespace between name and colon is 400",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding : chunked",
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "TE with a vertical tab",
        "RFC 9110 §5.5: VT is not field content",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding:\x0bchunked",
            body=b"0\r\n\r\n",
        ),
        400,
        400,
    ),
    (
        "chunked body in HTTP/1.0",
        "RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing",
        req(
            "POST /rpc/ethereum HTTP/1.0",
            "Host: t",
            "Transfer-Encoding: chunked",
            body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
        ),
        400,
        400,
    ),
    (
        "bad chunk size",
        "RFC 9112 §7.1: chunk-size is 1*HEXDIG",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding: chunked",
            body=b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
        ),
        400,
        400,
    ),
    (
        "chunk line ended by LF",
        "RFC 9112 §7.1: chunk lines end with CRLF",
        req(
            "POST /rpc/ethereum HTTP/1.1",
            "Host: t",
            "Transfer-Encoding: chunked",
            body=b"%x\n%s\n0\n\n" % (len(BODY), BODY),
        ),
        400,
        400,
    ),
    (
        "bare LF line ends",
        "RFC 9112 §2.2: bare LF is not recognised as a line terminator here",
        pr().replace(b"\r\n", b"\n"),
        400,
        400,
    ),
    (
        "one bare LF",
        "RFC 9112 §2.2: bare LF is not recognised as a line terminator here",
        pr("/rpc/ethereum", "X-A: 1").replace(b"Host: t\r\n", b"Host: t\n"),
        400,
        400,
    ),
    (
        "bare CR",
        "RFC 9112 §2.2: a bare CR is invalid",
        pr("/rpc/ethereum", "X-A: 1\rX-B: 2"),
        400,
        400,
    ),
    (
        "obs-fold",
        "RFC 9112 §5.2: obsolete line folding in a request is 400",
        pr("/rpc/ethereum", "X-A: 1", " folded"),
        400,
        400,
    ),
    (
        "obs-fold of Content-Length",
        "RFC 9112 §5.2: obsolete line folding in a request is 400",
        req(
            "POST /rpc/ethereum HTTP/1.1", "Host: t", "Content-Length:", f" {len(BODY)}", body=BODY
        ),
        400,
        400,
    ),
    (
        "whitespace before the first header",
        "RFC 9112 §2.2: whitespace after the start-line is refused",
        req("POST /rpc/ethereum HTTP/1.1", " Host: t", f"Content-Length: {len(BODY)}", body=BODY),
        400,
        400,
    ),
    (
        "space before the colon",
        "RFC 9112 §5.1: whitespace between name and colon is 400",
        req("POST /rpc/ethereum HTTP/1.1", "Host: t", f"Content-Length : {len(BODY)}", body=BODY),
        400,
        400,
    ),
    (
        "NUL in a header value",
        "RFC 9110 §5.5: NUL in a field value is invalid",
        pr("/rpc/ethereum", "X-A: a\x00b"),
        400,
        400,
    ),
    (
        "NUL in a header name",
        "RFC 9110 §5.1: a field name is a token",
        pr("/rpc/ethereum", "X\x00A: b"),
        400,
        400,
    ),
    (
        "DEL in a header value",
        "RFC 9110 §5.5: DEL is not field content",
        pr("/rpc/ethereum", "X-A: a\x7fb"),
        400,
        400,
    ),
    (
        "no Host",
        "RFC 9112 §3.2: an HTTP/1.1 request without Host is 400",
        req("POST /rpc/ethereum HTTP/1.1", f"Content-Length: {len(BODY)}", body=BODY),
        400,
        400,
    ),
    (
        "two Hosts",
        "RFC 9112 §3.2: more than one Host is 400",
        pr("/rpc/ethereum", "Host: u"),
        400,
        400,
    ),
    (
        "HTTP/0.9",
        "RFC 9112 §2.3: a request line without a version (HTTP/0.9) is not served",
        b"GET /health\r\n",
        400,
        400,
    ),
    (
        "HTTP/2 preface",
        "RFC 9112 §2.6 / RFC 9113 §3.4: HTTP/2 is not served on this port: 505",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        505,
        400,
    ),
    (
        "HTTP/2.0 request line",
        "RFC 9112 §2.6: an unsupported major version is 505",
        pr(version="2.0"),
        505,
        400,
    ),
    (
        "HTTP/0.9 version",
        "RFC 9112 §2.6: only HTTP/1.0 and 1.1 are served",
        pr(version="0.9"),
        505,
        400,
    ),
    (
        "lower-case version",
        "RFC 9112 §2.3: HTTP-name is case-sensitive",
        pr().replace(b"HTTP/1.1", b"http/1.1"),
        400,
        400,
    ),
    (
        "control character in the target",
        "RFC 9112 §3.2: the request-target has no CTL",
        pr("/rpc/eth\x01ereum"),
        400,
        400,
    ),
    (
        "dot-segment",
        "RFC 9112 §3.2.1 + RFC 3986 §5.2.4: dot-segments are refused, never normalised",
        pr("/rpc/../metrics"),
        400,
        400,
    ),
    (
        "single-dot segment",
        "RFC 9112 §3.2.1 + RFC 3986 §5.2.4: dot-segments are refused",
        pr("/rpc/./ethereum"),
        400,
        400,
    ),
    (
        "trailing dot-dot",
        "RFC 9112 §3.2.1 + RFC 3986 §5.2.4: dot-segments are refused",
        pr("/rpc/ethereum/.."),
        400,
        400,
    ),
    (
        "encoded dot-segment",
        "RFC 3986 §2.3/§6.2.2: %2e%2e would become '..' after decoding",
        pr("/rpc/%2e%2e/metrics"),
        400,
        400,
    ),
    (
        "encoded slash",
        "RFC 3986 §2.2: %2F would change the path's segments",
        pr("/rpc/provider%2Falpha%2Fethereum"),
        400,
        400,
    ),
    (
        "double-encoded slash",
        "RFC 3986 §2.4: %252F decodes to %2F, then '/'",
        pr("/rpc/provider%252Falpha/ethereum"),
        400,
        400,
    ),
    (
        "backslash",
        "RFC 3986 §3.3: '\\' is not a path separator here",
        pr("/rpc\\..\\metrics"),
        400,
        400,
    ),
    (
        "dot-segment in an absolute-form target",
        "RFC 9112 §3.2.2: absolute-form is routed by its path, same rules",
        pr("http://t/rpc/../metrics"),
        400,
        400,
    ),
    (
        "authority-form target",
        "RFC 9112 §3.2.3: authority-form is for CONNECT only",
        pr("t:80"),
        400,
        400,
    ),
    (
        "head over the size limit",
        "RFC 9110 §5.4 / RFC 6585 §5: a head too large is 431, then close",
        pr("/rpc/ethereum", "X-Big: " + "a" * 40_000),
        431,
        400,
    ),
    (
        "too many header fields",
        "RFC 9110 §5.4 / RFC 6585 §5: too many fields is 431, then close",
        pr("/rpc/ethereum", *(f"X-{i}: {i}" for i in range(120))),
        431,
        400,
    ),
]

PLACES = ["first", "after_fast", "after_aiohttp"]


@contextlib.asynccontextmanager
async def client(s: RouterServer):  # type: ignore[no-untyped-def]
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def rest_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server still sends; fails if it keeps the connection open."""
    out = b""
    try:
        async with asyncio.timeout(4):
            while chunk := await reader.read(65536):
                out += chunk
    except ConnectionResetError:
        pass
    return out


@pytest.fixture
async def server(make_router: RouterFactory) -> RouterServer:
    return await make_router()


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(("name", "rule", "raw", "fast", "aio"), ROWS, ids=[r[0] for r in ROWS])
async def test_smuggling_table(
    server: RouterServer, place: str, name: str, rule: str, raw: bytes, fast: int, aio: int
) -> None:
    events: list[Event] = []
    server.router.bus.subscribe(events.append)
    async with client(server) as (reader, writer):
        if place == "after_fast":
            writer.write(pr(body=call(id="before")))
            assert (await read_response(reader)).json()["id"] == "before"
        elif place == "after_aiohttp":
            writer.write(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (await read_response(reader)).status == 200
        writer.write(raw + HIDDEN)
        r = await read_response(reader)
        expected = aio if place == "after_aiohttp" else fast
        assert r.status == expected, f"{name} ({rule}): {r.status} {r.body[:200]!r}"
        if r.headers.get("connection") is not None:
            assert r.headers["connection"] == "close", f"{name}: {r.headers}"
        rest = await rest_until_closed(reader)
    assert rest == b"", f"{name}: answered again after the refusal ({rule}): {rest[:200]!r}"
    served = [e for e in events if isinstance(e, RequestFinished) and e.method == "eth_chainId"]
    assert served == [], f"{name}: the hidden request was served ({rule})"


async def test_every_row_names_its_rule() -> None:
    assert len({r[0] for r in ROWS}) == len(ROWS)
    assert all(r[1].startswith("RFC ") and "§" in r[1] for r in ROWS)


async def test_a_request_hidden_in_a_body_is_never_served(server: RouterServer) -> None:
    events: list[Event] = []
    server.router.bus.subscribe(events.append)
    async with client(server) as (reader, writer):
        # The body is a whole request, framed by Content-Length: it is a (bad) body, not a request.
        writer.write(pr(body=HIDDEN) + pr(body=call(id="after")))
        first = await read_response(reader)
        assert first.status == 200 and first.json()["error"]["code"] == -32700
        assert (await read_response(reader)).json()["id"] == "after"  # framing held
        # Chunked (through aiohttp): the chunk data holds a request; it is still only data.
        chunked = req(
            "POST /rpc/ethereum HTTP/1.1", "Host: t", "Transfer-Encoding: chunked",
            body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(HIDDEN), HIDDEN),
        )  # fmt: skip
        writer.write(chunked)
        r = await read_response(reader)
        assert r.status == 200 and r.json()["error"]["code"] == -32700
    served = [e for e in events if isinstance(e, RequestFinished) and e.method == "eth_chainId"]
    assert served == []


async def test_absolute_form_is_routed_by_its_path(server: RouterServer) -> None:
    # RFC 9112 §3.2.2: a server MUST accept the absolute-form; its authority is not a route.
    async with client(server) as (reader, writer):
        writer.write(pr("http://elsewhere.example/rpc/ethereum", body=call(id=3)))
        r = await read_response(reader)
    assert r.status == 200 and r.json()["id"] == 3


async def test_refusals_are_counted_by_limit(server: RouterServer) -> None:
    events: list[Event] = []
    server.router.bus.subscribe(events.append)
    for raw in (pr("/rpc/../metrics"), pr(version="2.0"), pr("/rpc/x", "X-Big: " + "a" * 40_000)):
        async with client(server) as (reader, writer):
            writer.write(raw)
            await read_response(reader)
    limits = [e.limit for e in events if isinstance(e, LimitRejected)]
    assert limits == ["malformed_request", "http_version", "header_bytes"]
    async with client(server) as (reader, writer):
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        text = (await read_response(reader)).body.decode()
    assert 'lasso_limit_rejections_total{limit="malformed_request"} 1.0' in text
    assert 'lasso_limit_rejections_total{limit="header_bytes"} 1.0' in text
    assert 'lasso_limit_rejections_total{limit="connections_per_ip"} 0.0' in text


async def test_the_aiohttp_front_enforces_the_same_rules(make_router: RouterFactory) -> None:
    s = await make_router(server={"front": "aiohttp"})
    # (aiohttp's parser itself refuses an HTTP/2.0 request followed by more data: sent alone)
    for raw, status in ((pr("/rpc/../metrics") + HIDDEN, 400), (pr(version="2.0"), 505)):
        async with client(s) as (reader, writer):
            writer.write(raw)
            assert (await read_response(reader)).status == status
            assert await rest_until_closed(reader) == b""
