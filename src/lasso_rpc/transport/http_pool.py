"""Our own keep-alive HTTP/1.1 client pool for one upstream URL: the hot path of every request.

``HttpPoolTransport`` keeps at most ``pool_size`` connections (``transport/http_conn.py``, one
exchange at a time each), reuses idle ones LIFO and queues extra callers FIFO. The URL is parsed
by ``transport/endpoint.py``: only ``scheme://host:port`` ever reaches a repr, a log line or an
exception message, since the path, query and userinfo may hold API keys.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping

from lasso_rpc.errors import ConnectError, ConnectionLost, UpstreamTimeout
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.transport.endpoint import DEFAULT_MAX_RESPONSE_BYTES, transport_endpoint
from lasso_rpc.transport.http_conn import HttpConnection

__all__ = ["HttpPoolTransport"]


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
        endpoint = transport_endpoint(
            url, pool_size=pool_size, max_response_bytes=max_response_bytes
        )
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
        self._idle: list[HttpConnection] = []  # LIFO: the warmest connection first
        self._waiters: deque[asyncio.Future[HttpConnection | None]] = deque()
        self._conns: set[HttpConnection] = set()
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
    ) -> HttpConnection:
        if self._open < self.pool_size:
            self._open += 1
            return await self._connect(loop, deadline, timeout_s)
        waiter: asyncio.Future[HttpConnection | None] = loop.create_future()
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
    ) -> HttpConnection:
        """Open a connection in a slot already taken; the slot is freed if this fails."""
        ep = self._endpoint
        budget = deadline - loop.time()
        limit = min(budget, self._connect_timeout_s)
        try:
            async with asyncio.timeout(limit):
                _, conn = await loop.create_connection(
                    lambda: HttpConnection(self),
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

    def _release(self, conn: HttpConnection) -> None:
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

    def _drop(self, conn: HttpConnection) -> None:
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

    # -- the ConnectionOwner a connection sees --------------------------------------------

    def connection_opened(self, conn: HttpConnection) -> None:
        self._conns.add(conn)

    def connection_closed(self, conn: HttpConnection, *, was_idle: bool) -> None:
        self._conns.discard(conn)
        if not was_idle:
            return
        # The server closed an idle connection.
        try:
            self._idle.remove(conn)
        except ValueError:
            return
        self._free_slot()
