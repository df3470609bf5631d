"""Operational endpoints: health, readiness, metrics, chains, providers, live events."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from lasso_rpc.observability.events import EventStream, event_to_dict
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.resilience.breaker import BreakerState
from lasso_rpc.router import Router
from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["OpsHandlers"]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class OpsHandlers:
    def __init__(self, router: Router, metrics: PrometheusMetrics) -> None:
        self.router = router
        self.metrics = metrics

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        chains = {}
        ok = True
        for c in self.router.chains():
            usable = [
                p.id
                for p in c.providers.values()
                if not p.cordoned and p.breaker.state is not BreakerState.OPEN
            ]
            chains[f"{c.profile}/{c.name}"] = {"usable_providers": usable}
            ok = ok and bool(usable)
        return _json({"ready": ok, "chains": chains}, 200 if ok else 503)

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
        out = []
        for c in chains:
            for p in c.providers.values():
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
                        "unsupported_methods": sorted(p.unsupported),
                        "stats": p.stats.snapshot(),
                    }
                )
        return _json({"providers": out})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events, or WebSocket frames when the client asks for an upgrade."""
        types = set(filter(None, request.query.get("types", "").split(",")))
        bus = self.router.bus
        # Registered before the handshake so a client that got its answer misses nothing.
        with bus.stream() as stream:
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
                        d = event_to_dict(ev)
                        if not types or d["type"] in types:
                            await ws.send_bytes(orjson.dumps(d, default=str))
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
                d = event_to_dict(ev)
                if types and d["type"] not in types:
                    continue
                await resp.write(
                    b"event: %s\ndata: %s\n\n" % (d["type"].encode(), orjson.dumps(d, default=str))
                )


_KEEPALIVE_S = 15.0
_CLOSED = object()


async def _next_event(
    stream: EventStream, reader: asyncio.Task[None] | None, timeout_s: float
) -> Any:
    """The next event; None after ``timeout_s`` of silence; _CLOSED when the reader ended."""
    getter = asyncio.create_task(stream.get())
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
