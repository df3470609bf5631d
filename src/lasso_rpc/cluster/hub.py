"""The hub: ``serve --workers N``'s parent process, the one place its workers meet.

Each worker gets one end of a socketpair the parent made before spawning it (no path on disk,
nothing to clean up, and the hub knows which worker each connection is). The hub:

- relays every record and command a worker publishes to the others, and keeps the newest
  record of each field, sent to a worker when it says hello (so a late worker starts current);
- gathers: a worker asking for "metrics" or "providers" gets every worker's answer (its own
  included) or, after ``gather_timeout_s``, those that came and how many did not;
- fans events out: while some worker has ``/api/events`` clients, every worker forwards its
  events here and the hub passes them to the workers that watch;
- holds the rate-limit buckets of the workers (``access.buckets.MemoryBuckets``), so a limit
  is one limit whichever worker a client's connection lands on.

The hub never touches a request itself: a worker's request path talks to it only for a
rate-limit check (when ``access`` is on) and never waits on it for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from lasso_rpc.access.buckets import MemoryBuckets, decode_checks, encode_verdicts
from lasso_rpc.clock import SYSTEM_CLOCK, Clock
from lasso_rpc.cluster.records import StateRecord, decode_message, encode_message, newer
from lasso_rpc.cluster.wire import (
    Answer,
    Ask,
    Deliver,
    Events,
    Frame,
    Gathered,
    Hello,
    Publish,
    Query,
    Stream,
    Take,
    Took,
    Watch,
    read_frame,
    write_frame,
)

__all__ = ["Hub"]

log = logging.getLogger("lasso_rpc.cluster.hub")


@dataclass(slots=True)
class _Conn:
    worker: int
    writer: asyncio.StreamWriter
    pid: int = 0
    watching: bool = False

    def send(self, frame: Frame) -> None:
        if not self.writer.is_closing():
            write_frame(self.writer, frame)


@dataclass(slots=True)
class _Gather:
    asker: int
    asker_id: int
    expected: set[int]
    answers: list[tuple[int, bytes]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Hub:
    """``await hub.serve(parent_ends)`` runs until cancelled."""

    def __init__(self, *, gather_timeout_s: float = 1.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.gather_timeout_s = gather_timeout_s
        self._clock = clock
        self._conns: dict[int, _Conn] = {}
        self._known: dict[str, StateRecord] = {}
        self._gathers: dict[int, _Gather] = {}
        self._ids = itertools.count(1)
        self._streaming = False
        self.buckets = MemoryBuckets(clock)
        self.relayed = 0

    async def serve(self, socks: Sequence[socket.socket]) -> None:
        async with asyncio.TaskGroup() as tg:
            for i, s in enumerate(socks):
                tg.create_task(self._serve_one(i, s), name=f"hub-worker-{i}")

    async def _serve_one(self, worker: int, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=sock)
        conn = self._conns[worker] = _Conn(worker, writer)
        try:
            while True:
                self._dispatch(conn, await read_frame(reader))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, msgspec.DecodeError):
            pass  # the worker is gone (the parent stops the others) or spoke nonsense
        finally:
            del self._conns[worker]
            for gid, g in list(self._gathers.items()):
                g.expected.discard(worker)
                if g.asker == worker or len(g.answers) >= len(g.expected):
                    self._end_gather(gid)
            self._update_streaming()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _dispatch(self, conn: _Conn, frame: Frame) -> None:
        if isinstance(frame, Take):
            verdicts = self.buckets.take_many(decode_checks(frame.checks))
            conn.send(Took(frame.id, encode_verdicts(verdicts)))
        elif isinstance(frame, Publish):
            self._relay(conn, frame.message)
        elif isinstance(frame, Events):
            for c in self._conns.values():
                if c.watching:
                    c.send(frame)
        elif isinstance(frame, Ask):
            self._start_gather(conn, frame)
        elif isinstance(frame, Answer):
            self._answer(conn, frame)
        elif isinstance(frame, Watch):
            conn.watching = frame.on
            self._update_streaming()
        elif isinstance(frame, Hello):
            conn.pid = frame.pid
            for rec in self._known.values():
                conn.send(Deliver(encode_message(rec)))
            if self._streaming:
                conn.send(Stream(True))

    def _relay(self, sender: _Conn, message: bytes) -> None:
        try:
            decoded = decode_message(message)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("worker %d published a malformed message", sender.worker)
            return
        if isinstance(decoded, StateRecord):
            if not newer(decoded, self._known.get(decoded.field)):
                return
            self._known[decoded.field] = decoded
        self.relayed += 1
        for c in self._conns.values():
            if c is not sender:
                c.send(Deliver(message))

    def _start_gather(self, asker: _Conn, ask: Ask) -> None:
        gid = next(self._ids)
        g = _Gather(asker.worker, ask.id, set(self._conns))
        self._gathers[gid] = g
        loop = asyncio.get_running_loop()
        g.timer = loop.call_later(self.gather_timeout_s, self._end_gather, gid)
        for c in self._conns.values():
            c.send(Query(gid, ask.what))

    def _answer(self, conn: _Conn, answer: Answer) -> None:
        g = self._gathers.get(answer.id)
        if g is None or conn.worker not in g.expected:
            return  # late: that gather ended without it
        g.answers.append((conn.worker, answer.data))
        if len(g.answers) >= len(g.expected):
            self._end_gather(answer.id)

    def _end_gather(self, gid: int) -> None:
        g = self._gathers.pop(gid, None)
        if g is None:
            return
        if g.timer is not None:
            g.timer.cancel()
        asker = self._conns.get(g.asker)
        if asker is not None:
            answered = {w for w, _ in g.answers}
            missing = len(self._conns.keys() - answered)
            asker.send(Gathered(g.asker_id, sorted(g.answers), missing))

    def _update_streaming(self) -> None:
        on = any(c.watching for c in self._conns.values())
        if on != self._streaming:
            self._streaming = on
            for c in self._conns.values():
                c.send(Stream(on))

    def __repr__(self) -> str:
        return (
            f"Hub(workers={sorted(self._conns)}, known={len(self._known)}, "
            f"streaming={self._streaming}, relayed={self.relayed})"
        )
