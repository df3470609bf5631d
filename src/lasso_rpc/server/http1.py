"""The HTTP/1.1 front door: ``POST /rpc/...`` answered by a lean protocol, the rest by aiohttp.

Why: aiohttp.web costs about 45 µs of CPU per request on the build machine (Request and
Response objects, header multidicts, URL dispatch, a StreamReader per body), as much as the
router's own work, and every call of every user pays it. The hot path gets its own parser.

How a connection is served:

- Every accepted connection starts here. Each request head is read whole and checked. A request
  ``POST /rpc/...`` over HTTP/1.0 or 1.1, framed by exactly one ``Content-Length``, with no
  ``Transfer-Encoding``, ``Upgrade`` or unusual ``Expect``, on a plain path (no percent-escape,
  dot or empty segment) is answered here by :class:`~lasso_rpc.server.rpc.RpcHandler`.
- Anything else (``/health``, ``/metrics``, ``/api/...``, WebSocket upgrades, chunked bodies,
  malformed heads) hands the connection to aiohttp's own protocol, with every byte from the start
  of that request. aiohttp keeps the connection until it closes. Nothing this parser does not
  understand is refused here: aiohttp, the reference, decides.
- Requests on one connection are answered in order (pipelining works): while one is in flight
  the next waits in the buffer, and reading pauses when that buffer or the socket's write buffer
  is full.
- A body over the largest ``max_body_bytes`` of any chain gets its 413 at once, and the
  connection closes (the body is never read).
- Idle keep-alive connections close after ``keepalive_s``. On shutdown idle connections close at
  once and busy ones as soon as their answer is written, or when the grace period ends.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import cast
from urllib.parse import parse_qsl

import msgspec

from lasso_rpc.errors import RequestRejected
from lasso_rpc.jsonrpc.codec import encode_error
from lasso_rpc.server.rpc import RpcHandler, RpcReply, body_too_large, reject

__all__ = ["FrontDoor", "HandOff", "RequestHead", "parse_head", "parse_query"]

log = logging.getLogger("lasso_rpc.server")

_MAX_HEAD = 65536  # a longer head goes to aiohttp, which answers 400/431
_MAX_PIPELINED = 256 * 1024  # buffered bytes behind a request in flight before reading pauses
_SWEEP_S = 5.0
_LARGE = 16 * 1024  # bodies from this size are written beside their head, not copied into it
_CTL = re.compile(rb"[\x00-\x1f\x7f]")
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_REASONS = {
    200: b"OK",
    204: b"No Content",
    400: b"Bad Request",
    413: b"Payload Too Large",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
}
# Lower-cased names of the only headers the hot path reads.
_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _UPGRADE, _EXPECT, _META, _REQUEST_ID, _HOST = (
    range(8)
)
_HEADERS = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"upgrade": _UPGRADE,
    b"expect": _EXPECT,
    b"x-lasso-include-meta": _META,
    b"x-request-id": _REQUEST_ID,
}
_INTERNAL = RpcReply(500, encode_error(None, -32603, "internal error"))


class RequestHead(msgspec.Struct, frozen=True):
    """A request head the hot path serves; the body is ``buf[start:end]``."""

    tail: str  # the path after /rpc/
    query: bytes
    meta: str | None  # X-Lasso-Include-Meta
    request_id: str | None  # X-Request-Id
    keep_alive: bool
    http10: bool
    expect_continue: bool
    start: int
    end: int


class HandOff:
    """Marker: this request is aiohttp's."""


_HANDOFF = HandOff()


