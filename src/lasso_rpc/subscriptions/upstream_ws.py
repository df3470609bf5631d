"""One WebSocket per upstream provider: subscription frames routed by id, shared subscriptions.

``UpstreamWs`` connects on demand. Every ``eth_subscribe`` with the same params on one connection
is sent once and shared by reference count (a logs feed's head watermark rides on the same
upstream ``newHeads`` as the heads feed); the last ``Lease.release()`` sends ``eth_unsubscribe``,
and a connection left with nothing to carry is closed. The subscription id is bound in the reader
the moment the reply arrives, so no notification that follows it can be missed.

A lost connection tells every listener (``on_lost``) and fails every pending request with
``ConnectionLost``. Connections that fail or die young push the provider into an exponential
backoff with jitter; while it lasts, ``subscribe`` raises ``ConnectError`` at once so that a feed
moves on to the next provider instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from lasso_rpc.clock import Clock
from lasso_rpc.errors import ConnectError, ConnectionLost, UpstreamFault, UpstreamTimeout
from lasso_rpc.jsonrpc.codec import decode_error
from lasso_rpc.observability.redact import mask_url
from lasso_rpc.subscriptions.options import SubscriptionOptions

__all__ = ["Lease", "UpstreamWs"]

log = logging.getLogger("lasso_rpc.subscriptions")

OnFrame = Callable[[bytes], None]
OnLost = Callable[[str], None]


class _NotifParams(msgspec.Struct):
    subscription: str
    result: msgspec.Raw


class _Frame(msgspec.Struct):
    id: Any = None
    method: str | None = None
    params: _NotifParams | None = None
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_frame_decoder = msgspec.json.Decoder(_Frame)


@dataclass(eq=False, slots=True)
class _Upstream:
    """One upstream subscription on this connection, shared by its listeners."""

    params: bytes
    ready: asyncio.Future[None]
    gen: int
    sub_id: str | None = None
    listeners: dict[int, tuple[OnFrame, OnLost]] = field(default_factory=dict)


class Lease:
    """A listener's share of an upstream subscription; ``release()`` is idempotent."""

    __slots__ = ("_conn", "_key", "_up")

    def __init__(self, conn: UpstreamWs, up: _Upstream, key: int) -> None:
        self._conn, self._up, self._key = conn, up, key

    def release(self) -> None:
        self._conn._release(self._up, self._key)


