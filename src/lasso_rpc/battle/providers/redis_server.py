"""A throwaway ``redis-server`` for tests, battles and benchmarks (``state: {backend: redis}``).

Each ``RedisServer`` runs its own ``redis-server`` in a temp dir of its own, listening on a unix
socket there only (``port 0`` turns TCP off: redis cannot be asked for a free TCP port, and a
socket path cannot collide with another test's). Nothing is saved to disk. The process is in
its own group with PR_SET_PDEATHSIG (``providers.process``), so it never outlives us.

Chaos needs it to die and come back: ``kill()`` is SIGKILL (clients see resets and refused
connects), ``restart()`` starts an empty server on the same socket path, ``pause()``/``resume()``
freeze it (clients see timeouts). The binary: ``$LASSO_REDIS_SERVER`` or ``redis-server`` on
PATH (``make redis`` installs Debian's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Self

from lasso_rpc.battle.providers.process import group_options, kill_group, signal_group, track
from lasso_rpc.errors import LassoError

__all__ = ["RedisNotFound", "RedisServer", "redis_binary"]


class RedisNotFound(LassoError):
    """No redis-server binary: run ``make redis`` (scripts/ensure-redis.sh)."""


def redis_binary() -> str:
    """The redis-server to run: ``$LASSO_REDIS_SERVER``, else the one on PATH."""
    explicit = os.environ.get("LASSO_REDIS_SERVER")
    found = shutil.which(explicit) if explicit else shutil.which("redis-server")
    if found is None:
        raise RedisNotFound(
            "redis-server not found: run `make redis` (scripts/ensure-redis.sh installs "
            "Debian's redis-server) or set LASSO_REDIS_SERVER"
        )
    return found


class RedisServer:
    """``async with RedisServer() as r: r.url`` (``unix:///tmp/.../redis.sock``)."""

    def __init__(self, *, startup_timeout_s: float = 10.0) -> None:
        self._binary = redis_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="lasso-redis-"))
        self.socket_path = str(self._dir / "redis.sock")
        self.startup_timeout_s = startup_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _argv(self) -> list[str]:
        return [
            self._binary,
            "--port", "0",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", "",
        ]  # fmt: skip

    async def start(self) -> Self:
        if self.running:
            return self
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        proc = await asyncio.create_subprocess_exec(
            *self._argv(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            **group_options(signal.SIGKILL),
        )
        self._proc = proc
        track(proc.pid)
        try:
            async with asyncio.timeout(self.startup_timeout_s):
                while not await self._pong():
                    if proc.returncode is not None:
                        break
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pass
        if proc.returncode is not None or not await self._pong():
            err = b""
            if proc.returncode is not None and proc.stderr is not None:
                err = await proc.stderr.read()
            await self.kill()
            raise LassoError(f"redis-server did not start: {err.decode(errors='replace')[-500:]}")
        self.starts += 1
        return self

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            return await asyncio.wait_for(reader.readline(), 1.0) == b"+PONG\r\n"
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def kill(self) -> None:
        """SIGKILL: the server is gone at once, with every key it held."""
        proc, self._proc = self._proc, None
        if proc is not None:
            kill_group(proc.pid)
            await proc.wait()

    async def restart(self) -> Self:
        """An empty server on the same socket path (after a kill, or killing it first)."""
        await self.kill()
        return await self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (clients time out)."""
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGCONT)

    async def aclose(self) -> None:
        await self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer({self.url}, {state}, pid={self.pid}, starts={self.starts})"