def parse_head(buf: bytes | bytearray) -> RequestHead | HandOff | None:
    """The head at the start of ``buf``: a hot-path request, a hand-off, or None (need more)."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return _HANDOFF if len(buf) > _MAX_HEAD or b"\n\n" in buf else None
    head = bytes(buf[:i])
    lines = head.split(b"\r\n")
    # A bare CR or LF anywhere would be read differently by someone: aiohttp decides.
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        return _HANDOFF
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST":
        return _HANDOFF
    target, version = parts[1], parts[2]
    if version == b"HTTP/1.1":
        keep_alive, http10 = True, False
    elif version == b"HTTP/1.0":
        keep_alive, http10 = False, True
    else:
        return _HANDOFF
    q = target.find(b"?")
    path, query = (target, b"") if q < 0 else (target[:q], target[q + 1 :])
    if path[:5] != b"/rpc/" or b"%" in path or b"/." in path or b"//" in path or b"#" in target:
        return _HANDOFF
    length = -1
    meta: str | None = None
    request_id: str | None = None
    expect_continue = False
    host = False
    for line in lines[1:]:
        c = line.find(b":")
        # No colon, a folded line, or a name that is not an RFC 9110 token: not for this parser.
        name = line[:c]
        if c <= 0 or name.translate(None, _TOKEN):
            return _HANDOFF
        k = _HEADERS.get(name.lower())
        if k is None:
            continue
        v = line[c + 1 :].strip(b" \t")
        if k == _HOST:
            if host:
                return _HANDOFF  # twice: 400 from aiohttp
            host = True
        elif k == _CONTENT_LENGTH:
            if length >= 0 or not v.isdigit():
                return _HANDOFF
            length = int(v)
        elif k == _CONNECTION:
            for token in v.lower().split(b","):
                token = token.strip(b" \t")
                if token == b"close":
                    keep_alive = False
                elif token == b"keep-alive":
                    keep_alive = True
                elif token == b"upgrade":
                    return _HANDOFF
        elif k == _META:
            if meta is None:
                meta = v.decode("latin-1")
        elif k == _REQUEST_ID:
            if _CTL.search(v) is not None:
                return _HANDOFF  # echoed in a response header: let aiohttp judge it
            if request_id is None:
                request_id = v.decode("utf-8", "surrogateescape")
        elif k == _EXPECT and v.lower() == b"100-continue":
            expect_continue = True
        else:  # Transfer-Encoding, Upgrade, another Expect
            return _HANDOFF
    if length < 0 or not (host or http10):  # HTTP/1.1 requires a Host (400 from aiohttp)
        return _HANDOFF
    try:
        tail = path[5:].decode("ascii")
    except UnicodeDecodeError:
        return _HANDOFF
    start = i + 4
    return RequestHead(
        tail, query, meta, request_id, keep_alive, http10, expect_continue, start, start + length
    )


_queries: dict[bytes, tuple[str | None, bool]] = {}


def parse_query(query: bytes) -> tuple[str | None, bool]:
    """``(include_meta, failover)`` from a query string; the first value of a key wins."""
    hit = _queries.get(query)
    if hit is None:
        meta: str | None = None
        failover: str | None = None
        for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if k == "include_meta" and meta is None:
                meta = v
            elif k == "failover" and failover is None:
                failover = v
        hit = (meta, failover == "true")
        if len(_queries) < 1024:  # clients choose queries: the cache must stay bounded
            _queries[query] = hit
    return hit


class FrontDoor:
    """The protocol factory for the router's listening socket (``loop.create_server(door)``)."""

    def __init__(
        self,
        rpc: RpcHandler,
        fallback: Callable[[], asyncio.BaseProtocol],
        *,
        keepalive_s: float = 75.0,
    ) -> None:
        self.rpc = rpc
        self.fallback = fallback
        self.keepalive_s = keepalive_s
        self.conns: set[_Connection] = set()
        self.closing = False
        self.handed_off = 0
        self._config: object = None
        self._max_body = 0
        self._date_at = -1
        self._prefix = b""
        self._date = b""
        self._sweeper: asyncio.TimerHandle | None = None

    def __call__(self) -> _Connection:
        return _Connection(self)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(_SWEEP_S, self._sweep)

    async def shutdown(self, timeout_s: float) -> None:
        """Close idle connections now, busy ones after their answer, the rest at the deadline."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.conns):
            if not conn.busy:
                conn.close()
        # With ``closing`` set, a connection closes after its answer: no new request starts.
        tasks = [c.task for c in self.conns if c.busy and c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        for conn in list(self.conns):
            conn.abort()

    def max_body(self) -> int:
        """The largest ``max_body_bytes`` of any chain (the per-chain check comes later)."""
        router = self.rpc.router
        if router.config is not self._config:  # recomputed after a reload only
            self._config = router.config
            limits = [c.routing.max_body_bytes for c in router.chains()]
            self._max_body = max(limits, default=5 * 1024 * 1024)
        return self._max_body

    def prefix_200(self) -> bytes:
        """The head of a plain ``200`` JSON answer up to its length, with today's Date."""
        now = int(time.time())
        if now != self._date_at:
            self._date_at = now
            self._date = formatdate(now, usegmt=True).encode("ascii")
            self._prefix = (
                b"HTTP/1.1 200 OK\r\nServer: lasso-rpc\r\nContent-Type: application/json\r\n"
                b"Date: " + self._date + b"\r\nContent-Length: "
            )
        return self._prefix

    def head(
        self, status: int, body: bytes | None, headers: tuple[tuple[str, str], ...], close: str
    ) -> bytes:
        """Any other response head. ``close``: "" or a Connection header value."""
        self.prefix_200()  # refreshes the Date
        lines = [
            b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown")),
            b"Server: lasso-rpc",
            b"Date: " + self._date,
        ]
        if body is not None:
            lines.append(b"Content-Type: application/json")
            lines.append(b"Content-Length: %d" % len(body))
        if close:
            lines.append(b"Connection: " + close.encode("ascii"))
        for name, value in headers:
            lines.append(f"{name}: {value}".encode("utf-8", "surrogateescape"))
        lines.append(b"\r\n")
        return b"\r\n".join(lines)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        idle_before = loop.time() - self.keepalive_s
        for conn in list(self.conns):
            if not conn.busy and conn.last_active < idle_before:
                conn.close()
        self._sweeper = loop.call_later(_SWEEP_S, self._sweep)

    def __repr__(self) -> str:
        busy = sum(1 for c in self.conns if c.busy)
        return (
            f"FrontDoor(connections={len(self.conns)}, busy={busy},"
            f" handed_off={self.handed_off}, closing={self.closing})"
        )


