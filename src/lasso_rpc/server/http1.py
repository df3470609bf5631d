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
- ``server.limits`` hold for every connection of the port: the gate (``conn_gate.py``) counts
  connections per address and in total, including those handed to aiohttp; the guard
  (``http1_guard.py``) refuses heads no parser should act on and heads over the size and field
  limits; a sweep every second answers 408 to heads and bodies that are overdue (slowloris) and
  closes idle keep-alive connections after ``idle_timeout_s``. Every refusal closes the
  connection and is published as a ``limit.rejected`` event.
- On shutdown idle connections close at once and busy ones as soon as their answer is written,
  or when the grace period ends.

Three modules: ``http1_head.py`` parses request heads (pure), ``http1_conn.py`` is the protocol
of one connection, and this one is the listener (``FrontDoor``): the set of connections, the
keep-alive sweep, shutdown, the hand-off count and the response heads they write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email.utils import formatdate

from lasso_rpc.config.limits import ServerLimits
from lasso_rpc.server.conn_gate import ConnectionGate, Tracked
from lasso_rpc.server.http1_conn import FrontConnection
from lasso_rpc.server.http1_guard import HeadLimits
from lasso_rpc.server.rpc import RpcHandler

__all__ = ["FrontDoor"]

_SWEEP_S = 1.0
_REASONS = {
    200: b"OK",
    204: b"No Content",
    400: b"Bad Request",
    413: b"Payload Too Large",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
}


class FrontDoor:
    """The protocol factory for the router's listening socket (``loop.create_server(door)``)."""

    def __init__(
        self,
        rpc: RpcHandler,
        fallback: Callable[[], asyncio.BaseProtocol],
        *,
        limits: ServerLimits | None = None,
        gate: ConnectionGate | None = None,
    ) -> None:
        self.rpc = rpc
        self.fallback = fallback
        self.limits = limits = limits or rpc.router.config.server.limits
        self.head_limits = HeadLimits(limits.max_header_bytes, limits.max_headers)
        self.gate = gate or ConnectionGate(limits, rpc.router.bus.publish)
        self.keepalive_s = limits.idle_timeout_s
        self.conns: set[FrontConnection] = set()
        self.closing = False
        self.handed_off = 0
        self._config: object = None
        self._max_body = 0
        self._date_at = -1
        self._prefix = b""
        self._date = b""
        self._sweeper: asyncio.TimerHandle | None = None

    def __call__(self) -> FrontConnection:
        return FrontConnection(self)

    # -- the Door a connection sees ---------------------------------------------------------

    def opened(self, conn: FrontConnection, peer: str) -> bytes | None:
        self.conns.add(conn)  # a refused one too, till it closes (the sweep ends its linger)
        return self.gate.admit(peer)

    def lost(self, conn: FrontConnection, peer: str | None) -> None:
        self.conns.discard(conn)
        if peer is not None:
            self.gate.release(peer)

    def rejected(self, limit: str, peer: str, detail: str = "") -> None:
        self.gate.rejected(limit, peer, detail)

    def hand_off(self, conn: FrontConnection, peer: str) -> asyncio.BaseProtocol:
        self.conns.discard(conn)
        self.handed_off += 1
        return Tracked(self.gate, self.fallback(), admitted=peer)

    # -- lifecycle -------------------------------------------------------------------------

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
        self.sweep()
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep)

    def sweep(self, now: float | None = None) -> None:
        """Time out overdue heads and bodies, close idle connections (``now``: loop time)."""
        if now is None:
            now = asyncio.get_running_loop().time()
        idle_before = now - self.keepalive_s
        for conn in list(self.conns):
            overdue = conn.expired(now)
            if overdue is not None:
                conn.time_out(overdue)
            elif conn.idle and conn.last_active < idle_before:
                conn.close()

    def __repr__(self) -> str:
        busy = sum(1 for c in self.conns if c.busy)
        return (
            f"FrontDoor(connections={len(self.conns)}, busy={busy},"
            f" handed_off={self.handed_off}, closing={self.closing})"
        )
