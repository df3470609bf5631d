"""Drive ``sidecar.mjs`` (viem / ethers client-side fallback) from asyncio.

    async with await Sidecar.launch(spec) as sidecar:   # node up, clients built and warmed up
        clock_start = loop.time()                         # the scenario's zero
        await sidecar.go(clock_start)
        async for record in sidecar:                      # ContenderRecord, as requests finish
            ...
    sidecar.summary                                       # SidecarSummary once the run ended

The sidecar sends each request at ``clock_start + offset_s`` (open loop) and reports times in
seconds since ``clock_start``, like ``run_workload``. ``clock_start`` is on the
``time.monotonic()`` clock (asyncio's ``loop.time()``; uvloop's agrees to the millisecond).

Read the records while the run goes on: a sidecar whose stdout pipe is full stops sending. The
summary comes once every request has an answer or hit ``timeout_ms``; ``stop()`` ends it sooner.

Node runs in its own process group; ``aclose()`` (or leaving the ``async with``) ends it:
stdin closed (the sidecar records what is in flight as cancelled and exits), then SIGTERM, then
SIGKILL. Our exit closes its stdin too, so it never outlives us for long.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec

from lasso_rpc.battle.contenders.locate import (
    SidecarFailed,
    SidecarUnavailable,
    find_node,
    find_node_modules,
)
from lasso_rpc.battle.contenders.spec import (
    ContenderRecord,
    Line,
    SidecarReady,
    SidecarSpec,
    SidecarSummary,
    _Fatal,
    _Ready,
    _Request,
    _Started,
    _Summary,
    line_decoder,
)
from lasso_rpc.observability.redact import redact

__all__ = ["SCRIPT", "Sidecar", "run_contender"]

SCRIPT = Path(__file__).with_name("sidecar.mjs")
_GRACE_S = 2.0  # per step of aclose: stdin closed, SIGTERM, SIGKILL
_live_groups: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_live_groups):
        _killpg(pgid, signal.SIGKILL)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Sidecar:
    """One running sidecar process; make it with ``launch``, end it with ``aclose``."""

    def __init__(self, proc: asyncio.subprocess.Process, spec: SidecarSpec) -> None:
        self._proc = proc
        self._spec = spec
        self._stderr: deque[str] = deque(maxlen=40)
        self._stderr_task = asyncio.create_task(self._read_stderr(), name="sidecar-stderr")
        self._ready: SidecarReady | None = None
        self._started: _Started | None = None
        self._summary: SidecarSummary | None = None
        self._junk_lines = 0

    @classmethod
    async def launch(
        cls,
        spec: SidecarSpec,
        *,
        node: str | None = None,
        node_modules: Path | None = None,
        ready_timeout_s: float = 60.0,
    ) -> Sidecar:
        """Start node, hand it the spec and wait until its clients are built (and warmed up)."""
        node = node or find_node()
        modules = node_modules or find_node_modules([spec.client])
        try:
            proc = await asyncio.create_subprocess_exec(
                node, str(SCRIPT), "--modules", str(modules),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
                limit=1 << 20,
            )  # fmt: skip
        except OSError as exc:
            raise SidecarUnavailable(f"cannot run {node}: {exc}") from exc
        _live_groups.add(proc.pid)
        sidecar = cls(proc, spec)
        try:
            try:
                async with asyncio.timeout(ready_timeout_s):
                    await sidecar._send(spec.encode())
                    line = await sidecar._next_line()
            except TimeoutError as exc:
                raise sidecar._broken(f"not ready within {ready_timeout_s} s") from exc
            if not isinstance(line, _Ready):
                raise sidecar._broken(f"expected 'ready', got {type(line).__name__}")
            sidecar._ready = SidecarReady(line.library, line.version, line.quorum, line.warmup)
        except BaseException:
            await sidecar.aclose()
            raise
        return sidecar

    @property
    def ready(self) -> SidecarReady:
        assert self._ready is not None
        return self._ready

    @property
    def summary(self) -> SidecarSummary | None:
        """Set once the sidecar has written its summary (the run ended or was stopped)."""
        return self._summary

    @property
    def junk_lines(self) -> int:
        """Lines on stdout that were not protocol JSON (ignored)."""
        return self._junk_lines

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def go(self, clock_start: float | None = None) -> None:
        """Start the schedule at ``clock_start`` (``time.monotonic()`` seconds; default now)."""
        if self._started is not None:
            raise RuntimeError("go() already called")
        now = time.monotonic()
        t0 = now if clock_start is None else clock_start
        await self._send(msgspec.json.encode({"type": "go", "t0_s": t0, "now_s": now}) + b"\n")
        line = await self._next_line()
        if not isinstance(line, _Started):
            raise self._broken(f"expected 'started', got {type(line).__name__}")
        self._started = line

    def __aiter__(self) -> AsyncIterator[ContenderRecord]:
        return self.records()

    async def records(self) -> AsyncIterator[ContenderRecord]:
        """Records as requests finish, until the summary (then ``summary`` is set)."""
        if self._started is None:
            raise RuntimeError("call go() first")
        while self._summary is None:
            line = await self._next_line()
            if isinstance(line, _Request):
                yield line.value()
            elif isinstance(line, _Summary):
                s, st = line, self._started
                self._summary = SidecarSummary(
                    s.scheduled, s.sent, s.ok, s.errors, s.cancelled, s.unsent, s.stopped_early,
                    s.max_send_lag_ms, s.elapsed_s, st.clock, st.skew_ms,
                )  # fmt: skip
            else:
                raise self._broken(f"unexpected {type(line).__name__} during the run")

    async def stop(self) -> None:
        """Stop sending: the sidecar records what is in flight as cancelled, then summarises."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            with contextlib.suppress(ConnectionError):
                await stdin.wait_closed()

    async def aclose(self) -> None:
        """End the process group: stdin closed, then SIGTERM, then SIGKILL; idempotent."""
        proc = self._proc
        try:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if proc.returncode is not None:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_GRACE_S):
                        await proc.wait()
                        break
                _killpg(proc.pid, sig)
            await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled while waiting: do not leave it behind
                _killpg(proc.pid, signal.SIGKILL)
            _live_groups.discard(proc.pid)
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task

    async def __aenter__(self) -> Sidecar:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing --------------------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            await stdin.drain()
        except ConnectionError as exc:
            async with asyncio.timeout(_GRACE_S):
                code = await self._proc.wait()
            raise self._broken(f"exited with code {code}") from exc

    async def _next_line(self) -> Line:
        stdout = self._proc.stdout
        assert stdout is not None
        while True:
            raw = await stdout.readline()
            if not raw:
                await self._proc.wait()
                await asyncio.sleep(0)  # let the stderr reader take the last lines
                raise self._broken(f"exited with code {self._proc.returncode}")
            try:
                line = line_decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self._junk_lines += 1
                self._stderr.append("stdout: " + redact(raw.decode(errors="replace").rstrip()))
                continue
            if isinstance(line, _Fatal):
                raise SidecarFailed(f"{self._spec.client} sidecar: {redact(line.error)}")
            return line

    def _broken(self, what: str) -> SidecarFailed:
        tail = "\n".join(self._stderr)
        detail = f"\n--- sidecar stderr (last lines) ---\n{tail}" if tail else ""
        return SidecarFailed(f"{self._spec.client} sidecar {what}{detail}")

    async def _read_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        while raw := await stderr.readline():
            self._stderr.append(redact(raw.decode(errors="replace").rstrip()))

    def __repr__(self) -> str:
        state = (
            f"exited({self._proc.returncode})"
            if self._proc.returncode is not None
            else "done"
            if self._summary
            else "running"
            if self._started
            else "ready"
        )
        return f"Sidecar(client={self._spec.client!r}, pid={self._proc.pid}, state={state})"


async def run_contender(
    spec: SidecarSpec,
    *,
    on_record: Callable[[ContenderRecord], None],
    clock_start: float | None = None,
    stop: asyncio.Event | None = None,
    node: str | None = None,
    node_modules: Path | None = None,
) -> SidecarSummary:
    """Launch, go at ``clock_start`` (default: once ready), feed ``on_record``, return the summary.

    Setting ``stop`` ends the run early (in-flight requests are recorded as cancelled). Node's
    start-up (~0.5 s) happens before ``go``: pass a ``clock_start`` only if it lies after that,
    or the first requests go out late (and their latency says so).
    """
    async with await Sidecar.launch(spec, node=node, node_modules=node_modules) as sidecar:
        await sidecar.go(clock_start)
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(_stop_on(stop, sidecar)) if stop is not None else None
            async for record in sidecar:
                on_record(record)
            if watcher is not None:
                watcher.cancel()
        assert sidecar.summary is not None
        return sidecar.summary


async def _stop_on(event: asyncio.Event, sidecar: Sidecar) -> None:
    await event.wait()
    await sidecar.stop()