class _Connection(asyncio.Protocol):
    """One client connection while the hot path serves it."""

    __slots__ = (
        "_buf",
        "_door",
        "_eof",
        "_head",
        "_inbox",
        "_loop",
        "_peer",
        "_read_paused",
        "_transport",
        "_write_paused",
        "busy",
        "last_active",
        "task",
    )

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf: bytes | bytearray = b""
        self._head: RequestHead | None = None  # parsed, waiting for the rest of its body
        self.task: asyncio.Task[None] | None = None  # serves requests in turn; lives while needed
        # Where the task waits for the next request (None: closed or handed over).
        self._inbox: asyncio.Future[tuple[RequestHead, bytes] | None] | None = None
        self._peer = "?"
        self._eof = False
        self._read_paused = False
        self._write_paused = False
        self.busy = False
        self.last_active = self._loop.time()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._peer = str(peer[0])
        self._door.conns.add(self)
        if self._door.closing:
            self.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if not buf:
            self._buf = data
        else:
            if type(buf) is bytes:
                buf = bytearray(buf)  # keep appending in place: bodies can come in many reads
            buf += data
            self._buf = buf
        self.last_active = self._loop.time()
        if not self.busy:
            self._dispatch(self._advance())
        elif len(self._buf) > _MAX_PIPELINED and not self._read_paused:
            self._pause_reading()

    def eof_received(self) -> bool | None:
        self._eof = True
        return True if self.busy else None  # keep the socket to write the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._door.conns.discard(self)
        self._transport = None
        self._wake(None)
        # A call in flight runs to its end (its request event included); its answer is dropped.

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self.busy:
            self._dispatch(self._advance())

    # -- requests ------------------------------------------------------------------------

    def _advance(self) -> tuple[RequestHead, bytes] | None:
        """The next complete request in the buffer, if any; or hand the connection over."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._write_paused:
            return None
        buf = self._buf
        if not buf:
            self._resume_reading()
            return None
        head = self._head
        if head is None:
            parsed = parse_head(buf)
            if parsed is None:
                self._resume_reading()
                return None
            if isinstance(parsed, HandOff):
                self._hand_off(transport)
                return None
            head = parsed
            limit = self._door.max_body()
            if head.end - head.start > limit:
                # Not read at all: answered now, and the connection cannot be reused.
                self._write(reject(body_too_large(limit)), head, close=True)
                transport.close()
                return None
            if head.expect_continue and len(buf) < head.end:
                transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._head = head
        if len(buf) < head.end:
            self._resume_reading()
            return None
        body = bytes(buf[head.start : head.end])
        rest = buf[head.end :]
        self._buf = rest if rest else b""
        self._head = None
        self.busy = True
        return head, body

    def _dispatch(self, request: tuple[RequestHead, bytes] | None) -> None:
        """Hand a request to the connection's task: wake it, or start it on the first one."""
        if request is None:
            return
        if self._inbox is not None:
            self._wake(request)
        else:
            # One task per connection, not per request: a Future per request is cheaper.
            self.task = self._loop.create_task(self._serve_all(*request))

    def _wake(self, request: tuple[RequestHead, bytes] | None) -> None:
        inbox, self._inbox = self._inbox, None
        if inbox is not None and not inbox.done():
            inbox.set_result(request)

    async def _serve_all(self, head: RequestHead, body: bytes) -> None:
        """Requests of this connection in order, until it closes or is handed over."""
        try:
            while True:
                if not await self._serve(head, body):
                    return
                request = self._advance()  # a pipelined request, if one is buffered
                if request is None:
                    if self._eof and not self.busy:
                        self.close()  # the client sent all it will send
                    if self._transport is None or self._transport.is_closing():
                        return
                    inbox = self._inbox = self._loop.create_future()
                    request = await inbox
                    if request is None:
                        return
                head, body = request
        finally:
            self.task = None

    async def _serve(self, head: RequestHead, body: bytes) -> bool:
        """One request, answered; False when the connection is done."""
        rpc = self._door.rpc
        try:
            meta, failover = parse_query(head.query) if head.query else (None, False)
            try:
                route, chain = rpc.target(head.tail)
            except RequestRejected as exc:
                reply = reject(exc)
            else:
                reply = await rpc.respond(
                    route,
                    chain,
                    body,
                    meta_mode=meta or head.meta,
                    request_id=head.request_id,
                    failover=failover,
                    peer=self._peer,
                )
        except Exception:
            log.exception("unexpected error answering POST /rpc/%s", head.tail)
            reply = _INTERNAL
        close = not head.keep_alive or self._door.closing
        self._write(reply, head, close=close)
        self.busy = False
        transport = self._transport
        if transport is None:
            return False
        if close:
            transport.close()
            return False
        return True

    def _write(self, reply: RpcReply, head: RequestHead, *, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self.last_active = self._loop.time()
        body = reply.body
        door = self._door
        plain = reply.status == 200 and not reply.headers and not close and not head.http10
        if plain and body is not None:
            prefix = door.prefix_200()
            if len(body) < _LARGE:
                transport.write(b"".join((prefix, b"%d\r\n\r\n" % len(body), body)))
            else:
                transport.writelines((prefix, b"%d\r\n\r\n" % len(body), body))
            return
        if head.http10:
            connection = "close" if close else "keep-alive"
        else:
            connection = "close" if close else ""
        out = door.head(reply.status, body, reply.headers, connection)
        if body is None:
            transport.write(out)
        elif len(body) < _LARGE:
            transport.write(out + body)
        else:
            transport.writelines((out, body))

    # -- connection control --------------------------------------------------------------

    def _hand_off(self, transport: asyncio.Transport) -> None:
        """From now on aiohttp serves this connection, starting with the buffered request."""
        door = self._door
        door.conns.discard(self)
        door.handed_off += 1
        self._wake(None)
        data = bytes(self._buf)
        self._buf = b""
        self._transport = None
        self._resume_reading_of(transport)
        proto = door.fallback()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if data:
            cast(asyncio.Protocol, proto).data_received(data)
        if self._eof:
            cast(asyncio.Protocol, proto).eof_received()

    def _pause_reading(self) -> None:
        if self._transport is not None and not self._read_paused:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._transport is not None:
            self._resume_reading_of(self._transport)

    def _resume_reading_of(self, transport: asyncio.Transport) -> None:
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        if self.task is not None:
            self.task.cancel()

    def __repr__(self) -> str:
        state = "busy" if self.busy else "idle"
        return f"<FrontDoor connection {self._peer} {state} buffered={len(self._buf)}>"
