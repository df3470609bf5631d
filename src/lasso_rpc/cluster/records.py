"""The values that cross processes: provider state records, commands, and their wire codec.

A record is the whole state of one aspect of one provider (``breaker``, ``cordon`` or
``eject``), so applying the newest record is enough: no ordering of deltas to keep. ``newer``
orders two records of the same field by wall-clock time, then origin (a total order, so every
process picks the same winner).
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Literal

import msgspec

__all__ = [
    "Aspect",
    "Command",
    "Message",
    "StateRecord",
    "decode_message",
    "encode_message",
    "new_node_id",
    "newer",
    "target_of",
]

Aspect = Literal["breaker", "cordon", "eject"]


def target_of(profile: str, chain: str, provider: str) -> str:
    return f"{profile}/{chain}/{provider}"


class StateRecord(msgspec.Struct, frozen=True, kw_only=True, tag="state"):
    """One aspect of one provider as its origin saw it at ``ts``."""

    aspect: Aspect
    target: str  # profile/chain/provider
    #: breaker: "open" | "closed"; cordon: "on" | "off"; eject: "ejected" | "restored"
    state: str
    ts: float  # wall-clock seconds at the origin
    origin: str  # node id of the process where it changed
    until: float | None = None  # wall-clock seconds: open or ejected until (None: no deadline)
    held: bool = False  # breaker held open by an operator
    opens: int = 0  # breaker opens since it last closed (its backoff)
    reason: str = ""

    @property
    def field(self) -> str:
        return f"{self.aspect}:{self.target}"


class Command(msgspec.Struct, frozen=True, kw_only=True, tag="command"):
    """A control action every process runs (today: ``reload``, from the control API)."""

    name: Literal["reload"]
    origin: str
    ts: float


Message = StateRecord | Command

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)


def encode_message(m: Message) -> bytes:
    """JSON: readable in ``redis-cli`` and small enough for the few messages there are."""
    return _encoder.encode(m)


def decode_message(data: bytes | str) -> Message:
    """Raises ``msgspec.DecodeError`` / ``ValidationError`` for a malformed message."""
    message: Message = _decoder.decode(data)
    return message


def newer(a: StateRecord, b: StateRecord | None) -> bool:
    """``a`` wins over ``b`` (None: nothing known yet)."""
    return b is None or (a.ts, a.origin) > (b.ts, b.origin)


def new_node_id() -> str:
    """This process in records and logs: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
