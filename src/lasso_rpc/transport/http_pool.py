"""Our own keep-alive HTTP/1.1 client pool for one upstream URL: the hot path of every request.

Each ``_Connection`` (an ``asyncio.Protocol`` fed to ``httptools``) carries one exchange at a
time. ``HttpPoolTransport`` keeps at most ``pool_size`` of them, reuses idle ones LIFO and queues
extra callers FIFO. The URL's path, query and userinfo may hold API keys: only
``scheme://host:port`` ever reaches a repr, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ssl
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

import httptools

from lasso_rpc.errors import (
    ConnectError,
    ConnectionLost,
    MalformedResponse,
    ResponseTooLarge,
    UpstreamTimeout,
)
from lasso_rpc.transport.base import UpstreamResponse

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "Endpoint", "HttpPoolTransport", "parse_retry_after"]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed upstream URL. ``origin`` is the only part safe to show anywhere."""

    scheme: str
    host: str
    port: int
    target: str  # path + query: secret
    host_header: str
    authorization: str | None  # from userinfo: secret

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def url_without_userinfo(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.target}"

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        # Error messages below never quote the URL: it may carry a key.
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError("upstream URL scheme must be http or https")
        host = parts.hostname
        if not host:
            raise ValueError("upstream URL has no host")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise ValueError("upstream URL has an invalid port") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not target.isascii() or any(c <= " " or c == "\x7f" for c in target):
            raise ValueError("upstream URL path holds characters not allowed in a request target")
        bracketed = f"[{host}]" if ":" in host else host
        default_port = 443 if scheme == "https" else 80
        host_header = bracketed if port == default_port else f"{bracketed}:{port}"
        authorization = None
        if parts.username is not None:
            creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(creds.encode()).decode("ascii")
        return cls(scheme, host, port, target, host_header, authorization)

    def request_headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        """Headers every request carries (besides Host and Content-Length); extra ones win."""
        headers = {"Content-Type": "application/json", "User-Agent": "lasso-rpc"}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization
        for name, value in (extra or {}).items():
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the transport")
            if any(c in name or c in value for c in "\r\n\0") or not name.strip():
                raise ValueError(f"invalid header {name!r}")
            for old in [k for k in headers if k.lower() == name.lower()]:
                del headers[old]
            headers[name] = value
        return headers


