"""``HubLink``: a worker's end of its socketpair to the hub (``hub.py``); ``Peers`` for workers.

Besides publishing and receiving records (the ``Peers`` seam), it answers the hub's queries
with the answerers registered by ``on_query`` (this worker's metrics, its providers), asks for
everyone's (``gather``), checks rate limits against the hub's buckets (``take``), and carries
events for ``/api/events`` both ways (``views.ClusterEvents`` drives that part).

Losing the hub means the parent is gone: ``on_lost`` is called (the CLI stops the worker then:
a worker alone on a shared port would be a router that disagrees with itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Callable, Sequence

import msgspec

from lasso_rpc.access.buckets import Check, Verdict, decode_verdicts, encode_checks
from lasso_rpc.cluster.peers import PeerSink, PeerStatus
from lasso_rpc.cluster.records import Message, StateRecord, decode_message, encode_message
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
from lasso_rpc.errors import LassoError

__all__ = ["HubLink", "HubUnavailable"]

log = logging.getLogger("lasso_rpc.cluster")


class HubUnavailable(LassoError):
    """The hub did not answer (gone, or slower than the timeout)."""


class HubLink:
    backend = "hub"

    def __init__(
        self, sock: socket.socket, worker: int, *, on_lost: Callable[[], None] | None = None
    ) -> None:
        self._sock = sock
        self.worker = worker
        self._on_lost = on_lost
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._sink: PeerSink | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Frame]] = {}
        #: "ping" is answered by every worker: a gather of it completes once every worker has
        #: read everything the hub relayed before it (frames are ordered per connection).
        self._answerers: dict[str, Callable[[], bytes]] = {"ping": lambda: b""}
        #: Set by ``views.ClusterEvents``: the hub starts/stops our forwarding, events arrive.
        self.on_stream: Callable[[bool], None] | None = None
        self.on_events: Callable[[list[tuple[str, bytes]]], None] | None = None
        self.connected = False
        self.published = 0
        self.received = 0
        self.errors = 0

    # -- Peers ------------------------------------------------------------------------------

    async def start(self, sink: PeerSink) -> None:
        self._sink = sink
        if self._writer is not None:
            return
        reader, self._writer = await asyncio.open_connection(sock=self._sock)
        self.connected = True
        self._send(Hello(self.worker, os.getpid()))
        self._reader_task = asyncio.create_task(self._read(reader), name="hub-link")

    def publish(self, message: Message) -> None:
        self.published += 1
        self._send(Publish(encode_message(message)))

    def status(self) -> PeerStatus:
        return PeerStatus(self.backend, self.connected, self.published, self.received, self.errors)

    async def aclose(self) -> None:
        task, self._reader_task = self._reader_task, None
        self._on_lost = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.connected = False

    # -- requests to the hub -------------------------------------------------------------------

    def on_query(self, what: str, answer: Callable[[], bytes]) -> None:
        self._answerers[what] = answer

    async def gather(
        self, what: str, timeout_s: float = 3.0
    ) -> tuple[list[tuple[int, bytes]], int]:
        """Every worker's answer to ``what`` (this one's included), and how many missed it."""
        reply = await self._ask(Ask(0, what), timeout_s)
        assert isinstance(reply, Gathered)
        return reply.answers, reply.missing

    async def take(self, sets: Sequence[Sequence[Check]], timeout_s: float) -> list[Verdict]:
        """Rate-limit checks against the hub's buckets (``HubUnavailable`` when it is not there)."""
        reply = await self._ask(Take(0, encode_checks(sets)), timeout_s)
        assert isinstance(reply, Took)
        return decode_verdicts(reply.verdicts)

    def watch(self, on: bool) -> None:
        self._send(Watch(on))

    def send_events(self, items: list[tuple[str, bytes]]) -> None:
        self._send(Events(items))

    async def _ask(self, frame: Ask | Take, timeout_s: float) -> Frame:
        if not self.connected:
            raise HubUnavailable("no hub")
        rid = next(self._ids)
        frame = msgspec.structs.replace(frame, id=rid)
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            self._send(frame)
            async with asyncio.timeout(timeout_s):
                return await fut
        except TimeoutError as exc:
            self.errors += 1
            raise HubUnavailable(f"the hub did not answer within {timeout_s} s") from exc
        finally:
            self._waiting.pop(rid, None)

    # -- from the hub ----------------------------------------------------------------------------

    def _send(self, frame: Frame) -> None:
        w = self._writer
        if w is not None and not w.is_closing():
            write_frame(w, frame)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                self._dispatch(await read_frame(reader))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, msgspec.DecodeError):
            pass
        self.connected = False
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(HubUnavailable("the hub is gone"))
        if self._on_lost is not None:
            log.error("lost the connection to the parent process (hub); stopping this worker")
            self._on_lost()

    def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, (Took, Gathered)):
            fut = self._waiting.get(frame.id)
            if fut is not None and not fut.done():
                fut.set_result(frame)
        elif isinstance(frame, Deliver):
            self._deliver(frame.message)
        elif isinstance(frame, Query):
            answer = self._answerers.get(frame.what)
            try:
                data = answer() if answer is not None else b""
            except Exception:  # an answerer's bug must not kill the link
                log.exception("answering the hub's %s query failed", frame.what)
                data = b""
            self._send(Answer(frame.id, data))
        elif isinstance(frame, Events):
            if self.on_events is not None:
                self.on_events(frame.items)
        elif isinstance(frame, Stream) and self.on_stream is not None:
            self.on_stream(frame.on)

    def _deliver(self, raw: bytes) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            message = decode_message(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self.received += 1
        if isinstance(message, StateRecord):
            sink.apply(message)
        else:
            sink.run_command(message)

    def __repr__(self) -> str:
        return (
            f"HubLink(worker={self.worker}, connected={self.connected}, "
            f"published={self.published}, received={self.received})"
        )
