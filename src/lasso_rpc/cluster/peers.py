"""The one seam of the coherence layer: ``Peers``, the other processes sharing this state.

A backend delivers what this process publishes to every other process, and what they publish
to this process's ``PeerSink`` (``sync.StateSync``). Delivery is at most once and may be late:
a backend that lost messages (a disconnect) pushes ``sink.records()`` and reads the others'
when it is back, and the newest record wins, so every process still converges.

``publish`` never blocks and never raises: shared state must not slow a request or fail it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lasso_rpc.cluster.records import Command, Message, StateRecord

__all__ = ["LoopbackNetwork", "NoPeers", "PeerSink", "PeerStatus", "Peers"]


class PeerSink(Protocol):
    """What a backend hands the others' messages to."""

    def apply(self, record: StateRecord, /) -> None: ...

    def run_command(self, command: Command, /) -> None: ...

    def records(self) -> list[StateRecord]:
        """Every record this process knows (pushed after a reconnect)."""
        ...


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """For metrics and ``/api/providers``: is the backend reachable, and what went through."""

    backend: str  # "memory" | "hub" | "redis"
    connected: bool
    published: int = 0
    received: int = 0
    errors: int = 0  # failed or timed-out operations
    reconnects: int = 0  # times the backend came back after being down


class Peers(Protocol):
    backend: str

    async def start(self, sink: PeerSink, /) -> None:
        """Connect (or start trying to) and deliver the others' messages to ``sink``."""
        ...

    def publish(self, message: Message, /) -> None: ...

    def status(self) -> PeerStatus: ...

    async def aclose(self) -> None: ...


class NoPeers:
    """One process alone: nothing to tell anyone."""

    backend = "memory"

    async def start(self, sink: PeerSink) -> None:
        return None

    def publish(self, message: Message) -> None:
        return None

    def status(self) -> PeerStatus:
        return PeerStatus(self.backend, True)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return "NoPeers()"


class LoopbackNetwork:
    """Several ``Peers`` in one process, delivering at once: tests of the sync logic.

    ``network.peers()`` makes one member; ``partition(member)`` cuts it off (what it publishes
    meanwhile is lost, as on a real network) until ``heal(member)``, which resynchronises it.
    """

    def __init__(self) -> None:
        self._members: list[_LoopbackPeers] = []

    def peers(self) -> _LoopbackPeers:
        m = _LoopbackPeers(self)
        self._members.append(m)
        return m

    def deliver(self, sender: _LoopbackPeers, message: Message) -> None:
        if sender.cut:
            return
        for m in self._members:
            if m is not sender and not m.cut and m.sink is not None:
                m.received += 1
                _hand(m.sink, message)

    def partition(self, member: _LoopbackPeers) -> None:
        member.cut = True

    def heal(self, member: _LoopbackPeers) -> None:
        member.cut = False
        assert member.sink is not None
        for other in self._members:
            if other is not member and other.sink is not None:
                for rec in other.sink.records():
                    _hand(member.sink, rec)
                for rec in member.sink.records():
                    _hand(other.sink, rec)


def _hand(sink: PeerSink, message: Message) -> None:
    if isinstance(message, StateRecord):
        sink.apply(message)
    else:
        sink.run_command(message)


class _LoopbackPeers:
    backend = "loopback"

    def __init__(self, network: LoopbackNetwork) -> None:
        self._network = network
        self.sink: PeerSink | None = None
        self.cut = False
        self.published = 0
        self.received = 0

    async def start(self, sink: PeerSink) -> None:
        self.sink = sink

    def publish(self, message: Message) -> None:
        self.published += 1
        self._network.deliver(self, message)

    def status(self) -> PeerStatus:
        return PeerStatus(self.backend, not self.cut, self.published, self.received)

    async def aclose(self) -> None:
        self.sink = None

    def __repr__(self) -> str:
        return f"LoopbackPeers(cut={self.cut}, published={self.published})"
