"""Token buckets and quota windows: the math, the checks, and the in-memory store.

A request passes a list of ``Check`` values, all or nothing: when one fails, none is charged
(a call refused by a per-method limit does not eat the key's quota). Two kinds:

- ``BUCKET``: ``rate`` tokens per second, at most ``capacity``; a call takes ``cost``. When
  short, ``retry_after_s`` is the time until enough tokens are back.
- ``WINDOW`` (a quota): at most ``capacity`` per window of ``rate`` seconds, windows aligned
  on multiples of their length since the Unix epoch (wall clock, so every node agrees on
  them); ``retry_after_s`` is the time to the next window.

The same rules run in Redis (``redis_store.py``, one Lua script); ``MemoryBuckets`` is the
store of one process, and the hub's for its workers. It forgets the least recently used keys
past ``max_keys`` (a forgotten bucket is full again: the forgiving side).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import msgspec

from lasso_rpc.clock import Clock

__all__ = [
    "BUCKET",
    "WINDOW",
    "Check",
    "MemoryBuckets",
    "PASS",
    "Verdict",
    "decode_checks",
    "decode_verdicts",
    "encode_checks",
    "encode_verdicts",
]

BUCKET = 0
WINDOW = 1


class Check(msgspec.Struct, frozen=True, array_like=True):
    key: str  # the bucket's identity ("k:acme", "ip:10.0.0.1", "k:acme:m0", "q:acme")
    kind: int  # BUCKET or WINDOW
    rate: float  # BUCKET: tokens per second; WINDOW: window length in seconds
    capacity: float  # BUCKET: burst; WINDOW: calls per window
    cost: int


class Verdict(msgspec.Struct, frozen=True, array_like=True):
    ok: bool
    retry_after_s: float = 0.0
    failed: int = -1  # index of the first check that refused


PASS = Verdict(True)

_checks_enc = msgspec.msgpack.Encoder()
_checks_dec = msgspec.msgpack.Decoder(list[list[Check]])
_verdicts_dec = msgspec.msgpack.Decoder(list[Verdict])


def encode_checks(sets: Sequence[Sequence[Check]]) -> bytes:
    return _checks_enc.encode(sets)


def decode_checks(data: bytes) -> list[list[Check]]:
    checks: list[list[Check]] = _checks_dec.decode(data)
    return checks


def encode_verdicts(verdicts: Sequence[Verdict]) -> bytes:
    return _checks_enc.encode(verdicts)


def decode_verdicts(data: bytes) -> list[Verdict]:
    verdicts: list[Verdict] = _verdicts_dec.decode(data)
    return verdicts


class MemoryBuckets:
    """Buckets of this process. ``take(checks)`` is synchronous and exact."""

    def __init__(self, clock: Clock, *, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max = max_keys
        #: key -> [tokens or count, last refill ms or window index]
        self._state: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, checks: Sequence[Check]) -> Verdict:
        now_ms = self._clock.now_ms()
        wall = self._clock.wall_s()
        state = self._state
        pending: list[tuple[list[float], float, float]] = []
        worst: Verdict | None = None
        for i, c in enumerate(checks):
            s = state.get(c.key)
            if c.kind == BUCKET:
                if s is None:
                    level, mark = c.capacity, now_ms
                else:
                    level = min(c.capacity, s[0] + (now_ms - s[1]) * c.rate / 1000.0)
                    mark = now_ms
                if level >= c.cost:
                    new = level - c.cost
                else:
                    wait = (
                        (min(c.cost, c.capacity) - level) / c.rate
                        if c.cost <= c.capacity
                        else math.inf
                    )
                    worst = _worse(worst, Verdict(False, wait, i))
                    new = level
            else:
                window = math.floor(wall / c.rate)
                used = s[0] if s is not None and s[1] == window else 0.0
                level, mark = used, float(window)
                if used + c.cost <= c.capacity:
                    new = used + c.cost
                else:
                    worst = _worse(worst, Verdict(False, (window + 1) * c.rate - wall, i))
                    new = used
            if s is None:
                s = state[c.key] = [level, mark]
            else:
                state.move_to_end(c.key)
                s[0], s[1] = level, mark
            pending.append((s, new, mark))
        if worst is not None:
            return worst
        for s, new, mark in pending:
            s[0], s[1] = new, mark
        while len(state) > self._max:
            state.popitem(last=False)
        return PASS

    def take_many(self, sets: Sequence[Sequence[Check]]) -> list[Verdict]:
        return [self.take(checks) for checks in sets]

    def __len__(self) -> int:
        return len(self._state)

    def __repr__(self) -> str:
        return f"MemoryBuckets(keys={len(self._state)})"


def _worse(a: Verdict | None, b: Verdict) -> Verdict:
    """The refusal that lasts longest (the client must wait for every check)."""
    if a is None or b.retry_after_s > a.retry_after_s:
        return b if a is None else Verdict(False, b.retry_after_s, a.failed)
    return a
