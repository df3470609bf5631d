"""Where a scenario's router runs: in this process (default) or as a `lasso-rpc serve` child."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from lasso_rpc.battle.providers.router_process import RouterProcess
from lasso_rpc.config import load_config_text
from lasso_rpc.observability.events import EventBus
from lasso_rpc.router import Router
from lasso_rpc.server.app import RouterServer

__all__ = ["InProcessRouter", "RouterHost", "SubprocessRouter", "start_router"]


class RouterHost(Protocol):
    url: str
    pid: int

    @property
    def bus(self) -> EventBus | None:
        """The router's event bus when it runs in this process, else None."""
        ...

    @property
    def router(self) -> Router | None: ...

    async def aclose(self) -> None: ...


class InProcessRouter:
    def __init__(self, server: RouterServer) -> None:
        self._server = server
        self.url = server.url
        self.pid = os.getpid()

    @property
    def bus(self) -> EventBus | None:
        return self._server.router.bus

    @property
    def router(self) -> Router | None:
        return self._server.router

    @property
    def server(self) -> RouterServer:
        """The server itself (its ``subscriptions`` manager, for test seams)."""
        return self._server

    async def aclose(self) -> None:
        await self._server.aclose()

    def __repr__(self) -> str:
        return f"InProcessRouter({self.url})"


class SubprocessRouter:
    """A ``lasso-rpc serve`` child (``RouterProcess``) on a config file of its own."""

    def __init__(self, node: RouterProcess, config_dir: str) -> None:
        self.node = node
        self.url = node.url
        assert node.pid is not None
        self.pid = node.pid
        self._dir = config_dir

    @property
    def bus(self) -> EventBus | None:
        return None

    @property
    def router(self) -> Router | None:
        return None

    async def aclose(self) -> None:
        try:
            await self.node.aclose()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"SubprocessRouter({self.url}, {self.node!r})"


async def start_router(
    config_yaml: str, *, process: bool, startup_timeout_s: float = 30.0
) -> RouterHost:
    """The scenario's router: in this process, or a ``lasso-rpc serve`` child (``process``)."""
    if not process:
        server = RouterServer(load_config_text([("scenario.yaml", config_yaml)]), port=0)
        await server.start()
        return InProcessRouter(server)
    tmp = tempfile.mkdtemp(prefix="lasso-battle-")
    path = Path(tmp) / "router.yaml"
    path.write_text(config_yaml)
    node = RouterProcess(path, startup_timeout_s=startup_timeout_s)
    try:
        await node.start()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SubprocessRouter(node, tmp)