def parse_retry_after(value: str | bytes | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is unusable


class _TooLarge(Exception):
    """Raised inside a parser callback to stop parsing an oversized body."""


class _Connection(asyncio.Protocol):
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

    def __init__(self, pool: HttpPoolTransport) -> None:
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
        return f"<_Connection {self._origin} {state}>"

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
        self._pool._conns.add(self)

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
        self._pool._conns.discard(self)
        if self.idle:
            self.idle = False
            self._pool._lost_idle(self)
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


class HttpPoolTransport:
    """``UpstreamTransport`` over a pool of keep-alive HTTP/1.1 connections to one URL."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if max_response_bytes < 0:
            raise ValueError("max_response_bytes must not be negative")
        endpoint = Endpoint.parse(url)
        self.origin = endpoint.origin
        self.pool_size = pool_size
        self.max_response_bytes = max_response_bytes
        self._endpoint = endpoint
        self._connect_timeout_s = connect_timeout_s
        self._ssl: ssl.SSLContext | None = None
        if endpoint.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        lines = [f"POST {endpoint.target} HTTP/1.1", f"Host: {endpoint.host_header}"]
        lines += [f"{k}: {v}" for k, v in endpoint.request_headers(headers).items()]
        # Then the length, a blank line and the body, joined once per request.
        try:
            self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("header names and values must be latin-1") from None
        self._idle: list[_Connection] = []  # LIFO: the warmest connection first
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._conns: set[_Connection] = set()
        self._open = 0  # slots taken: connections open, busy or being opened
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<HttpPoolTransport {self.origin}{state} open={self._open}/{self.pool_size}"
            f" idle={len(self._idle)} waiting={len(self._waiters)}>"
        )

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        if self._closed:
            raise ConnectError(f"{self.origin}: transport is closed")
        loop = self._loop
        if loop is None:
            # Once: on CPython 3.11 every get_running_loop() is a getpid() system call.
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        payload = b"".join((self._head, b"%d\r\n\r\n" % len(body), body))
        if self._idle:  # idle connections are open: connection_lost takes dead ones out
            conn = self._idle.pop()
            conn.idle = False
        else:
            conn = await self._acquire(loop, deadline, timeout_s)
        try:
            response = await conn.exchange(payload, deadline, timeout_s)
        except ConnectionLost:
            if self._closed or not conn.reused or conn.received:
                self._drop(conn)
                raise
            # A keep-alive close race: the server never saw the request. Once, on a new socket
            # in the same slot.
            conn.abort()
            conn = await self._connect(loop, deadline, timeout_s)
            try:
                response = await conn.exchange(payload, deadline, timeout_s)
            except BaseException:
                self._drop(conn)
                raise
        except BaseException:
            # Timeout, cancellation, bad framing: never reuse a half-read connection.
            self._drop(conn)
            raise
        if conn.keep_alive and not conn.closed:
            conn.reused = True
            self._release(conn)
        else:
            self._drop(conn)
        return response

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError(f"{self.origin}: transport is closed"))
        for conn in self._idle:
            conn.idle = False
            self._open -= 1
        self._idle.clear()
        for conn in list(self._conns):
            conn.abort()  # busy exchanges fail with ConnectionLost and free their slot
        await asyncio.sleep(0)  # let the transports run connection_lost

    # -- slots and connections ----------------------------------------------------------

    async def _acquire(
        self, loop: asyncio.AbstractEventLoop, deadline: float, timeout_s: float
    ) -> _Connection:
        if self._open < self.pool_size:
            self._open += 1
            return await self._connect(loop, deadline, timeout_s)
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                granted = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a slot while being cancelled: pass it on.
                lost = waiter.result()
                if lost is None:
                    self._free_slot()
                else:
                    self._release(lost)
            if isinstance(exc, TimeoutError):
                err = UpstreamTimeout(f"{self.origin}: no free connection within {timeout_s:g}s")
                err.never_sent = True
                raise err from exc
            raise
        if granted is None:  # a slot was freed for us
            return await self._connect(loop, deadline, timeout_s)
        return granted

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float, timeout_s: float
    ) -> _Connection:
        """Open a connection in a slot already taken; the slot is freed if this fails."""
        ep = self._endpoint
        budget = deadline - loop.time()
        limit = min(budget, self._connect_timeout_s)
        try:
            async with asyncio.timeout(limit):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    ep.host,
                    ep.port,
                    ssl=self._ssl,
                    server_hostname=ep.host if self._ssl is not None else None,
                )
        except TimeoutError as exc:
            self._free_slot()
            if limit < budget:
                msg = f"{self.origin}: connect timed out after {limit:g}s"
                raise ConnectError(msg) from exc
            err = UpstreamTimeout(f"{self.origin}: not connected within {timeout_s:g}s")
            err.never_sent = True
            raise err from exc
        except OSError as exc:  # refused, DNS, TLS handshake
            self._free_slot()
            raise ConnectError(f"{self.origin}: connect failed: {exc}") from exc
        except BaseException:
            self._free_slot()
            raise
        if self._closed:
            self._drop(conn)
            raise ConnectError(f"{self.origin}: transport is closed")
        return conn

    def _release(self, conn: _Connection) -> None:
        """A healthy connection: to the first waiter, else to the idle stack."""
        if self._closed or conn.closed:
            self._drop(conn)
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        self._idle.append(conn)

    def _drop(self, conn: _Connection) -> None:
        conn.abort()
        self._free_slot()

    def _free_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        self._open -= 1

    def _lost_idle(self, conn: _Connection) -> None:
        """The server closed an idle connection."""
        try:
            self._idle.remove(conn)
        except ValueError:
            return
        self._free_slot()
