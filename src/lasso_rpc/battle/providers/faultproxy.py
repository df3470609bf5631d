"""A TCP proxy with switchable network faults, to put between the router and any provider.

``FaultProxy(host, port)`` listens on a free loopback port and forwards every connection to the
target (a MockProvider or a real node such as anvil). Faults (``set(**faults)``, ``clear()``) take
effect at once, on the next bytes and the next connections:

- ``latency_ms`` + uniform ``jitter_ms``: each chunk is held that long, in each direction, and
  never overtakes an earlier chunk (reading goes on meanwhile, like a long network path).
- ``bandwidth_bytes_per_s``: a token bucket per direction, shared by every connection (a link).
- ``reset_new``: new connections are accepted, then reset at once (RST).
- ``blackhole``: bytes are read and dropped in both directions; new connections never reach the
  target. A connection that lost bytes has a broken byte stream, so it is reset when the
  blackhole lifts (a TCP connection whose peer vanished long enough ends the same way).
- ``slow_close_ms``: when the target closes a connection, the close reaches the client that much
  later (the data before it is not delayed).
- ``refuse``: stop listening (connection refused); ``refuse=False`` listens again on the same
  port, which stays bound meanwhile so no one else takes it.

``reset()`` aborts every open connection now, both sides (SO_LINGER 0: the peers see a reset).
``async with`` / ``aclose()`` own the listening socket and every connection task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Coroutine
from typing import Any, Literal

from lasso_rpc.battle.providers.faults import BURST_S, Bucket, Faults, ProxyCounters

__all__ = ["FaultProxy"]

log = logging.getLogger("lasso_rpc.battle.providers.faultproxy")

State = Literal["new", "listening", "refusing", "closed"]
Direction = Literal["up", "down"]  # up: client -> target, down: target -> client

_CHUNK = 65536
_QUEUE_CHUNKS = 64  # per direction and connection: bounded memory when the far side is slow
_LINGER_RST = struct.pack("ii", 1, 0)


class _Conn:
    """One proxied connection: its handler task and the two stream writers."""

    __slots__ = ("client", "poisoned", "task", "upstream")

    def __init__(self, task: asyncio.Task[None] | None) -> None:
        self.task = task
        self.client: asyncio.StreamWriter | None = None
        self.upstream: asyncio.StreamWriter | None = None
        self.poisoned = False  # lost bytes to a blackhole: reset when it lifts

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _rst(writer.get_extra_info("socket"))
                writer.transport.abort()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


def _rst(sock: Any) -> None:
    """Make the coming close send a RST instead of a FIN."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


