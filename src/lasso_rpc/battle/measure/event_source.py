"""Router events from another process: ``/api/events`` frames → typed events.

``event_from_dict`` rebuilds the event a frame describes; ``EventStream`` follows a router's
``/api/events`` WebSocket and hands every event to a callback (the collector's ``on_event``,
the same handler an in-process router's bus calls).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from lasso_rpc.observability.events import (
    Attempt,
    BreakerChanged,
    ChaosEvent,
    Event,
    ProviderEjection,
    ProviderHealth,
    RequestFinished,
    SubscriptionFailover,
    event_fields,
)

__all__ = ["EVENT_TYPES", "EventStream", "event_from_dict"]

log = logging.getLogger("lasso_rpc.battle.measure.event_source")

#: The frame types the battle reads → their event class.
EVENT_TYPES: dict[str, type[Event]] = {
    "request.finished": RequestFinished,
    "breaker.changed": BreakerChanged,
    "provider.health": ProviderHealth,
    "provider.ejection": ProviderEjection,
    "subscription.failover": SubscriptionFailover,
    "chaos.injected": ChaosEvent,
    "chaos.reverted": ChaosEvent,
}

_FIELDS = {
    cls: tuple(f for f in event_fields(cls) if f not in ("decision", "attempts", "reverted"))
    for cls in set(EVENT_TYPES.values())
}


def event_from_dict(d: Mapping[str, Any]) -> Event | None:
    """The event an ``/api/events`` frame describes; None for types the collector ignores.

    Raises ``KeyError``/``TypeError``/``ValueError`` for a malformed frame.
    """
    cls = EVENT_TYPES.get(str(d.get("type")))
    if cls is None:
        return None
    kw = {k: d[k] for k in _FIELDS[cls] if k in d}
    if cls is RequestFinished:
        kw["attempts"] = tuple(Attempt(**a) for a in d.get("attempts") or ())
    elif cls is ChaosEvent:
        kw["reverted"] = d["type"] == "chaos.reverted"
    return cls(**kw)


class EventStream:
    """Follows ``events_url`` (a router's ``/api/events``) for the frame ``types`` given.

    ``open()`` returns once connected; the reader task then belongs to the stream until
    ``aclose()``. A dropped connection is re-opened (events sent meanwhile are lost and
    ``reconnects`` counts the drops); a frame that cannot be decoded counts in
    ``decode_errors``; events the router dropped because this reader fell behind (its frames
    are numbered by ``seq``) count in ``lost``.
    """

    def __init__(
        self, events_url: str, on_event: Callable[[Event], None], *, types: Iterable[str]
    ) -> None:
        self.url = URL(events_url).update_query(types=",".join(types))
        self.reconnects = 0
        self.decode_errors = 0
        self.lost = 0
        self.frames = 0
        self._seq = 0
        self._on_event = on_event
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def __repr__(self) -> str:
        state = "open" if self._task is not None else "closed"
        return f"EventStream({self.url}, {state}, reconnects={self.reconnects})"

    async def open(self, *, connect_timeout_s: float = 5.0) -> None:
        """Connect (``ConnectionError`` if that fails in time) and start reading."""
        if self._session is not None:
            raise RuntimeError("the event stream is open already")
        self._session = aiohttp.ClientSession()
        task = asyncio.create_task(self._follow(), name="collector-stream")
        connected = asyncio.create_task(self._connected.wait())
        try:
            await asyncio.wait(
                {task, connected}, timeout=connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
        if self._connected.is_set():
            self._task = task
            return
        task.cancel()
        try:
            await task  # re-raises what stopped the reader early (a malformed URL, say)
        except asyncio.CancelledError:
            pass
        finally:
            await self._session.close()
            self._session = None
        raise ConnectionError(f"cannot open the event stream at {self.url}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _follow(self) -> None:
        assert self._session is not None
        backoff = 0.05
        while True:
            live = False
            try:
                async with self._session.ws_connect(self.url, heartbeat=10.0) as ws:
                    self._seq = 0  # a new connection numbers its events from 1
                    self._connected.set()
                    live = True
                    backoff = 0.05
                    async for msg in ws:
                        if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                            self._on_frame(msg.data)
                        elif msg.type == aiohttp.WSMsgType.ERROR:
                            break
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("event stream %s: %r", self.url, exc)
            if live:
                self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _on_frame(self, data: str | bytes) -> None:
        self.frames += 1
        try:
            d = orjson.loads(data)
            seq = d.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                if seq > self._seq + 1:
                    self.lost += seq - self._seq - 1
                self._seq = max(self._seq, seq)
            ev = event_from_dict(d)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            self.decode_errors += 1
            return
        if ev is not None:
            self._on_event(ev)
