"""One client WebSocket of a MockProvider: its subscriptions and the tasks serving it.

Replies and ``eth_subscription`` notifications go through one FIFO drained by one writer task,
so a subscription id always reaches the client before its first notification.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from lasso_rpc.battle.providers.blocks import ChainEvent, LogFilter
from lasso_rpc.battle.providers.mock_rpc import Fault, arg

__all__ = ["WsSession"]

OnMessage = Callable[["WsSession", str | bytes], Coroutine[Any, Any, None]]


class WsSession:
    __slots__ = ("_outbox", "_subs", "_tasks", "_transport", "closed", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self.ws = ws
        self._transport = transport
        self._subs: dict[str, LogFilter | None] = {}  # None = newHeads
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    async def serve(self, on_message: OnMessage) -> None:
        """Read frames until the socket closes; each frame is handled in its own task (a slow
        call does not hold up the next), and every task ends with the session."""
        writer = asyncio.create_task(self._write())
        try:
            async for msg in self.ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    task = asyncio.create_task(on_message(self, msg.data))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            owned = [writer, *self._tasks]
            for task in owned:
                task.cancel()
            await asyncio.gather(*owned, return_exceptions=True)
            self.closed.set()

    async def _write(self) -> None:
        try:
            while True:
                await self.ws.send_str(await self._outbox.get())
        except (ConnectionError, RuntimeError):
            pass  # the socket went away; serve() cleans up

    def send(self, message: object) -> None:
        self._outbox.put_nowait(orjson.dumps(message).decode())

    def send_text(self, text: str) -> None:
        self._outbox.put_nowait(text)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        if self._transport is not None:
            self._transport.abort()

    @property
    def subscriptions(self) -> int:
        return len(self._subs)

    def subscribe(self, params: list[Any], salt: str) -> str:
        """``eth_subscribe``: ``["newHeads"]`` or ``["logs", filter]``; the subscription id."""
        kind = arg(params, 0)
        flt: LogFilter | None = None
        if kind == "logs":
            spec = params[1] if len(params) > 1 else {}
            try:
                if not isinstance(spec, dict):
                    raise ValueError("logs filter must be an object")
                flt = LogFilter.parse(spec)
            except ValueError as exc:
                raise Fault(-32602, f"invalid argument 1: {exc}") from None
        elif kind != "newHeads":
            raise Fault(-32602, f'no "{kind}" subscription in eth namespace')
        sub_id = "0x" + hashlib.sha256(salt.encode()).hexdigest()[:32]
        self._subs[sub_id] = flt
        return sub_id

    def unsubscribe(self, params: list[Any]) -> bool:
        return self._subs.pop(str(arg(params, 0)), False) is not False

    def notify(self, events: Sequence[ChainEvent]) -> None:
        """Push new blocks to newHeads subscribers and their matching logs to logs subscribers;
        logs of a block a reorg replaced go out first, marked ``removed``."""
        for sub_id, flt in self._subs.items():
            for ev in events:
                if flt is None:
                    self._push(sub_id, ev.block.header_rpc())
                    continue
                if ev.replaced is not None:
                    for lg in ev.replaced.logs:
                        if flt.matches(lg):
                            self._push(sub_id, lg.to_rpc(removed=True))
                for lg in ev.block.logs:
                    if flt.matches(lg):
                        self._push(sub_id, lg.to_rpc())

    def _push(self, sub_id: str, result: object) -> None:
        params = {"subscription": sub_id, "result": result}
        self.send({"jsonrpc": "2.0", "method": "eth_subscription", "params": params})

    def __repr__(self) -> str:
        return f"WsSession(subscriptions={len(self._subs)}, closed={self.closed.is_set()})"
