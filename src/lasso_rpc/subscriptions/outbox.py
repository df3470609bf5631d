"""A bounded send queue for one client socket, drained by one writer task.

Replies and notifications share it, so a subscription id always leaves before the first
notification of that subscription. ``push`` never blocks: past ``max_messages`` or ``max_bytes``
it calls ``on_overflow`` once and drops everything queued; the owner closes the socket. A slow
client therefore costs at most the bounds, never unbounded memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["Outbox"]


class Outbox:
    __slots__ = ("_bytes", "_frames", "_max_bytes", "_max_messages", "_on_overflow", "_wake")

    def __init__(
        self, *, max_messages: int, max_bytes: int, on_overflow: Callable[[], None]
    ) -> None:
        self._frames: deque[bytes] = deque()
        self._bytes = 0
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._on_overflow: Callable[[], None] | None = on_overflow
        self._wake = asyncio.Event()

    @property
    def overflowed(self) -> bool:
        return self._on_overflow is None

    def push(self, frame: bytes) -> bool:
        if self._on_overflow is None:
            return False
        if len(self._frames) >= self._max_messages or self._bytes + len(frame) > self._max_bytes:
            callback, self._on_overflow = self._on_overflow, None
            self._frames.clear()
            self._bytes = 0
            callback()
            return False
        self._frames.append(frame)
        self._bytes += len(frame)
        self._wake.set()
        return True

    async def drain(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        """Send frames in order until cancelled (or until ``send`` raises)."""
        frames = self._frames
        while True:
            while not frames:
                self._wake.clear()
                await self._wake.wait()
            frame = frames.popleft()
            self._bytes -= len(frame)
            await send(frame)

    def __len__(self) -> int:
        return len(self._frames)

    def __repr__(self) -> str:
        return (
            f"Outbox(queued={len(self._frames)}, bytes={self._bytes}, overflowed={self.overflowed})"
        )
