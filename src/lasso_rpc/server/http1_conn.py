"""One client connection of the HTTP/1.1 front: an ``asyncio.Protocol`` serving ``POST /rpc/...``.

Requests on one connection are answered in order by one task (pipelining works): while one is in
flight the next waits in the buffer, and reading pauses when that buffer, the requests read ahead
(``max_pipelined``) or the socket's write buffer is full. A request the head parser
(``server/http1_head.py``) does not take hands the connection, with every byte from the start of
that request, to aiohttp's protocol, unless the guard (``server/http1_guard.py``) refuses it
first: then the answer says why, the rest of the input is never parsed, and the connection
closes. The listener that owns these connections is ``server/http1.FrontDoor`` (a ``Door``
here); it also asks each connection, every second, whether a head or body is overdue
(``expired``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from lasso_rpc.access.keys import mask_path_key
from lasso_rpc.config.limits import ServerLimits
from lasso_rpc.jsonrpc.codec import encode_error
from lasso_rpc.server.conn_gate import peer_of, refusal_bytes
from lasso_rpc.server.http1_guard import HeadLimits, Refusal, head_refusal
from lasso_rpc.server.http1_head import RequestHead, parse_head, parse_query
from lasso_rpc.server.http1_write import write_reply
from lasso_rpc.server.rpc import RpcHandler, RpcReply, body_too_large, reject

__all__ = ["Door", "FrontConnection"]

log = logging.getLogger("lasso_rpc.server")

_MAX_PIPELINED = 256 * 1024  # buffered bytes behind a request in flight before reading pauses
_INTERNAL = RpcReply(500, encode_error(None, -32603, "internal error"))
_TOO_MANY_FIELDS = Refusal(431, "too many header fields", "header_count")
_LINGER_S = 2.0  # after a refusal: input read and dropped this long, so the answer is not reset


class Door(Protocol):
    """What a connection needs from the listener that accepted it."""

    @property
    def rpc(self) -> RpcHandler: ...

    @property
    def closing(self) -> bool:
        """Shutting down: answer what is in flight, then close."""
        ...

    @property
    def limits(self) -> ServerLimits: ...

    @property
    def head_limits(self) -> HeadLimits: ...

    def opened(self, conn: FrontConnection, peer: str) -> bytes | None:
        """Takes a place at the gate; or the answer that refuses the connection."""
        ...

    def lost(self, conn: FrontConnection, peer: str | None) -> None:
        """``conn`` closed; ``peer``: the address whose gate place it held, if it held one."""
        ...

    def rejected(self, limit: str, peer: str, detail: str = "") -> None: ...

    def hand_off(self, conn: FrontConnection, peer: str) -> asyncio.BaseProtocol:
        """``conn`` leaves the front: the aiohttp protocol that takes its socket over."""
        ...

    def max_body(self) -> int: ...

    def prefix_200(self) -> bytes: ...

    def head(
        self, status: int, body: bytes | None, headers: tuple[tuple[str, str], ...], close: str
    ) -> bytes: ...


class FrontConnection(asyncio.Protocol):
    """One client connection while the hot path serves it."""

    __slots__ = (
        "_body_since",
        "_buf",
        "_door",
        "_eof",
        "_head",
        "_head_since",
        "_inbox",
        "_lingering",
        "_loop",
        "_peer",
        "_placed",
        "_read_paused",
        "_transport",
        "_write_paused",
        "busy",
        "last_active",
        "task",
    )

    def __init__(self, door: Door) -> None:
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
        # Since when the head being read (or, the first, awaited) and the body are on their way.
        self._head_since: float | None = self.last_active
        self._body_since: float | None = None
        self._lingering = False  # refused: input is dropped until the close
        self._placed = False  # holds a place at the door's gate

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = tr = cast(asyncio.Transport, transport)
        self._peer = peer_of(transport)
        refusal = self._door.opened(self, self._peer)
        if refusal is not None:
            tr.write(refusal)
            self._linger(tr)
            return
        self._placed = True
        if self._door.closing:
            self.close()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._head_since is None and self._head is None and not self.busy:
            self._head_since = self._loop.time()  # the first byte of a request head
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
        elif not self._read_paused:
            buf = self._buf
            if len(buf) > _MAX_PIPELINED:
                self._pause_reading()
            elif buf.count(b"\r\n\r\n") >= self._door.limits.max_pipelined:
                # An upper bound of the heads read ahead (a body may hold the marker too).
                self._pause_reading()
                self._door.rejected("pipelined", self._peer)

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._lingering:
            return None  # the client read the refusal and left: close now
        return True if self.busy else None  # keep the socket to write the answer

    def connection_lost(self, exc: Exception | None) -> None:
        placed, self._placed = self._placed, False
        self._door.lost(self, self._peer if placed else None)
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
            if not isinstance(parsed, RequestHead):
                refusal = head_refusal(buf, self._door.head_limits)
                if refusal is not None:
                    self._refuse(transport, refusal)
                elif parsed is None:
                    self._resume_reading()
                else:
                    self._hand_off(transport)
                return None
            head = parsed
            hl = self._door.head_limits
            if head.start > hl.max_bytes or head.fields > hl.max_fields:
                # The guard's verdict on a head the hot path would take: too long or too many.
                self._refuse(transport, head_refusal(buf, hl) or _TOO_MANY_FIELDS)
                return None
            self._head_since = None
            self._body_since = self._loop.time()
            limit = self._door.max_body()
            if head.end - head.start > limit:
                # Not read at all: answered now, and the connection cannot be reused.
                self._door.rejected("body_bytes", self._peer)
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
        self._body_since = None
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
            reply = await rpc.serve(
                head.tail,
                body,
                key=head.key,
                meta_mode=meta or head.meta,
                request_id=head.request_id,
                failover=failover,
                peer=self._peer,
                cache_bypass=head.cache_bypass,
            )
        except Exception:
            log.exception("unexpected error answering POST /rpc/%s", mask_path_key(head.tail))
            reply = _INTERNAL
        close = not head.keep_alive or self._door.closing
        self._write(reply, head, close=close)
        self.busy = False
        # A head already arriving behind this request is timed from now.
        self._head_since = self.last_active if self._buf else None
        transport = self._transport
        if transport is None:
            return False
        if close:
            transport.close()
            return False
        return True

    def _write(self, reply: RpcReply, head: RequestHead, *, close: bool) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self.last_active = self._loop.time()
            write_reply(transport, self._door, reply, head, close=close)

    # -- connection control --------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Between requests: nothing in flight, nothing of the next request read yet."""
        return not (self.busy or self._buf or self._head is not None or self._lingering)

    def expired(self, now: float) -> str | None:
        """The limit this connection is past (its head or body is overdue), if any."""
        if self.busy or self._transport is None:
            return None
        limits = self._door.limits
        if self._lingering:
            return "linger" if now - self.last_active > _LINGER_S else None
        if self._head is not None:
            since = self._body_since
            if since is not None and now - since > limits.body_timeout_s:
                return "body_timeout"
        elif self._head_since is not None and now - self._head_since > limits.header_timeout_s:
            return "header_timeout"
        return None

    def time_out(self, limit: str) -> None:
        """Answer 408 and close (a lingering connection just closes)."""
        transport = self._transport
        if transport is None:
            return
        if limit == "linger":
            transport.close()
            return
        self._door.rejected(limit, self._peer)
        what = "request body" if limit == "body_timeout" else "request head"
        transport.write(refusal_bytes(408, f"{what} not received in time"))
        self._linger(transport)

    def _refuse(self, transport: asyncio.Transport, refusal: Refusal) -> None:
        """Answer a refused request and close: nothing after it on this connection is read."""
        self._door.rejected(refusal.limit, self._peer, refusal.reason)
        transport.write(refusal_bytes(refusal.status, refusal.reason))
        self._linger(transport)

    def _linger(self, transport: asyncio.Transport) -> None:
        # Half-close and drop what still comes: closing with unread input would send a reset
        # that can destroy the answer before the client reads it.
        self._lingering = True
        self._buf = b""
        self._head = None
        self.last_active = self._loop.time()
        self._wake(None)
        self._resume_reading_of(transport)
        if self._eof or not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:  # the client is gone already (ENOTCONN)
            transport.close()

    def _hand_off(self, transport: asyncio.Transport) -> None:
        """From now on aiohttp serves this connection, starting with the buffered request."""
        self._placed = False  # the place at the gate goes with the socket
        proto = self._door.hand_off(self, self._peer)
        self._wake(None)
        data = bytes(self._buf)
        self._buf = b""
        self._transport = None
        self._resume_reading_of(transport)
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
