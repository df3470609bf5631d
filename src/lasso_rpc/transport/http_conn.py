"""One keep-alive HTTP/1.1 connection to an upstream: an ``asyncio.Protocol`` fed to httptools.

A connection carries one exchange at a time (``exchange``: write the request, await the whole
response or a timeout). It tells its owner (the pool, ``transport/http_pool.py``) when it opens
and when it is lost, through the ``ConnectionOwner`` protocol.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import httptools

from lasso_rpc.errors import ConnectionLost, MalformedResponse, ResponseTooLarge, UpstreamTimeout
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.transport.endpoint import parse_retry_after

__all__ = ["ConnectionOwner", "HttpConnection"]


class ConnectionOwner(Protocol):
    """What a connection needs from the pool that opened it."""

    @property
    def origin(self) -> str: ...

    @property
    def max_response_bytes(self) -> int: ...

    def connection_opened(self, conn: HttpConnection) -> None: ...

    def connection_closed(self, conn: HttpConnection, *, was_idle: bool) -> None:
        """``conn`` is gone; ``was_idle``: it was waiting in the pool (the server closed it)."""
        ...


class _TooLarge(Exception):
    """Raised inside a parser callback to stop parsing an oversized body."""


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange in flight."""

    __slots__ = (
        "_chunks",
        "_framed",
        "_headers_done",
        "_loop",
        "_max",
        "_origin",
        "_parser",
        "_pool",
        "_retry_after",
        "_size",
        "_too_large",
        "_transport",
        "_waiter",
        "closed",
        "idle",
        "keep_alive",
        "received",
        "reused",
    )

    def __init__(self, pool: ConnectionOwner) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._origin = pool.origin
        self._max = pool.max_response_bytes
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._retry_after: float | None = None
        self._framed = False  # Content-Length or Transfer-Encoding seen
        self._headers_done = False
        self._too_large = False
        self.closed = False
        self.idle = False
        self.keep_alive = True
        self.received = False  # any byte of the current response arrived
        self.reused = False  # completed an exchange before: may be a stale keep-alive

    def __repr__(self) -> str:
        state = "closed" if self.closed else "idle" if self.idle else "busy"
        return f"<HttpConnection {self._origin} {state}>"

    # -- used by the pool ---------------------------------------------------------------

    async def exchange(self, payload: bytes, deadline: float, timeout_s: float) -> UpstreamResponse:
        self.received = False
        self._headers_done = False
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionLost(f"{self._origin}: connection closed before the request was sent")
        loop = self._loop
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        self._waiter = waiter
        transport.write(payload)
        timer = loop.call_at(deadline, self._expire, waiter, timeout_s)
        try:
            return await waiter
        finally:
            timer.cancel()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _expire(self, waiter: asyncio.Future[UpstreamResponse], timeout_s: float) -> None:
        if not waiter.done():
            msg = f"{self._origin}: no complete response within {timeout_s:g}s"
            waiter.set_exception(UpstreamTimeout(msg))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._pool.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._too_large:
                msg = f"{self._origin}: response body exceeds {self._max} bytes"
                err: Exception = ResponseTooLarge(msg)
            else:
                err = MalformedResponse(f"{self._origin}: malformed HTTP response: {exc}")
            err.__cause__ = exc
            self._fail(err)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        was_idle, self.idle = self.idle, False
        self._pool.connection_closed(self, was_idle=was_idle)
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if exc is None and self._headers_done and not self._framed:
            # HTTP/1.0 style: the body ends with the connection.
            self.keep_alive = False
            waiter.set_result(self._response())
            return
        how = "reset" if exc is not None else "closed"
        when = "during the response" if self.received else "before any response byte"
        err = ConnectionLost(f"{self._origin}: connection {how} {when}")
        err.__cause__ = exc
        waiter.set_exception(err)

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:
            self._fail(MalformedResponse(f"{self._origin}: unsolicited response"))
            return
        self._chunks.clear()
        self._size = 0
        self._retry_after = None
        self._framed = False
        self._headers_done = False
        self._too_large = False

    def on_header(self, name: bytes, value: bytes) -> None:
        # Length first: a cheap filter before lower-casing.
        n = len(name)
        if n == 14:
            if name.lower() == b"content-length":
                self._framed = True
                if int(value) > self._max:
                    self._too_large = True
                    raise _TooLarge
        elif n == 17:
            if name.lower() == b"transfer-encoding":
                self._framed = True
        elif n == 11 and name.lower() == b"retry-after":
            self._retry_after = parse_retry_after(value)

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        size = self._size + len(body)
        if size > self._max:
            self._too_large = True
            raise _TooLarge
        self._size = size
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        if parser.get_status_code() < 200:
            return  # an interim 1xx answer; the real one follows
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        self.keep_alive = parser.should_keep_alive()
        waiter.set_result(self._response())

    def _response(self) -> UpstreamResponse:
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return UpstreamResponse(self._parser.get_status_code(), body, self._retry_after)
