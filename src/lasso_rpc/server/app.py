"""The router's HTTP server: the lean front for /rpc, aiohttp for the rest, and its lifecycle.

The server owns what only a server needs: the ``SubscriptionManager`` behind ``/ws/rpc`` (built
here from the router's parts, closed on shutdown), metrics and log subscribers on the bus.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lasso_rpc.access.gate import build_gate
from lasso_rpc.access.metrics import AccessCollector
from lasso_rpc.clock import SYSTEM_CLOCK
from lasso_rpc.cluster.hub_link import HubLink
from lasso_rpc.cluster.metrics import ClusterCollector
from lasso_rpc.cluster.redis_cache import redis_cache_stores
from lasso_rpc.cluster.redis_guard import RedisGuard
from lasso_rpc.cluster.runtime import Cluster
from lasso_rpc.cluster.views import ClusterViews
from lasso_rpc.config.models import Config
from lasso_rpc.dashboard.feed import SummaryFeed
from lasso_rpc.dashboard.page import DashboardPage
from lasso_rpc.observability.logs import EventLogger
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.router import Router
from lasso_rpc.server.conn_gate import ConnectionGate, Tracked
from lasso_rpc.server.control import ControlHandlers
from lasso_rpc.server.http1 import FrontDoor
from lasso_rpc.server.ops import OpsHandlers
from lasso_rpc.server.rpc import RpcHandler
from lasso_rpc.server.strict import parse_error_logger, strict_middleware, with_safe_expect
from lasso_rpc.server.ws import WsEndpoint
from lasso_rpc.subscriptions.manager import SubscriptionManager
from lasso_rpc.subscriptions.options import SubscriptionOptions

__all__ = ["RouterServer", "build_app", "subscription_manager"]

ROUTER_KEY = web.AppKey("router", Router)
RPC_KEY = web.AppKey("rpc", RpcHandler)
SUBSCRIPTIONS_KEY = web.AppKey("subscriptions", SubscriptionManager)
WS_KEY = web.AppKey("ws", WsEndpoint)
SUMMARY_KEY = web.AppKey("summaries", SummaryFeed)


def subscription_manager(router: Router) -> SubscriptionManager:
    """A manager fed by ``router``: its chains (after reloads too), pipeline, bus and clock."""
    limits = router.config.server.limits
    return SubscriptionManager(
        resolve=router.resolve,
        pipeline=router.pipeline,
        publish=router.bus.publish,
        clock=router.clock,
        options=SubscriptionOptions(
            max_subscriptions=limits.ws_max_subscriptions,
            max_message_bytes=limits.ws_max_message_bytes,
        ),
    )


def build_app(
    router: Router,
    *,
    reloader: Callable[[], Any] | None = None,
    ws_base: str | None = None,
    subscriptions: SubscriptionManager | None = None,
    cluster: Cluster | None = None,
) -> web.Application:
    """The aiohttp app; it closes ``subscriptions`` (made from ``router`` if None) on shutdown."""
    cfg = router.config.server
    max_body = max((c.routing.max_body_bytes for c in router.chains()), default=5 * 1024 * 1024)
    # The per-chain limit is checked in the handler; this is only aiohttp's outer bound.
    app = web.Application(
        client_max_size=max_body + 1024, middlewares=[strict_middleware(router.bus.publish)]
    )
    app[ROUTER_KEY] = router
    metrics = PrometheusMetrics(router)
    router.bus.subscribe(metrics.on_event)
    router.bus.subscribe(EventLogger().on_event)
    gate = build_gate(
        router.config,
        clock=router.clock,
        hub=cluster.hub if cluster is not None else None,
        guard=cluster.redis_guard if cluster is not None else None,
    )
    if gate is not None:
        metrics.registry.register(AccessCollector(gate))

        async def close_gate(app: web.Application) -> None:
            await gate.aclose()

        app.on_cleanup.append(close_gate)
    rpc = RpcHandler(router, ws_base=ws_base or cfg.public_ws_base, gate=gate)
    app[RPC_KEY] = rpc
    views = ClusterViews(cluster.hub, router, metrics) if cluster and cluster.hub else None
    if cluster is not None:
        metrics.registry.register(ClusterCollector(cluster))
    manager = subscriptions or subscription_manager(router)
    app[SUBSCRIPTIONS_KEY] = manager
    summaries = SummaryFeed(router, metrics, subscriptions=manager.feeds)
    app[SUMMARY_KEY] = summaries
    app.on_cleanup.append(lambda _app: summaries.aclose())
    ops = OpsHandlers(
        router,
        metrics,
        summaries=summaries,
        events=views.events.open if views is not None else None,
    )
    control = ControlHandlers(
        router, cfg.control, reloader, cluster.settle if cluster is not None else None
    )
    dashboard = DashboardPage(router.config.dashboard, subscriptions=manager.feeds)
    ws = WsEndpoint(router, rpc, manager)
    app[WS_KEY] = ws
    app.on_shutdown.append(ws.on_shutdown)  # closes client sockets, then the manager
    app.add_routes(
        with_safe_expect(
            [
                web.post("/rpc/{tail:.+}", rpc.handle),
                web.get("/ws/rpc/{tail:.+}", ws.handle),
                web.get("/health", ops.health),
                web.get("/ready", ops.ready),
                web.get("/metrics", views.metrics_text if views else ops.metrics_text),
                web.get("/api/chains", ops.chains),
                web.get("/api/providers", views.providers if views else ops.providers),
                web.get("/api/events", ops.events),
                *control.routes(),
                *dashboard.routes(),
            ]
        )
    )
    return app


class RouterServer:
    """Router + HTTP server on one port; ``async with RouterServer(config) as s: s.url``.

    ``front``: ``"fast"`` (default; ``server.front`` in the config) serves ``POST /rpc/...``
    with the lean HTTP/1.1 front and hands every other connection to aiohttp; ``"aiohttp"``
    serves everything with aiohttp (the reference the fast front is tested against).
    """

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
        front: str | None = None,
        hub: HubLink | None = None,
    ) -> None:
        #: Redis, when the state is there: one connection (and one breaker) for the shared
        #: state, the client limits and the response cache (``cluster/redis_cache.py``).
        self._guard = RedisGuard(config.state) if config.state.backend == "redis" else None
        cache_store = (
            redis_cache_stores(self._guard, config.state.prefix, SYSTEM_CLOCK)
            if self._guard is not None
            else None
        )
        self.router = router or Router(
            config, transport_impl=transport_impl, cache_store=cache_store
        )
        self.host = host if host is not None else config.server.host
        self.port = port if port is not None else config.server.port
        self._reloader = reloader
        self._sock = sock
        self._runner: web.AppRunner | None = None
        self.front = front or config.server.front
        if self.front not in ("fast", "aiohttp"):
            raise ValueError(f"front must be 'fast' or 'aiohttp', got {self.front!r}")
        self._door: FrontDoor | None = None
        #: Open connections per client address and in total (made on ``start``).
        self.gate: ConnectionGate | None = None
        self._server: asyncio.Server | None = None
        #: WebSocket subscriptions (``/ws/rpc``); made on ``start``, closed on ``aclose``.
        self.subscriptions: SubscriptionManager | None = None
        self._hub = hub
        #: Shared state with other processes (``state:``, the workers' hub); made on ``start``.
        self.cluster: Cluster | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await self.router.start()
        self.cluster = Cluster(
            self.router, hub=self._hub, reloader=self._reloader, guard=self._guard
        )
        await self.cluster.start()
        self.subscriptions = subscription_manager(self.router)
        app = build_app(
            self.router,
            reloader=self._reloader,
            subscriptions=self.subscriptions,
            cluster=self.cluster,
        )
        limits = self.router.config.server.limits
        line = min(limits.max_header_bytes, 8190)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=1.0,
            # aiohttp's keep-alive timer runs from the last answer until the next request is
            # whole: it is both its idle and its slow-head limit.
            keepalive_timeout=min(limits.idle_timeout_s, limits.header_timeout_s),
            max_line_size=line,
            max_field_size=line,
            max_headers=limits.max_headers,
            logger=parse_error_logger(self.router.bus.publish),
        )
        await self._runner.setup()
        aio = self._runner.server
        assert aio is not None
        gate = ConnectionGate(limits, self.router.bus.publish)
        self.gate = gate

        def tracked() -> asyncio.BaseProtocol:
            return Tracked(gate, aio())

        factory: Callable[[], asyncio.BaseProtocol] = tracked
        if self.front == "fast":
            self._door = FrontDoor(app[RPC_KEY], aio, limits=limits, gate=gate)
            factory = self._door
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock, backlog=1024)
        else:
            self._server = await loop.create_server(
                factory, self.host, self.port, backlog=1024, reuse_address=True
            )
        if self._door is not None:
            self._door.start()
        if self._server.sockets:
            self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        if self._door is not None:
            await self._door.shutdown(1.0)
            self._door = None
        if self._runner is not None:
            await self._runner.cleanup()  # handed-over connections, WebSockets, on_shutdown
            self._runner = None
        self._server = None
        await self.router.aclose()
        if self.cluster is not None:  # after the router: the cache may use Redis until then
            await self.cluster.aclose()
            self.cluster = None

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
