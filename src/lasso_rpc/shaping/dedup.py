"""In-flight dedup: identical reads running at the same time share one upstream call.

The first caller of a key (the *leader*) runs the call itself, between ``begin`` and ``end``;
callers of the same key arriving while it runs (*followers*) wait in ``follow`` for its outcome
instead of calling upstream. Each follower keeps its own deadline (``DeadlineExceeded`` when the
shared call outlives it) and its own id (the server puts the id around the shared result). The
leader's errors reach its followers, except two that say nothing about the request: the
leader's cancellation (its client went away) and the leader's own deadline (a follower that came
later has time left): ``follow`` then returns None and the follower tries again, as a leader or
behind another one. No task is started per call: the leader runs inline in its own request, so
the path without followers costs a dict lookup, an insert and a delete.
"""

from __future__ import annotations

import asyncio

from lasso_rpc.clock import Clock
from lasso_rpc.errors import DeadlineExceeded
from lasso_rpc.resilience.call import CallOutcome

__all__ = ["RETRY", "InFlight", "Result", "Retry", "Waiters"]


class Retry:
    """Result marker: the leader gave up for reasons of its own; try again."""

    def __repr__(self) -> str:
        return "RETRY"


RETRY = Retry()
Result = CallOutcome | BaseException | Retry
Waiters = list["asyncio.Future[Result]"]


class InFlight:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: key -> the followers of the call in flight (the leader may use it directly).
        self.flights: dict[bytes, Waiters] = {}
        self.leaders = 0
        self.followers = 0

    def __len__(self) -> int:
        return len(self.flights)

    def waiters(self, key: bytes) -> Waiters | None:
        """The followers' list of the call in flight for ``key``, or None (nobody leads)."""
        return self.flights.get(key)

    def begin(self, key: bytes) -> Waiters:
        waiters: Waiters = []
        self.flights[key] = waiters
        self.leaders += 1
        return waiters

    def end(self, key: bytes, waiters: Waiters, result: Result) -> None:
        """The leader is done: ``result`` is its outcome, its error, or ``RETRY``."""
        if self.flights.get(key) is waiters:
            del self.flights[key]
        for fut in waiters:
            if not fut.done():
                fut.set_result(result)

    async def follow(self, waiters: Waiters, deadline_ms: float) -> CallOutcome | None:
        """The leader's outcome (its error raised), or None: try again."""
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        self.followers += 1
        remaining_s = (deadline_ms - self._clock.now_ms()) / 1000.0
        try:
            async with asyncio.timeout(max(remaining_s, 0.0)):
                result = await fut
        except TimeoutError:
            raise DeadlineExceeded(
                "request deadline exceeded while waiting for an identical request in flight"
            ) from None
        if isinstance(result, Retry):
            return None
        if isinstance(result, BaseException):
            raise result
        return result

    def __repr__(self) -> str:
        return (
            f"InFlight(in_flight={len(self.flights)}, leaders={self.leaders},"
            f" followers={self.followers})"
        )
