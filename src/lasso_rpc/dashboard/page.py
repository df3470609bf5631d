"""``GET /dashboard``: the page, its script and its style, all from the package (no CDN).

Hand-written JavaScript and SVG (about 20 KB) rather than plotly.js (4.6 MB, inlined by the
battle report): the page is reloaded by operators and kept open for hours, and needs only
lines, bands and tables. Served when ``dashboard.enabled`` is true, else to loopback clients
only. A Content-Security-Policy allows nothing but this origin, so the page cannot load
anything from elsewhere even by mistake. ``/api/subscriptions`` lists the multiplexed
WebSocket subscriptions (the summary feed carries them too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from lasso_rpc.config.dashboard import DashboardConfig
from lasso_rpc.server.peers import is_loopback

__all__ = ["ASSETS", "DashboardPage"]

#: name -> (file in ``assets/``, content type)
ASSETS = {
    "page": ("dashboard.html", "text/html; charset=utf-8"),
    "app.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "app.css": ("dashboard.css", "text/css; charset=utf-8"),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def _read(name: str) -> bytes:
    return (resources.files("lasso_rpc.dashboard") / "assets" / name).read_bytes()


class DashboardPage:
    def __init__(
        self,
        config: DashboardConfig,
        *,
        subscriptions: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        self.config = config
        self._subscriptions = subscriptions
        self._assets = {key: (_read(f), ctype) for key, (f, ctype) in ASSETS.items()}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/dashboard", self._asset("page")),
            web.get("/dashboard/", self._redirect),
            web.get("/dashboard/app.js", self._asset("app.js")),
            web.get("/dashboard/app.css", self._asset("app.css")),
            web.get("/api/subscriptions", self._subscriptions_api),
        ]

    def allowed(self, request: web.Request) -> bool:
        return self.config.enabled or is_loopback(request.remote)

    def _asset(self, key: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            if not self.allowed(request):
                return web.Response(
                    status=403,
                    text="the dashboard is served to loopback clients only; set "
                    "dashboard: {enabled: true} in the config to serve it to others\n",
                )
            body, ctype = self._assets[key]
            return web.Response(body=body, headers={**_HEADERS, "Content-Type": ctype})

        return handler

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("../dashboard")

    async def _subscriptions_api(self, request: web.Request) -> web.Response:
        feeds = [asdict(f) for f in self._subscriptions()] if self._subscriptions else []
        return web.Response(
            body=orjson.dumps({"subscriptions": feeds}), content_type="application/json"
        )

    def __repr__(self) -> str:
        return f"DashboardPage(enabled={self.config.enabled})"
