"""The parent of ``serve --workers N``: runs the hub and watches the workers.

Signals: SIGTERM/SIGINT/SIGHUP are forwarded to every worker (SIGHUP reloads each one). A
worker that dies takes the others down: half a router on a shared port is worse than none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Sequence
from multiprocessing.process import BaseProcess

from lasso_rpc.cluster.hub import Hub

__all__ = ["supervise"]


async def supervise(procs: Sequence[BaseProcess], hub_socks: Sequence[socket.socket]) -> int:
    """Until every worker has exited; the exit code of the whole (0, or 1 if a worker failed)."""
    loop = asyncio.get_running_loop()
    hub = Hub()
    hub_task = loop.create_task(hub.serve(hub_socks), name="hub")
    one_exited = asyncio.Event()

    def forward(sig: int) -> None:
        for proc in procs:
            if proc.pid is not None and proc.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(s, forward, s)

    def exited(sentinel: int) -> None:
        loop.remove_reader(sentinel)  # level-triggered: once is enough
        one_exited.set()

    for proc in procs:
        loop.add_reader(proc.sentinel, exited, proc.sentinel)
    try:
        await one_exited.wait()
        forward(signal.SIGTERM)
        await asyncio.gather(*(asyncio.to_thread(proc.join) for proc in procs))
        # Exit codes are read once every worker is reaped: the first one's may not be known
        # the moment its sentinel fires. A worker stopped by our SIGTERM ends with 0 (or -15).
        failed = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
        return 1 if failed else 0
    finally:
        for proc in procs:
            loop.remove_reader(proc.sentinel)
        hub_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await hub_task
