"""``NodeBalancer``: the load balancer in front of a battle's router nodes (a TCP proxy).

Each client connection goes to the next node in turn; a node that refuses the connection (it
was killed) is skipped, and the next one tried, as any L4 balancer with connect retries does.
A connection already going to a node that dies is reset, as behind a real balancer: the
client sees it at once (not on its next request), and its next connection lands on a live
node. Counts connections per node, so a battle can show how load was spread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence

__all__ = ["NodeBalancer"]

_CHUNK = 65536


class NodeBalancer:
    """``async with NodeBalancer([(host, port), ...]) as lb: lb.url``."""

    def __init__(
        self, targets: Sequence[tuple[str, int]], *, connect_timeout_s: float = 1.0
    ) -> None:
        self.targets = list(targets)
        self.connect_timeout_s = connect_timeout_s
        self._next = itertools.cycle(range(len(self.targets)))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = [0] * len(self.targets)
        self.refused = [0] * len(self.targets)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> NodeBalancer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        ]
        try:
            # HTTP needs no half-close: when either side ends, both do, at once (a node that
            # died resets its clients' connections, so none is reused for a request it loses).
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pipes:
                p.cancel()
            for w in (writer, up_writer):
                transport = w.transport
                if transport is not None and not transport.is_closing():
                    transport.abort()
            await asyncio.gather(*pipes, return_exceptions=True)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.targets)):
            i = next(self._next)
            host, port = self.targets[i]
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    pair = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                self.refused[i] += 1
                continue
            self.connections[i] += 1
            return pair
        return None

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def __aenter__(self) -> NodeBalancer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"NodeBalancer({self.url} -> {self.targets}, connections={self.connections})"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
