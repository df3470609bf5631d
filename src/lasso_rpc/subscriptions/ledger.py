"""What a subscription has delivered, and the verdict on each new item. Pure: no I/O, no time.

``HeadLedger`` keeps the last delivered number and a window of number → hash:

==========  ==================================================================================
verdict     when (``n`` = the head's number, ``last`` = the last delivered number)
==========  ==================================================================================
FIRST       nothing delivered yet: deliver
NEXT        ``n == last + 1`` and its parent is our block ``last`` (or we do not know it)
GAP         ``n > last + 1``: back-fill ``last+1 .. n-1`` first
FORK        ``n == last + 1`` but its parent is not our block ``last``: a reorg happened while
            we were not looking; fetch the new canonical blocks back to a common ancestor
DUPLICATE   ``n <= last`` with the hash we delivered: drop
REORG       ``n <= last`` with another hash than we delivered: deliver (new canonical block)
STALE       ``n <= last`` below the window, or a number we never delivered: drop
==========  ==================================================================================

``LogLedger`` dedupes logs by ``(blockHash, logIndex, removed)`` in a bounded window and keeps
``covered``: every matching log of blocks up to that number has been delivered.

A new feed starts after a block it never delivered (``start_after(n)``: the router's head when
its first client was confirmed): ``n`` then counts as delivered with no hash known, so ``n + 1``
is NEXT, a higher number a GAP to back-fill, and ``n`` or lower is owed to no one (STALE for
heads; for logs, ``owed`` says no).
"""

from __future__ import annotations

from collections import deque
from enum import Enum

from lasso_rpc.subscriptions.frames import Head, LogEntry

__all__ = ["HeadLedger", "LogLedger", "Verdict"]


class Verdict(Enum):
    FIRST = "first"
    NEXT = "next"
    GAP = "gap"
    FORK = "fork"
    DUPLICATE = "duplicate"
    REORG = "reorg"
    STALE = "stale"


class HeadLedger:
    __slots__ = ("_hashes", "_window", "last")

    def __init__(self, window: int = 256) -> None:
        self._window = max(2, window)
        self._hashes: dict[int, str] = {}  # ascending insertion order
        self.last: int | None = None

    @property
    def low(self) -> int | None:
        """The oldest number still in the window."""
        return next(iter(self._hashes), None)

    def hash_at(self, number: int) -> str | None:
        return self._hashes.get(number)

    def start_after(self, number: int) -> None:
        """Nothing delivered yet: owe only what comes after ``number`` (else a no-op)."""
        if self.last is None:
            self.last = number

    def verdict(self, head: Head) -> Verdict:
        last = self.last
        if last is None:
            return Verdict.FIRST
        n = head.number
        if n <= last:
            known = self._hashes.get(n)
            if known is None:
                return Verdict.STALE
            return Verdict.DUPLICATE if known == head.hash else Verdict.REORG
        if n > last + 1:
            return Verdict.GAP
        parent = self._hashes.get(last)
        if parent is not None and head.parent_hash and head.parent_hash != parent:
            return Verdict.FORK
        return Verdict.NEXT

    def record(self, head: Head) -> None:
        """``head`` was delivered: it is now the tip (a lower number drops what was above it)."""
        n = head.number
        hashes = self._hashes
        if self.last is not None and n <= self.last:
            for k in [k for k in hashes if k > n]:
                del hashes[k]
        hashes[n] = head.hash
        self.last = n
        while len(hashes) > self._window:
            del hashes[next(iter(hashes))]

    def __repr__(self) -> str:
        return f"HeadLedger(last={self.last}, window={len(self._hashes)})"


class LogLedger:
    __slots__ = ("_floor", "_order", "_seen", "covered")

    def __init__(self, window: int = 4096) -> None:
        self._order: deque[tuple[str, int, bool]] = deque(maxlen=max(16, window))
        self._seen: set[tuple[str, int, bool]] = set()
        self.covered: int | None = None
        self._floor: int | None = None

    def start_after(self, number: int) -> None:
        """Nothing covered yet: owe only the logs of blocks after ``number`` (else a no-op)."""
        if self.covered is None:
            self.covered = self._floor = number

    def owed(self, log: LogEntry) -> bool:
        """False for a log of a block at or before the start (no client is owed it)."""
        return self._floor is None or log.block_number > self._floor

    def first_time(self, log: LogEntry) -> bool:
        """True (and remembered) the first time this log is seen within the window."""
        key = log.key
        if key in self._seen:
            return False
        order = self._order
        if len(order) == order.maxlen:
            self._seen.discard(order[0])
        order.append(key)
        self._seen.add(key)
        return True

    def advance(self, number: int) -> None:
        if self.covered is None or number > self.covered:
            self.covered = number

    def __repr__(self) -> str:
        return f"LogLedger(covered={self.covered}, window={len(self._order)})"
