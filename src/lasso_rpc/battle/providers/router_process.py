"""``lasso-rpc serve`` as a child process: the one way to start, watch and stop a router node.

Start: ``python -m lasso_rpc serve --config FILE --port P [--workers N]`` (``P`` is 0 the first
time; ``restart()`` keeps the port) in its own process group with PR_SET_PDEATHSIG
(``providers.process``). Ready: every worker prints ``lasso-rpc listening on URL (pid N)``;
start returns once all N have. Output keeps being read (a chatty router never blocks on a full
pipe) and its last lines are kept, for error messages and for tests of the CLI's own output.
Stop: SIGTERM to the group (with SIGCONT, so a frozen node ends too), SIGKILL after a timeout;
``kill()`` is the crash: SIGKILL at once.

Two faces over the same parts (``serve_command``, ``Readiness``, ``RouterNode``, the process
group): ``RouterProcess`` here, for asyncio code (battles, tests), and
``router_process_sync.RouterProcessSync`` for synchronous code (the benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from lasso_rpc.battle.providers.process import group_options, kill_group, signal_group, track
from lasso_rpc.errors import LassoError

__all__ = [
    "LISTENING",
    "Listening",
    "Readiness",
    "RouterNode",
    "RouterProcess",
    "RouterProcessError",
    "serve_command",
]

#: What each worker of ``lasso-rpc serve`` prints once its socket is bound.
LISTENING = re.compile(r"lasso-rpc listening on (http://\S+) \(pid (\d+)\)")
_TAIL_LINES = 400


class RouterProcessError(LassoError):
    """A router process exited, or did not listen in time; the message ends with its output."""


def serve_command(
    config_path: str | os.PathLike[str],
    *,
    port: int = 0,
    workers: int = 1,
    launcher: Sequence[str] | None = None,
) -> list[str]:
    """The command line; ``launcher`` replaces ``python -m lasso_rpc`` (a pinned or
    instrumented entry point that takes the same arguments)."""
    prefix = list(launcher) if launcher is not None else [sys.executable, "-m", "lasso_rpc"]
    argv = [*prefix, "serve", "--config", str(config_path), "--port", str(port)]
    return argv + (["--workers", str(workers)] if workers != 1 else [])


@dataclass(frozen=True, slots=True)
class Listening:
    url: str
    pid: int


class Readiness:
    """Reads a router's output lines until each of its ``workers`` has said where it listens."""

    def __init__(self, workers: int = 1, *, tail_lines: int = _TAIL_LINES) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.listening: list[Listening] = []
        self.tail: deque[str] = deque(maxlen=tail_lines)

    def __repr__(self) -> str:
        return f"Readiness({len(self.listening)}/{self.workers} listening)"

    def feed(self, line: str) -> bool:
        """One output line; True once every worker listens."""
        self.tail.append(line.rstrip("\r\n"))
        for m in LISTENING.finditer(line):  # two workers' lines may share one (older routers)
            if not self.ready:
                self.listening.append(Listening(m.group(1), int(m.group(2))))
        return self.ready

    @property
    def ready(self) -> bool:
        return len(self.listening) >= self.workers

    @property
    def output(self) -> str:
        """The last lines the process printed."""
        return "\n".join(self.tail)

    def failure(self, what: str) -> RouterProcessError:
        return RouterProcessError(f"router process {what}:\n{self.output[-3000:]}")


