"""Unary JSON-RPC over WebSocket for the load generator: ``WsRpcTransport``.

The same ``post(body, timeout_s) -> UpstreamResponse`` as ``HttpPoolTransport``, so the
open-loop runner (``load.loadgen``) sends a ``Workload.over("ws")`` exactly as it sends HTTP:
each call is a frame on one of ``connections`` sockets (round robin), its answer is matched by
the JSON-RPC ``id`` (the runner numbers its calls), and the reply body is classified as an HTTP
body would be (``?include_meta=body`` works on the router's sockets too).

A socket that drops fails the calls waiting on it (``ConnectionLost``) and is re-opened by the
next call that picks it; a call that cannot open one fails with ``ConnectError``; no answer
within ``timeout_s`` is ``UpstreamTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import aiohttp
import msgspec

from lasso_rpc.errors import ConnectError, ConnectionLost, UpstreamTimeout
from lasso_rpc.transport.base import UpstreamResponse

__all__ = ["WsRpcTransport"]

#: Calls a router socket answers concurrently by default (``SubscriptionOptions.max_in_flight``).
CALLS_PER_SOCKET = 64
_MAX_SOCKETS = 16


class _Id(msgspec.Struct):
    id: int | str | None = None


_id_decoder = msgspec.json.Decoder(_Id)


class _Socket:
    __slots__ = ("lock", "pending", "reader", "ws")

    def __init__(self) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[int | str, asyncio.Future[bytes]] = {}
        self.lock = asyncio.Lock()

    @property
    def open(self) -> bool:
        return self.ws is not None and not self.ws.closed


class WsRpcTransport:
    """Sends JSON-RPC calls over ``connections`` WebSockets to ``url`` (``ws://…``)."""

    def __init__(self, url: str, *, connections: int = 1, connect_timeout_s: float = 5.0) -> None:
        if connections < 1:
            raise ValueError("connections must be >= 1")
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._sockets = [_Socket() for _ in range(connections)]
        self._next = itertools.cycle(self._sockets)
        self._session: aiohttp.ClientSession | None = None
        self.reconnects = 0

    @staticmethod
    def sockets_for(max_in_flight: int) -> int:
        """Enough sockets that ``max_in_flight`` calls never wait on the router's per-socket cap."""
        return max(1, min(_MAX_SOCKETS, -(-max_in_flight // CALLS_PER_SOCKET)))

    def __repr__(self) -> str:
        live = sum(s.open for s in self._sockets)
        waiting = sum(len(s.pending) for s in self._sockets)
        return f"WsRpcTransport({self.url}, open={live}/{len(self._sockets)}, waiting={waiting})"

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        try:
            call_id = _id_decoder.decode(body).id
        except msgspec.DecodeError as exc:
            raise ValueError("a call over WebSocket needs a JSON body with an id") from exc
        if call_id is None:
            raise ValueError("a call over WebSocket needs an id to match its answer")
        sock = next(self._next)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                ws = await self._ensure(sock)
                fut: asyncio.Future[bytes] = loop.create_future()
                sock.pending[call_id] = fut
                try:
                    await ws.send_bytes(body)
                    raw = await fut
                finally:
                    sock.pending.pop(call_id, None)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer over WebSocket within {timeout_s} s") from exc
        except (aiohttp.ClientError, ConnectionResetError) as exc:
            raise ConnectionLost(f"WebSocket send failed: {exc!r}") from exc
        return UpstreamResponse(200, raw)

    async def _ensure(self, sock: _Socket) -> aiohttp.ClientWebSocketResponse:
        if sock.open:
            assert sock.ws is not None
            return sock.ws
        async with sock.lock:
            if sock.open:
                assert sock.ws is not None
                return sock.ws
            if self._session is None:
                self._session = aiohttp.ClientSession()
            if sock.ws is not None:
                self.reconnects += 1
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    ws = await self._session.ws_connect(self.url, heartbeat=30.0)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise ConnectError(f"cannot open {self.url}: {exc!r}") from exc
            sock.ws = ws
            sock.reader = asyncio.create_task(self._read(sock, ws), name="ws-sender-reader")
            return ws

    async def _read(self, sock: _Socket, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    data = msg.data.encode()
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    data = msg.data
                else:
                    break
                try:
                    call_id = _id_decoder.decode(data).id
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue  # not an answer of ours (a batch, junk): the caller times out
                fut = sock.pending.get(call_id) if call_id is not None else None
                if fut is not None and not fut.done():
                    fut.set_result(data)
        finally:
            lost = ConnectionLost(f"WebSocket {self.url} closed")
            for fut in sock.pending.values():
                if not fut.done():
                    fut.set_exception(lost)
            sock.pending.clear()

    async def aclose(self) -> None:
        for sock in self._sockets:
            if sock.reader is not None:
                sock.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sock.reader
            if sock.ws is not None:
                with contextlib.suppress(Exception):
                    await sock.ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
