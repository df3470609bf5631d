"""Control API (/api/control/...): off by default, bearer token, loopback clients only."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from lasso_rpc.config.models import ControlConfig
from lasso_rpc.errors import ConfigError, InvalidParams
from lasso_rpc.observability.events import ChaosEvent
from lasso_rpc.router import Router
from lasso_rpc.server.peers import is_loopback

__all__ = ["ControlHandlers"]

Reloader = Callable[[], Any]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class ControlHandlers:
    def __init__(
        self,
        router: Router,
        config: ControlConfig,
        reloader: Reloader | None,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.router = router
        self.config = config
        self.reloader = reloader
        #: Waits until a change reached the other processes sharing state (cluster/runtime.py):
        #: an answered control call is in force on every worker.
        self.settle = settle

    def _guard(
        self, fn: Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            if not self.config.enabled:
                return _json({"error": "control API disabled"}, 404)
            if not self.config.allow_remote and not is_loopback(request.remote):
                return _json({"error": "control API is served to loopback clients only"}, 403)
            auth = request.headers.get("Authorization", "")
            token = self.config.token or ""
            if not token or not hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()):
                return _json({"error": "missing or invalid bearer token"}, 401)
            try:
                body = orjson.loads(await request.read() or b"{}")
                if not isinstance(body, dict):
                    raise InvalidParams("body must be a JSON object")
                response = await fn(request, body)
                if self.settle is not None:
                    await self.settle()
                return response
            except orjson.JSONDecodeError:
                return _json({"error": "body must be JSON"}, 400)
            except InvalidParams as exc:
                return _json({"error": exc.message}, 400)
            except ConfigError as exc:
                return _json({"error": "invalid configuration", "errors": exc.errors}, 422)

        return handler

    def routes(self) -> list[web.RouteDef]:
        g = self._guard
        return [
            web.post("/api/control/breaker/open", g(self._breaker_open)),
            web.post("/api/control/breaker/close", g(self._breaker_close)),
            web.post("/api/control/cordon", g(self._cordon)),
            web.post("/api/control/uncordon", g(self._uncordon)),
            web.post("/api/control/reload", g(self._reload)),
            web.post("/api/control/chaos", g(self._chaos)),
        ]

    @staticmethod
    def _target(body: dict[str, Any]) -> tuple[str, str, str | None]:
        chain, provider = body.get("chain"), body.get("provider")
        if not isinstance(chain, str) or not isinstance(provider, str):
            raise InvalidParams("body needs string members 'chain' and 'provider'")
        profile = body.get("profile")
        return chain, provider, profile if isinstance(profile, str) else None

    async def _breaker_open(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        chain, provider, profile = self._target(body)
        hold = bool(body.get("hold", False))
        return _json({"state": self.router.open_breaker(chain, provider, profile, hold=hold)})

    async def _breaker_close(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        chain, provider, profile = self._target(body)
        return _json({"state": self.router.close_breaker(chain, provider, profile)})

    async def _cordon(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        chain, provider, profile = self._target(body)
        self.router.cordon(chain, provider, True, profile)
        return _json({"cordoned": True})

    async def _uncordon(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        chain, provider, profile = self._target(body)
        self.router.cordon(chain, provider, False, profile)
        return _json({"cordoned": False})

    async def _chaos(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        """A battle run in another process marks its fault injections on this router's bus."""
        action = body.get("action")
        if not isinstance(action, str):
            raise InvalidParams("body needs a string member 'action'")
        target = body.get("target")
        details = body.get("details") or {}
        self.router.bus.publish(
            ChaosEvent(
                ts=time.time(),
                action=action,
                target=target if isinstance(target, str) else None,
                reverted=bool(body.get("reverted", False)),
                details=details if isinstance(details, dict) else {},
            )
        )
        return _json({"published": True})

    async def _reload(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        if self.reloader is None:
            return _json({"error": "this router was not started from a config file"}, 409)
        cfg = await self.router.reload(self.reloader, "control api")
        return _json({"reloaded": True, "profiles": list(cfg.profiles)})
