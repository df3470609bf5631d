"""Where a scenario's router runs: in this process (default) or as a `lasso-rpc serve` child."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Protocol

from lasso_rpc.config import load_config_text
from lasso_rpc.observability.events import EventBus
from lasso_rpc.router import Router
from lasso_rpc.server.app import RouterServer

__all__ = ["InProcessRouter", "RouterHost", "SubprocessRouter", "start_router"]

_LISTENING = re.compile(rb"listening on (http://[^\s]+) \(pid (\d+)\)")


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

    async def aclose(self) -> None:
        await self._server.aclose()

    def __repr__(self) -> str:
        return f"InProcessRouter({self.url})"


class SubprocessRouter:
    """`python -m lasso_rpc serve` on port 0; the URL is read from its first stderr line."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, config_dir: str) -> None:
        self._proc = proc
        self.url = url
        self.pid = proc.pid
        self._dir = config_dir
        self._drain = asyncio.ensure_future(self._drain_stderr())

    @property
    def bus(self) -> EventBus | None:
        return None

    @property
    def router(self) -> Router | None:
        return None

    @property
    def process(self) -> asyncio.subprocess.Process:
        return self._proc

    async def _drain_stderr(self) -> None:
        # Keep reading so a chatty router never blocks on a full pipe.
        assert self._proc.stderr is not None
        while await self._proc.stderr.readline():
            pass

    async def aclose(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain
        with contextlib.suppress(OSError):
            for f in Path(self._dir).iterdir():
                f.unlink()
            os.rmdir(self._dir)

    def __repr__(self) -> str:
        return f"SubprocessRouter({self.url}, pid={self.pid}, rc={self._proc.returncode})"


async def start_router(
    config_yaml: str, *, process: bool, startup_timeout_s: float = 30.0
) -> RouterHost:
    if not process:
        server = RouterServer(load_config_text([("scenario.yaml", config_yaml)]), port=0)
        await server.start()
        return InProcessRouter(server)
    tmp = tempfile.mkdtemp(prefix="lasso-battle-")
    path = Path(tmp) / "router.yaml"
    path.write_text(config_yaml)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lasso_rpc",
        "serve",
        "--config",
        str(path),
        "--port",
        "0",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(startup_timeout_s):
            seen = b""
            while True:
                line = await proc.stderr.readline()
                if not line:
                    raise RuntimeError(
                        f"router process exited: {seen.decode(errors='replace')[-2000:]}"
                    )
                seen += line
                m = _LISTENING.search(line)
                if m:
                    return SubprocessRouter(proc, m.group(1).decode(), tmp)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
