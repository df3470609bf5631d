"""A subscriber's feed judged against the chain's truth: blocks missed, stalls, uptime.

Counting gaps only between two deliveries misses the worst failure: a feed that stops (after a
failover, or never starts) delivers nothing, so it has no "between". Here every block the chain
mined while a client was subscribed is expected, whatever the client got:

- ``ChainTruth`` records when each block number first existed (a mock chain's listener: exact;
  or a poll of a node's ``eth_blockNumber``, bypassing the router: within the poll interval);
- ``FeedLog`` is what one client received: the first time it held each new highest number, and
  the ranges of numbers it got;
- ``judge_feed`` turns both into ``FeedFigures``: blocks expected and missed, the longest time
  the client's view lagged the chain (``max_stall_s``), how far behind it was at the end, and
  its uptime from blocks arriving (the share of the time its newest block was at most
  ``late_after_s`` behind the chain).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson

__all__ = ["ChainTruth", "FeedFigures", "FeedLog", "judge_feed", "poll_heads"]

#: A block counts as late (the client's feed "down") once it is this much older than the
#: client's newest block; a failover that back-fills within it costs no uptime.
LATE_AFTER_S = 1.0
#: Blocks mined this close to the end are not expected yet (still in flight to the client).
END_GRACE_S = 1.0
#: Every block mined after the subscription was confirmed is owed, from that very moment (the
#: router owes a client every block after its head at the confirmation, even while its upstream
#: subscription is still on its way). Only a polled truth's own doubt widens the start (below).


class ChainTruth:
    """When each block number first existed (``time.monotonic()``), in number order.

    ``doubt_s``: how much earlier than its time a block may have been mined. Zero for a chain's
    listener; for a poll, the longest span from sending one poll to reading the next answer (a
    block first seen in an answer was mined after the previous poll was sent), so a block seen
    just after a confirmation is owed only when it surely came after it.
    """

    __slots__ = ("doubt_s", "mined", "source", "top")

    def __init__(self, source: str) -> None:
        self.source = source  # "chain" (exact) | "poll" (a node polled directly)
        self.mined: dict[int, float] = {}
        self.top: int | None = None
        self.doubt_s = 0.0

    def saw(self, number: int, at: float) -> None:
        """Block ``number`` exists at ``at`` (so does every lower one not seen before)."""
        top = self.top
        if top is not None and number <= top:
            return  # known (a reorg re-mines a number: the number existed already)
        if top is not None:
            for n in range(top + 1, number):  # a poll skipped them: they exist by now
                self.mined[n] = at
        self.mined[number] = at
        self.top = number

    def __repr__(self) -> str:
        return f"ChainTruth({self.source}, blocks={len(self.mined)}, head={self.top})"


async def poll_heads(truth: ChainTruth, url: str, *, interval_s: float = 0.2) -> None:
    """Follow a node's head with ``eth_blockNumber`` (until cancelled); errors are skipped."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        answered: float | None = None  # when the last answered poll was sent
        while True:
            sent = time.monotonic()
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
                async with asyncio.timeout(2.0):
                    async with session.post(url, data=body, headers=headers) as r:
                        reply = orjson.loads(await r.read())
                result = reply.get("result") if isinstance(reply, dict) else None
                if isinstance(result, str):
                    at = time.monotonic()
                    if answered is not None:
                        truth.doubt_s = max(truth.doubt_s, at - answered)
                    answered = sent
                    truth.saw(int(result, 16), at)
            await asyncio.sleep(interval_s)


class FeedLog:
    """What one client received: new highest numbers with their times, and number ranges."""

    __slots__ = ("first_ack", "first_try", "high_n", "high_t", "ranges")

    def __init__(self) -> None:
        self.first_try: float | None = None  # the client first asked for a subscription
        self.first_ack: float | None = None  # its first subscription was confirmed
        self.high_n = array("q")
        self.high_t = array("d")
        self.ranges: list[list[int]] = []  # [lo, hi] of numbers received, in arrival order

    def trying(self, at: float) -> None:
        if self.first_try is None:
            self.first_try = at

    def subscribed(self, at: float) -> None:
        if self.first_ack is None:
            self.first_ack = at

    def got(self, number: int, at: float) -> None:
        if not self.high_n or number > self.high_n[-1]:
            self.high_n.append(number)
            self.high_t.append(at)
        last = self.ranges[-1] if self.ranges else None
        if last is not None and last[0] <= number <= last[1] + 1:
            last[1] = max(last[1], number)
        elif not any(lo <= number <= hi for lo, hi in self.ranges):
            self.ranges.append([number, number])

    def has(self, number: int) -> bool:
        return any(lo <= number <= hi for lo, hi in self.ranges)


@dataclass(frozen=True, slots=True)
class FeedFigures:
    expected: int  # blocks mined while subscribed (but within the start and end graces)
    missed: int  # ... that never arrived
    max_stall_s: float  # longest time a mined block waited for the client (or the end)
    behind_s: float  # at the end: how long the chain had a block the client lacked
    uptime: float  # share of the subscribed time with no block later than late_after_s
    window_s: float


def judge_feed(
    log: FeedLog,
    mined: Mapping[int, float],
    end: float,
    *,
    only: Callable[[int], bool] | None = None,
    late_after_s: float = LATE_AFTER_S,
    grace_s: float = END_GRACE_S,
    doubt_s: float = 0.0,
) -> FeedFigures | None:
    """The client's figures against ``mined`` (number → first seen), up to ``end``; None when
    it never even tried. ``only`` restricts the expected blocks (logs: blocks with a match).
    Owed: blocks mined after its first confirmed subscription (or its first try, when no
    subscription was ever confirmed: it missed everything) up to ``grace_s`` before the end
    (the stall and uptime look at every block up to the end); ``doubt_s`` is the truth's
    (``ChainTruth.doubt_s``)."""
    start = log.first_ack if log.first_ack is not None else log.first_try
    if start is None:
        return None
    window = max(0.0, end - start)
    blocks: Iterable[tuple[int, float]] = sorted(mined.items())
    owed = start + doubt_s
    due = [(n, t) for n, t in blocks if owed <= t <= end and (only is None or only(n))]
    expected = [n for n, t in due if t <= end - grace_s]
    missed = sum(1 for n in expected if not log.has(n))
    highs = log.high_n
    max_stall = stalled = behind = 0.0
    covered = start
    for n, t in due:
        i = bisect.bisect_left(highs, n)
        got = log.high_t[i] if i < len(highs) else None
        until = end if got is None else min(end, max(got, t))
        max_stall = max(max_stall, until - t)
        if got is None:
            behind = max(behind, end - t)
        lo = max(t + late_after_s, covered)
        if until > lo:
            stalled += until - lo
            covered = until
    uptime = 1.0 - stalled / window if window > 0 else 1.0
    return FeedFigures(
        expected=len(expected),
        missed=missed,
        max_stall_s=round(max_stall, 3),
        behind_s=round(behind, 3),
        uptime=max(0.0, min(1.0, uptime)),
        window_s=round(window, 3),
    )
