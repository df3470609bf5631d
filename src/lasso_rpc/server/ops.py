"""Operational endpoints: health, readiness, metrics, chains, providers, live events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web

from lasso_rpc.dashboard.feed import SummaryFeed
from lasso_rpc.observability.events import ChaosEvent, Event, EventBus, EventStream, event_to_dict
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.router import Router
from lasso_rpc.upstream.chain import ChainRuntime
from lasso_rpc.upstream.probe import health_window_ms
from lasso_rpc.upstream.readiness import chain_readiness, provider_readiness

__all__ = ["EventFeed", "LocalEvents", "OpsHandlers", "event_type", "provider_rows"]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class EventFeed(Protocol):
    """What ``/api/events`` reads: (type, JSON object with its ``seq``) frames, oldest first."""

    async def next_frame(self) -> tuple[str, bytes]: ...


OpenEvents = Callable[[set[str]], contextlib.AbstractAsyncContextManager[EventFeed]]


class LocalEvents:
    """This process's bus as an ``/api/events`` feed (``cluster.views.ClusterEvents``: every
    worker's)."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    @contextlib.asynccontextmanager
    async def open(self, types: set[str]) -> AsyncIterator[EventFeed]:
        # Filtered at the bus: a stream of a few types costs the request path nothing more.
        kinds = {"chaos.injected" if t == "chaos.reverted" else t for t in types} or None
        accept = (lambda ev: event_type(ev) in types) if types else None
        with self._bus.stream(kinds=kinds, accept=accept) as stream:
            yield _LocalFeed(stream)


class _LocalFeed:
    __slots__ = ("_stream",)

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    async def next_frame(self) -> tuple[str, bytes]:
        # Every frame carries ``seq``: the stream drops its oldest events when the reader is
        # slow, and a jump in ``seq`` tells the reader how many it lost.
        seq, ev = await self._stream.get_numbered()
        d = event_to_dict(ev)
        d["seq"] = seq
        return d["type"], orjson.dumps(d, default=str)


def provider_rows(chains: Iterable[ChainRuntime], now_ms: float) -> list[dict[str, Any]]:
    """What ``/api/providers`` lists for ``chains`` (also each worker's part of a merged list)."""
    out = []
    for c in chains:
        window = health_window_ms(c.routing.head_poll_ms)
        for p in c.providers.values():
            health = provider_readiness(p, now_ms=now_ms, window_ms=window)
            out.append(
                {
                    "profile": c.profile,
                    "chain": c.name,
                    "id": p.id,
                    "name": p.config.name or p.id,
                    "url": p.masked_url,
                    "priority": p.config.priority,
                    "weight": p.config.weight,
                    "breaker": asdict(p.breaker.snapshot()),
                    "cordoned": p.cordoned,
                    "ejection": asdict(p.ejection.snapshot()),
                    "rate_limit_tokens": (
                        None if p.rate_cap is None else round(p.rate_cap.tokens, 2)
                    ),
                    "head": p.head,
                    "lag": p.lag,
                    "in_flight": p.in_flight,
                    "usable": health.usable,
                    "health": health.reason,
                    "unsupported_methods": sorted(p.unsupported),
                    "stats": p.stats.snapshot(),
                }
            )
    return out


class OpsHandlers:
    def __init__(
        self,
        router: Router,
        metrics: PrometheusMetrics,
        *,
        summaries: SummaryFeed | None = None,
        events: OpenEvents | None = None,
    ) -> None:
        self.router = router
        self.metrics = metrics
        #: Runs while a stream asks for ``stats.summary`` (the dashboard's feed).
        self.summaries = summaries
        #: Where /api/events reads from: this process's bus unless a cluster view is given.
        self.open_events: OpenEvents = events or LocalEvents(router.bus).open

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        """200 when every chain has a provider that answered a health poll within its window;
        503 otherwise, with ``reasons`` saying which chain and why each provider is out."""
        chains = {}
        reasons = []
        now = self.router.clock.now_ms()
        for c in self.router.chains():
            r = chain_readiness(
                c.profile, c.name, c.providers.values(), poll_ms=c.routing.head_poll_ms, now_ms=now
            )
            chains[f"{c.profile}/{c.name}"] = {
                "ready": r.ready,
                "usable_providers": r.usable,
                "window_ms": r.window_ms,
                "providers": {
                    p.provider: {"usable": p.usable, "reason": p.reason} for p in r.providers
                },
            }
            if r.reason is not None:
                reasons.append(r.reason)
        ok = not reasons
        return _json({"ready": ok, "reasons": reasons, "chains": chains}, 200 if ok else 503)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def chains(self, request: web.Request) -> web.Response:
        out = []
        for c in self.router.chains():
            out.append(
                {
                    "profile": c.profile,
                    "name": c.name,
                    "chain_id": c.config.chain_id,
                    "aliases": c.config.aliases,
                    "default_strategy": c.routing.default_strategy,
                    "providers": list(c.providers),
                    "consensus_head": c.consensus_head,
                    "hedge_budget": c.hedge_budget.snapshot(self.router.clock.now_ms()),
                }
            )
        return _json({"chains": out})

    async def providers(self, request: web.Request) -> web.Response:
        chain_key = request.query.get("chain")
        profile = request.query.get("profile")
        chains: list[ChainRuntime] = (
            [self.router.resolve(chain_key, profile)] if chain_key else self.router.chains()
        )
        return _json({"providers": provider_rows(chains, self.router.clock.now_ms())})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events, or WebSocket frames when the client asks for an upgrade."""
        types = set(filter(None, request.query.get("types", "").split(",")))
        feed = self.summaries
        summaries = (
            feed.hold()
            if feed is not None and "stats.summary" in types
            else contextlib.nullcontext()
        )
        # Registered before the handshake so a client that got its answer misses nothing.
        async with self.open_events(types) as stream:
            with summaries:
                return await self._stream_events(request, stream)

    async def _stream_events(self, request: web.Request, stream: EventFeed) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse(heartbeat=20)
            await ws.prepare(request)
            reader = asyncio.create_task(_drain(ws))
            try:
                while not ws.closed:
                    ev = await _next_event(stream, reader, _KEEPALIVE_S)
                    if ev is _CLOSED:
                        break
                    if ev is None:
                        continue
                    await ws.send_bytes(ev[1])
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            return ws
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        await resp.write(b": lasso-rpc event stream\n\n")
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                return resp
            ev = await _next_event(stream, None, _KEEPALIVE_S)
            if ev is None:
                # A comment line: a client that went away is noticed by the failed write.
                await resp.write(b": keep-alive\n\n")
                continue
            kind, data = ev
            await resp.write(b"event: %s\ndata: %s\n\n" % (kind.encode(), data))


_KEEPALIVE_S = 15.0


def event_type(ev: Event) -> str:
    """The frame ``type`` of an event (``event_to_dict``'s, without building the dict)."""
    return "chaos.reverted" if isinstance(ev, ChaosEvent) and ev.reverted else ev.kind


_CLOSED = object()


async def _next_event(
    stream: EventFeed, reader: asyncio.Task[None] | None, timeout_s: float
) -> Any:
    """The next frame; None after ``timeout_s`` of silence; _CLOSED when the reader ended."""
    getter = asyncio.create_task(stream.next_frame())
    waiting: set[asyncio.Future[Any]] = {getter} if reader is None else {getter, reader}
    try:
        done, _ = await asyncio.wait(
            waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
    if getter in done:
        return getter.result()
    if reader is not None and reader in done:
        return _CLOSED
    return None


async def _drain(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
