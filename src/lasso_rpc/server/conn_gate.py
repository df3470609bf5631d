"""Open connections counted per client address and in total, for the whole port.

Every accepted connection asks the ``ConnectionGate`` first. Over ``max_connections`` it gets
503, over ``max_connections_per_ip`` 429 (with ``Retry-After``), written before any byte is
read, and is closed. A connection the lean front hands to aiohttp (``/health``, WebSockets,
chunked bodies) keeps its place: ``Tracked`` wraps aiohttp's protocol and gives the place back
when the socket closes. With ``server.front: aiohttp`` every connection is ``Tracked`` from
the start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from lasso_rpc.config.limits import ServerLimits
from lasso_rpc.jsonrpc.codec import encode_error
from lasso_rpc.observability.events import Event, LimitRejected

__all__ = ["ConnectionGate", "Tracked", "peer_of", "refusal_bytes"]

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


def refusal_bytes(status: int, message: str, *, retry_after: int | None = None) -> bytes:
    """A whole ``Connection: close`` answer with a JSON-RPC error body (id null, -32600)."""
    code = -32005 if status in (429, 503) else -32600
    body = encode_error(None, code, message)
    lines = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error")),
        b"Server: lasso-rpc",
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    if retry_after is not None:
        lines.append(b"Retry-After: %d" % retry_after)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def peer_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "?"


class ConnectionGate:
    """Counts of open connections; ``admit`` takes a place, ``release`` gives it back."""

    def __init__(self, limits: ServerLimits, publish: Callable[[Event], None]) -> None:
        self.limits = limits
        self.publish = publish
        self.total = 0
        self.per_ip: dict[str, int] = {}

    def admit(self, peer: str) -> bytes | None:
        """None when admitted; else the answer to write before closing."""
        limits = self.limits
        if self.total >= limits.max_connections:
            self.rejected("connections", peer)
            return refusal_bytes(503, "too many connections", retry_after=1)
        held = self.per_ip.get(peer, 0)
        per_ip = limits.max_connections_per_ip
        if per_ip and held >= per_ip:
            self.rejected("connections_per_ip", peer)
            return refusal_bytes(429, "too many connections from this address", retry_after=1)
        self.total += 1
        self.per_ip[peer] = held + 1
        return None

    def release(self, peer: str) -> None:
        self.total -= 1
        held = self.per_ip.get(peer, 0) - 1
        if held > 0:
            self.per_ip[peer] = held
        else:
            self.per_ip.pop(peer, None)

    def rejected(self, limit: str, peer: str, detail: str = "") -> None:
        self.publish(LimitRejected(ts=time.time(), limit=limit, peer=peer, detail=detail))

    def __repr__(self) -> str:
        return f"ConnectionGate(total={self.total}, addresses={len(self.per_ip)})"


class Tracked(asyncio.Protocol):
    """aiohttp's protocol for one connection, which gives its gate place back when it closes.

    ``admitted``: the place was taken already (a hand-over from the lean front); otherwise
    ``connection_made`` asks the gate, and a refused connection never reaches aiohttp.
    """

    __slots__ = ("_gate", "_inner", "_peer", "_placed")

    def __init__(
        self, gate: ConnectionGate, inner: asyncio.BaseProtocol, *, admitted: str | None = None
    ) -> None:
        self._gate = gate
        self._inner = cast(asyncio.Protocol, inner)
        self._peer = admitted or "?"
        self._placed = admitted is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._placed:
            self._peer = peer_of(transport)
            refusal = self._gate.admit(self._peer)
            if refusal is not None:
                cast(asyncio.Transport, transport).write(refusal)
                transport.close()
                return
            self._placed = True
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._placed:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._placed else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._placed:
            self._placed = False
            self._gate.release(self._peer)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def __repr__(self) -> str:
        return f"<Tracked {self._peer} {self._inner!r}>"
