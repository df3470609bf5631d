"""The aiohttp application: /rpc, /api, /metrics, control API, and its lifecycle."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lasso_rpc.config.models import Config
from lasso_rpc.observability.logs import EventLogger
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.router import Router
from lasso_rpc.server.control import ControlHandlers
from lasso_rpc.server.ops import OpsHandlers
from lasso_rpc.server.rpc import RpcHandler
from lasso_rpc.server.ws import WsEndpoint
from lasso_rpc.subscriptions.manager import SubscriptionManager

__all__ = ["RouterServer", "build_app"]

ROUTER_KEY = web.AppKey("router", Router)


def build_app(
    router: Router, *, reloader: Callable[[], Any] | None = None, ws_base: str | None = None
) -> web.Application:
    cfg = router.config.server
    max_body = max((c.routing.max_body_bytes for c in router.chains()), default=5 * 1024 * 1024)
    # The per-chain limit is checked in the handler; this is only aiohttp's outer bound.
    app = web.Application(client_max_size=max_body + 1024)
    app[ROUTER_KEY] = router
    metrics = PrometheusMetrics(router)
    router.bus.subscribe(metrics.on_event)
    router.bus.subscribe(EventLogger().on_event)
    rpc = RpcHandler(router, ws_base=ws_base or cfg.public_ws_base)
    ops = OpsHandlers(router, metrics)
    control = ControlHandlers(router, cfg.control, reloader)
    router.subscriptions = SubscriptionManager(router)
    ws = WsEndpoint(router, rpc, router.subscriptions)
    app.on_shutdown.append(ws.on_shutdown)  # closes client sockets, then the manager
    app.add_routes(
        [
            web.post("/rpc/{tail:.+}", rpc.handle),
            web.get("/ws/rpc/{tail:.+}", ws.handle),
            web.get("/health", ops.health),
            web.get("/ready", ops.ready),
            web.get("/metrics", ops.metrics_text),
            web.get("/api/chains", ops.chains),
            web.get("/api/providers", ops.providers),
            web.get("/api/events", ops.events),
            *control.routes(),
        ]
    )
    return app


class RouterServer:
    """Router + HTTP server on one port; ``async with RouterServer(config) as s: s.url``."""

    def __init__(
        self,
        config: Config,
        *,
        host: str | None = None,
        port: int | None = None,
        reloader: Callable[[], Any] | None = None,
        router: Router | None = None,
        sock: socket.socket | None = None,
        transport_impl: str = "fast",
    ) -> None:
        self.router = router or Router(config, transport_impl=transport_impl)
        self.host = host if host is not None else config.server.host
        self.port = port if port is not None else config.server.port
        self._reloader = reloader
        self._sock = sock
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await self.router.start()
        app = build_app(self.router, reloader=self._reloader)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(self._runner, self._sock)
        else:
            site = web.TCPSite(self._runner, self.host, self.port, reuse_port=False)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.router.aclose()

    async def __aenter__(self) -> RouterServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.aclose()