class FaultProxy:
    """A fault-injecting TCP proxy to ``target_host:target_port``; ``async with`` runs it."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        rng: random.Random | None = None,
        faults: Faults | None = None,
    ) -> None:
        self._target = (target_host, target_port)
        self._host = listen_host
        self._port = listen_port
        self._rng = rng if rng is not None else random.Random(f"fault-proxy:{target_port}")
        self._faults = faults or Faults()
        self._state: State = "new"
        self._sock: socket.socket | None = None  # bound; listening unless refusing
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[_Conn] = set()
        self._buckets: dict[Direction, Bucket] = {"up": Bucket(), "down": Bucket()}
        self._accepted = self._resets = self._upstream_failures = 0
        self._bytes: dict[Direction | Literal["dropped"], int] = {"up": 0, "down": 0, "dropped": 0}

    # -- identity and state ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("FaultProxy not started yet, no port bound")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}"

    @property
    def target(self) -> tuple[str, int]:
        return self._target

    @property
    def state(self) -> State:
        return self._state

    @property
    def counters(self) -> ProxyCounters:
        return ProxyCounters(
            accepted=self._accepted,
            active=len(self._conns),
            reset=self._resets,
            upstream_failures=self._upstream_failures,
            bytes_up=self._bytes["up"],
            bytes_down=self._bytes["down"],
            bytes_dropped=self._bytes["dropped"],
        )

    # -- faults ----------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, **faults: Any) -> Faults:
        """Change some faults now; returns the previous ones (to restore with ``set_faults``)."""
        return self.set_faults(self._faults.with_changes(**faults))

    def clear(self) -> Faults:
        """No faults any more; returns the previous ones."""
        return self.set_faults(Faults())

    def set_faults(self, faults: Faults) -> Faults:
        previous, self._faults = self._faults, faults
        if self._state in ("listening", "refusing"):
            if faults.refuse and self._state == "listening":
                self._stop_listening()
            elif not faults.refuse and self._state == "refusing":
                self._listen()
            if previous.blackhole and not faults.blackhole:
                for conn in [c for c in self._conns if c.poisoned]:
                    self._resets += 1
                    conn.abort()
        return previous

    def reset(self) -> int:
        """Abort every open connection now (RST to both peers); how many there were."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
        self._resets += len(conns)
        return len(conns)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"FaultProxy already {self._state}")
        self._loop = asyncio.get_running_loop()
        self._bind()
        if self._faults.refuse:
            self._state = "refusing"
        else:
            self._listen()

    async def aclose(self) -> None:
        """Stop listening, close every connection and wait for every task to end."""
        if self._state == "closed":
            return
        if self._state == "listening":
            self._stop_listening()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._state = "closed"
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _bind(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._sock = sock

    def _listen(self) -> None:
        assert self._loop is not None
        if self._sock is None:  # the reservation failed when refusing began: try again
            self._bind()
        assert self._sock is not None
        self._sock.listen(128)
        self._loop.add_reader(self._sock.fileno(), self._on_acceptable)
        self._state = "listening"

    def _stop_listening(self) -> None:
        """Close the listening socket; keep the port with a bound, non-listening one."""
        assert self._loop is not None and self._sock is not None
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        self._state = "refusing"
        try:
            self._bind()
        except OSError as exc:  # rare: the port was taken at once; _listen will retry
            log.warning("fault proxy could not keep port %s reserved: %s", self._port, exc)

    def _on_acceptable(self) -> None:
        for _ in range(64):
            if self._sock is None:
                return
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: try on the next wake-up
                log.warning("fault proxy accept failed: %s", exc)
                return
            self._accepted += 1
            if self._faults.reset_new:
                self._resets += 1
                _rst(sock)
                sock.close()
                continue
            self._spawn(self._serve(sock))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fault proxy connection task failed", exc_info=task.exception())

    # -- one connection --------------------------------------------------------------------

    async def _serve(self, sock: socket.socket) -> None:
        conn = _Conn(asyncio.current_task())
        self._conns.add(conn)
        try:
            reader, conn.client = await asyncio.open_connection(sock=sock)
            if self._faults.blackhole:  # never reaches the target
                conn.poisoned = True
                while data := await reader.read(_CHUNK):
                    self._bytes["dropped"] += len(data)
                return
            try:
                up_reader, conn.upstream = await asyncio.open_connection(*self._target)
            except OSError:
                self._upstream_failures += 1
                self._resets += 1
                conn.abort()
                return
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pipe(conn, reader, conn.upstream, "up"))
                tg.create_task(self._pipe(conn, up_reader, conn.client, "down"))
        except OSError:  # the client went away (reset) before or without a target
            conn.abort()
        finally:
            self._conns.discard(conn)
            if conn.client is None:
                sock.close()
            for writer in (conn.client, conn.upstream):
                if writer is not None:
                    writer.close()

    async def _pipe(
        self,
        conn: _Conn,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        """One direction: a reading stage and a delaying/pacing writing stage."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_stage(conn, src, queue))
                tg.create_task(self._write_stage(conn, dst, queue, direction))
        except* OSError:  # a reset or a broken pipe on either side: reset both sides
            conn.abort()

    async def _read_stage(
        self,
        conn: _Conn,
        src: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes]],
    ) -> None:
        assert self._loop is not None
        release = 0.0
        while True:
            data = await src.read(_CHUNK)
            f = self._faults
            if f.blackhole:
                conn.poisoned = True
                if not data:
                    return  # not even the close goes through
                self._bytes["dropped"] += len(data)
                continue
            delay = f.latency_ms + (self._rng.uniform(0.0, f.jitter_ms) if f.jitter_ms else 0.0)
            release = max(release, self._loop.time() + delay / 1000.0)  # never reorder
            await queue.put((release, data))
            if not data:
                return

    async def _write_stage(
        self,
        conn: _Conn,
        dst: asyncio.StreamWriter,
        queue: asyncio.Queue[tuple[float, bytes]],
        direction: Direction,
    ) -> None:
        assert self._loop is not None
        while True:
            release, data = await queue.get()
            wait = release - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:  # end of stream
                if direction == "down" and self._faults.slow_close_ms > 0:
                    await asyncio.sleep(self._faults.slow_close_ms / 1000.0)
                if dst.can_write_eof() and not dst.is_closing():
                    dst.write_eof()
                return
            if self._faults.blackhole:  # held back by latency until the blackhole began
                conn.poisoned = True
                self._bytes["dropped"] += len(data)
                continue
            rate = self._faults.bandwidth_bytes_per_s
            step = len(data) if rate is None else max(1, int(rate * BURST_S))
            for i in range(0, len(data), step):
                piece = data[i : i + step]
                if rate is not None:
                    pause = self._buckets[direction].take(len(piece), rate, self._loop.time())
                    if pause > 0:
                        await asyncio.sleep(pause)
                dst.write(piece)
                await dst.drain()
                self._bytes[direction] += len(piece)

    def __repr__(self) -> str:
        port = self._port or "-"
        faults = ", ".join(f"{k}={v!r}" for k, v in self._faults.changed().items())
        host, tport = self._target
        return (
            f"FaultProxy({self._host}:{port} -> {host}:{tport}, state={self._state}, "
            f"connections={len(self._conns)}, faults={{{faults}}})"
        )