class RouterNode:
    """What both faces share: the command line, the port across restarts, readiness."""

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        *,
        workers: int,
        port: int,
        launcher: Sequence[str] | None,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        startup_timeout_s: float,
        stop_timeout_s: float,
    ) -> None:
        self.config_path = Path(config_path)
        self.workers = workers
        self.launcher = tuple(launcher) if launcher is not None else None
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._port = port
        self._ready = Readiness(workers)
        self._reaped = True  # nothing to kill before the first start

    def _command(self) -> list[str]:
        return serve_command(
            self.config_path, port=self._port, workers=self.workers, launcher=self.launcher
        )

    def _listened(self) -> None:
        url = self._ready.listening[0].url
        self._port = int(url.rsplit(":", 1)[1].split("/")[0])

    @property
    def url(self) -> str:
        """Base URL (no trailing slash) of the node; every worker shares it."""
        if not self._ready.ready:
            raise RouterProcessError("the router process is not listening")
        return self._ready.listening[0].url.rstrip("/")

    @property
    def port(self) -> int:
        """The port; kept by ``restart()`` so clients keep their URL."""
        return self._port

    @property
    def listening(self) -> list[Listening]:
        """Each worker's listening line, in the order they came."""
        return list(self._ready.listening)

    @property
    def worker_pids(self) -> list[int]:
        """The pids that printed their listening line (the process itself with one worker)."""
        return [w.pid for w in self._ready.listening]

    @property
    def output(self) -> str:
        """The last lines the router printed (stdout and stderr)."""
        return self._ready.output


class RouterProcess(RouterNode):
    """One router node for asyncio code: ``async with RouterProcess(path) as node: node.url``.

    ``kill()`` crashes the node (SIGKILL to the group), ``restart()`` brings it back on the same
    port; ``send_signal`` reaches the process itself (SIGHUP reloads, SIGSTOP freezes).
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        *,
        workers: int = 1,
        port: int = 0,
        launcher: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            config_path,
            workers=workers,
            port=port,
            launcher=launcher,
            env=env,
            cwd=cwd,
            startup_timeout_s=startup_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def __repr__(self) -> str:
        state = "running" if self.running else f"rc={self.returncode}"
        return f"RouterProcess(port={self._port}, pid={self.pid}, {state}, {self._ready!r})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> Self:
        """Spawn and wait until every worker listens (``RouterProcessError`` otherwise)."""
        if self.running:
            raise RouterProcessError("the router process is running already")
        self._ready = Readiness(self.workers)
        self._listening = asyncio.Event()
        proc = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            **group_options(signal.SIGTERM),  # TERM: the serve parent stops its workers
        )
        self._proc, self._reaped = proc, False
        track(proc.pid)
        self._reader = asyncio.create_task(self._read(proc), name=f"router-output-{proc.pid}")
        try:
            async with asyncio.timeout(self.startup_timeout_s):
                await self._wait_listening()
        except BaseException as exc:
            await self.kill()
            if isinstance(exc, TimeoutError):
                raise self._ready.failure(
                    f"not listening after {self.startup_timeout_s} s"
                ) from exc
            raise
        self._listened()
        return self

    async def _wait_listening(self) -> None:
        assert self._reader is not None
        ready = asyncio.create_task(self._listening.wait())
        try:
            await asyncio.wait({ready, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self._listening.is_set():
            await self.wait()
            raise self._ready.failure(f"exited with {self.returncode}")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line longer than the stream's limit: dropped, go on
                continue
            if not line:
                return
            if self._ready.feed(line.decode(errors="replace")):
                self._listening.set()

    async def wait(self) -> int:
        """Until the process exits; its return code."""
        assert self._proc is not None, "never started"
        return await self._proc.wait()

    def send_signal(self, sig: signal.Signals) -> None:
        """To the process itself (the serve parent when there are several workers)."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    async def stop(self) -> None:
        """SIGTERM (and SIGCONT) to the group; SIGKILL after ``stop_timeout_s``."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            signal_group(proc.pid, signal.SIGTERM)
            signal_group(proc.pid, signal.SIGCONT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
        await self._reap()

    async def kill(self) -> None:
        """SIGKILL to the whole group at once: the node crashes."""
        await self._reap()

    async def restart(self) -> Self:
        """Stop if running, then start again on the same port."""
        await self.stop()
        return await self.start()

    async def _reap(self) -> None:
        proc = self._proc
        if proc is not None and not self._reaped:
            kill_group(proc.pid)  # workers share the group: none is left behind
            await proc.wait()
            self._reaped = True  # once only: the group id may be reused later
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def aclose(self) -> None:
        await self.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