class UpstreamWs:
    def __init__(
        self,
        provider: str,
        url: str,
        *,
        headers: Mapping[str, str],
        session: Callable[[], aiohttp.ClientSession],
        options: SubscriptionOptions,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.provider = provider
        self.url = url
        self._headers = dict(headers)
        self._session = session
        self._opts = options
        self._clock = clock
        self._rng = rng
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._by_params: dict[bytes, _Upstream] = {}
        self._by_sub_id: dict[str, _Upstream] = {}
        self._pending: dict[int, _Upstream | None] = {}  # request id -> subscribe (None: ignore)
        self._keys = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()  # retired readers, unsubscribe sends
        self._gen = 0
        self._failures = 0
        self._opened_ms = 0.0
        self.retry_at_ms = 0.0
        self.connects = 0

    # -- state -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def in_backoff(self) -> bool:
        return not self.is_open and self._clock.now_ms() < self.retry_at_ms

    @property
    def subscriptions(self) -> int:
        return len(self._by_params)

    # -- subscribing -----------------------------------------------------------------------

    async def subscribe(self, params: bytes, on_frame: OnFrame, on_lost: OnLost) -> Lease:
        """Share (or send) ``eth_subscribe(params)``; the listener gets every later frame.

        Raises ConnectError (unreachable or backing off), ConnectionLost, UpstreamTimeout, or
        UpstreamFault when the provider answers with an error.
        """
        ws = await self._ensure_open()
        up = self._by_params.get(params)
        if up is None:
            up = _Upstream(params, asyncio.get_running_loop().create_future(), self._gen)
            self._by_params[params] = up
            req_id = next(self._ids)
            self._pending[req_id] = up
            frame = (
                f'{{"jsonrpc":"2.0","id":{req_id},"method":"eth_subscribe",'
                f'"params":{params.decode()}}}'
            )
            try:
                await ws.send_str(frame)
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
                self._drop(f"send failed: {exc!r}")
                raise ConnectionLost(f"{self.provider}: send failed: {exc!r}") from exc
        key = next(self._keys)
        up.listeners[key] = (on_frame, on_lost)
        try:
            async with asyncio.timeout(self._opts.subscribe_timeout_s):
                await asyncio.shield(up.ready)
        except TimeoutError as exc:
            up.listeners.pop(key, None)
            self._drop("eth_subscribe timed out")
            raise UpstreamTimeout(f"{self.provider}: eth_subscribe timed out") from exc
        except BaseException:
            self._release(up, key)
            raise
        return Lease(self, up, key)

    def _release(self, up: _Upstream, key: int) -> None:
        if up.listeners.pop(key, None) is None or up.listeners or up.gen != self._gen:
            return
        if self._by_params.get(up.params) is up:
            del self._by_params[up.params]
        if up.sub_id is not None:
            self._by_sub_id.pop(up.sub_id, None)
        ws = self._ws
        if ws is None or ws.closed:
            return
        if not self._by_params:
            # Nothing left to carry: closing the socket ends the upstream subscription too.
            reader = self._reader
            self._lost(ws, "idle")
            self._retire(reader)
        elif up.sub_id is not None:
            req_id = next(self._ids)
            self._pending[req_id] = None
            msg = (
                f'{{"jsonrpc":"2.0","id":{req_id},"method":"eth_unsubscribe",'
                f'"params":["{up.sub_id}"]}}'
            )
            task = asyncio.ensure_future(_quiet_send(ws, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- connection ------------------------------------------------------------------------

    async def _ensure_open(self) -> aiohttp.ClientWebSocketResponse:
        async with self._lock:
            ws = self._ws
            if ws is not None and not ws.closed:
                return ws
            now = self._clock.now_ms()
            if now < self.retry_at_ms:
                raise ConnectError(
                    f"{self.provider}: reconnecting in {self.retry_at_ms - now:.0f} ms (backoff)"
                )
            try:
                async with asyncio.timeout(self._opts.connect_timeout_s):
                    ws = await self._session().ws_connect(
                        self.url,
                        headers=self._headers,
                        heartbeat=self._opts.upstream_heartbeat_s,
                        max_msg_size=self._opts.upstream_max_message_bytes,
                        compress=0,
                    )
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                self._failed()
                raise ConnectError(
                    f"{self.provider}: WebSocket connect to {mask_url(self.url)} failed: "
                    f"{type(exc).__name__}"
                ) from exc
            self._ws = ws
            self._gen += 1
            self._opened_ms = self._clock.now_ms()
            self.connects += 1
            self._reader = asyncio.create_task(self._read(ws), name=f"ws-up:{self.provider}")
            return ws

    def _failed(self) -> None:
        self._failures += 1
        ceiling = min(
            self._opts.reconnect_max_ms, self._opts.reconnect_base_ms * 2 ** (self._failures - 1)
        )
        self.retry_at_ms = self._clock.now_ms() + ceiling * self._rng.uniform(0.5, 1.0)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        reason = "closed by the provider"
        try:
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._dispatch(msg.data)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    reason = f"error: {ws.exception()!r}"
                    break
            else:
                reason = f"closed by the provider (code {ws.close_code})"
        except asyncio.CancelledError:
            reason = "closed"
            raise
        except Exception as exc:  # a reader must never die silently
            reason = f"reader failed: {exc!r}"
            log.exception("%s: upstream WebSocket reader failed", self.provider)
        finally:
            self._lost(ws, reason)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

    def _dispatch(self, data: str | bytes) -> None:
        try:
            frame = _frame_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("%s: malformed upstream WebSocket frame dropped", self.provider)
            return
        params = frame.params
        if params is not None and frame.method == "eth_subscription":
            up = self._by_sub_id.get(params.subscription)
            if up is not None:
                raw = bytes(params.result)
                for on_frame, _ in list(up.listeners.values()):
                    on_frame(raw)
            return
        if not isinstance(frame.id, int):
            return
        pending = self._pending.pop(frame.id, "missing")
        if not isinstance(pending, _Upstream) or pending.ready.done():
            return
        up = pending
        if frame.error is not msgspec.UNSET or frame.result is msgspec.UNSET:
            err = decode_error(bytes(frame.error)) if frame.error is not msgspec.UNSET else None
            message = err.message if err is not None else "no result"
            if self._by_params.get(up.params) is up:
                del self._by_params[up.params]
            _fail(
                up.ready,
                UpstreamFault(
                    f"{self.provider}: eth_subscribe refused: {message}",
                    error_class="capability",
                    code=err.code if err is not None else None,
                ),
            )
            return
        try:
            sub_id = msgspec.json.decode(bytes(frame.result))
        except msgspec.DecodeError:
            sub_id = None
        if not isinstance(sub_id, str):
            _fail(up.ready, UpstreamFault("bad subscription id", error_class="provider"))
            return
        up.sub_id = sub_id
        self._by_sub_id[sub_id] = up
        up.ready.set_result(None)

    def _lost(self, ws: aiohttp.ClientWebSocketResponse, reason: str) -> None:
        if self._ws is not ws:
            return
        self._ws = None
        self._reader = None
        idle = not self._by_params and not any(self._pending.values())
        if not idle:
            lived = self._clock.now_ms() - self._opened_ms
            if lived < self._opts.healthy_after_ms:
                self._failed()
            else:
                self._failures = 0
        ups = list(self._by_params.values())
        self._by_params.clear()
        self._by_sub_id.clear()
        self._pending.clear()
        exc = ConnectionLost(f"{self.provider}: {reason}")
        for up in ups:
            if not up.ready.done():
                _fail(up.ready, exc)
            for _, on_lost in list(up.listeners.values()):
                on_lost(reason)
        if not idle:
            log.info("%s: upstream WebSocket lost: %s", self.provider, reason)

    def _drop(self, reason: str) -> None:
        """Give up on the connection (a hung provider): listeners hear ``on_lost``."""
        ws, reader = self._ws, self._reader
        if ws is None:
            return
        self._lost(ws, reason)
        self._retire(reader)

    def _retire(self, reader: asyncio.Task[None] | None) -> None:
        """Cancel a reader we no longer point at; ``aclose`` still waits for it."""
        if reader is not None:
            self._tasks.add(reader)
            reader.add_done_callback(self._tasks.discard)
            reader.cancel()

    async def aclose(self) -> None:
        self._retire(self._reader)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __repr__(self) -> str:
        state = "open" if self.is_open else ("backoff" if self.in_backoff() else "closed")
        return (
            f"UpstreamWs({self.provider} {mask_url(self.url)} {state} "
            f"subscriptions={len(self._by_params)} failures={self._failures})"
        )


async def _quiet_send(ws: aiohttp.ClientWebSocketResponse, msg: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
        await ws.send_str(msg)


def _fail(fut: asyncio.Future[None], exc: BaseException) -> None:
    fut.set_exception(exc)
    fut.exception()  # retrieved: a subscriber that gave up must not cause a warning
