"""Group commit for remote bucket stores: one message per event-loop turn, one in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from lasso_rpc.access.buckets import Check, Verdict

__all__ = ["Batcher"]


class Batcher:
    """Group commit: the checks that arrive while a batch is on its way go in the next one.

    At most ``max_in_flight`` sends at once; a check arriving meanwhile waits for one to end and
    leaves with everything gathered since. Idle, a check leaves at the next loop turn; busy,
    batches grow with the load instead of the round trips (Redis calls cost ~200 µs of CPU in
    redis-py, whatever their size). What the sender has of its own (``more``: charges made
    locally, which nobody awaits) waits up to ``linger_s`` for company: sent as soon as it
    comes, back to back, it would cost a Redis call per round trip whatever the load. And
    two sends start at least ``spacing_s`` apart: idle, a check leaves at once; busy, the
    calls per second stay bounded and the batches grow (at most ``spacing_s`` of added wait).
    """

    def __init__(
        self,
        send: Callable[[list[Sequence[Check]]], Awaitable[list[Verdict]]],
        max_in_flight: int = 1,
        more: Callable[[], bool] = lambda: False,
        linger_s: float = 0.0,
        spacing_s: float = 0.0,
    ) -> None:
        self._send = send
        self._max = max_in_flight
        self._more = more  # the sender has something of its own to send (charges made locally)
        self._sets: list[Sequence[Check]] = []
        self._futures: list[asyncio.Future[Verdict]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._linger_s = linger_s
        self._spacing_s = spacing_s
        self._last_send = -1e9
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0

    async def take(self, checks: Sequence[Check]) -> Verdict:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Verdict] = loop.create_future()
        self._sets.append(checks)
        self._futures.append(fut)
        self.kick()
        return await fut

    def kick(self) -> None:
        """Send soon (at the next loop turn, or when the batch in flight ends)."""
        if not self._scheduled and len(self._tasks) < self._max:
            self._scheduled = True
            loop = asyncio.get_running_loop()
            wait = self._last_send + self._spacing_s - loop.time()
            if wait > 0:
                loop.call_later(wait, self._flush)
            else:
                loop.call_soon(self._flush)

    def kick_later(self) -> None:
        """Send within ``linger_s`` (or with the next checks, if sooner)."""
        if self._timer is None and not self._scheduled and len(self._tasks) < self._max:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.kick()

    def _flush(self) -> None:
        self._scheduled = False
        if self._timer is not None:  # what it waited for leaves now
            self._timer.cancel()
            self._timer = None
        if (not self._sets and not self._more()) or len(self._tasks) >= self._max:
            return
        sets, futures = self._sets, self._futures
        self._sets, self._futures = [], []
        loop = asyncio.get_running_loop()
        self._last_send = loop.time()
        task = loop.create_task(self._run(sets, futures))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._sets:  # what gathered meanwhile leaves now
            self.kick()
        elif self._more():
            self.kick_later()

    async def _run(
        self, sets: list[Sequence[Check]], futures: list[asyncio.Future[Verdict]]
    ) -> None:
        self.batches += 1
        try:
            verdicts = await self._send(sets)
        except BaseException as exc:
            for f in futures:
                if not f.done():
                    f.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("cancelled")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for f, v in zip(futures, verdicts, strict=True):
            if not f.done():
                f.set_result(v)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
