"""The frames between ``serve --workers N``'s parent (the hub) and its workers.

A frame is a 4-byte big-endian length and a msgpack body, one of the structs below (tagged).
Worker → hub: ``Hello``, ``Publish``, ``Ask``, ``Answer``, ``Watch``, ``Events``, ``Take``.
Hub → worker: ``Deliver``, ``Query``, ``Gathered``, ``Stream``, ``Events``, ``Took``.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

__all__ = [
    "Answer",
    "Ask",
    "Deliver",
    "Events",
    "Frame",
    "Gathered",
    "Hello",
    "MAX_FRAME",
    "Publish",
    "Query",
    "Stream",
    "Take",
    "Took",
    "Watch",
    "read_frame",
    "write_frame",
]

MAX_FRAME = 64 * 1024 * 1024  # a /metrics snapshot of a big config is a few MB at most
_LEN = struct.Struct(">I")


class Hello(msgspec.Struct, frozen=True, tag=True):
    worker: int
    pid: int


class Publish(msgspec.Struct, frozen=True, tag=True):
    """A record or command (``records.encode_message``) for every other worker."""

    message: bytes


class Deliver(msgspec.Struct, frozen=True, tag=True):
    message: bytes


class Ask(msgspec.Struct, frozen=True, tag=True):
    """Gather ``what`` ("metrics", "providers") from every worker."""

    id: int
    what: str


class Query(msgspec.Struct, frozen=True, tag=True):
    id: int
    what: str


class Answer(msgspec.Struct, frozen=True, tag=True):
    id: int
    data: bytes


class Gathered(msgspec.Struct, frozen=True, tag=True):
    id: int
    #: (worker, its answer) of every worker that answered in time
    answers: list[tuple[int, bytes]]
    missing: int


class Watch(msgspec.Struct, frozen=True, tag=True):
    """This worker has /api/events clients (True) or none left (False)."""

    on: bool


class Stream(msgspec.Struct, frozen=True, tag=True):
    """Forward your events to the hub (True) or stop (False)."""

    on: bool


class Events(msgspec.Struct, frozen=True, tag=True):
    """Event frames as ``/api/events`` sends them: (type, JSON object)."""

    items: list[tuple[str, bytes]]


class Take(msgspec.Struct, frozen=True, tag=True):
    """Rate-limit checks (``access.buckets`` encoding) against the hub's buckets."""

    id: int
    checks: bytes


class Took(msgspec.Struct, frozen=True, tag=True):
    id: int
    verdicts: bytes


Frame = (
    Hello | Publish | Deliver | Ask | Query | Answer | Gathered | Watch | Stream | Events | Take
    | Took
)  # fmt: skip

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Frame)


def write_frame(writer: asyncio.StreamWriter, frame: Frame) -> None:
    """Queued on the transport at once (never blocks); the peer reads it in order."""
    body = _encoder.encode(frame)
    writer.write(_LEN.pack(len(body)) + body)


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame; ``asyncio.IncompleteReadError`` at the end of the stream."""
    (n,) = _LEN.unpack(await reader.readexactly(4))
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes")
    frame: Frame = _decoder.decode(await reader.readexactly(n))
    return frame
