"""Buckets in Redis, shared by every node: one atomic Lua script per event-loop turn.

Far from its limit, a large limit is spent locally: each answer from Redis tells the node how
much room a bucket has left, and the node may then pass calls on its own, up to a slice of
that room (``SLICE`` of what lies above a reserve of ``RESERVE`` of the limit), sending the
charges behind them within ``CHARGE_LINGER_S`` (Redis applies them whatever the level).
Calls near the limit, and every call of a limit under ``LOCAL_MIN``, wait for Redis's
verdict: small limits and quotas stay exact. A node never has more than one slice unknown
to Redis, so the reserve covers two nodes; past that, a limit may be overrun by a slice per
further node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from lasso_rpc.access.batcher import Batcher
from lasso_rpc.access.buckets import Check, Verdict
from lasso_rpc.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from lasso_rpc.cluster.redis_guard import RedisGuard

__all__ = ["LOCAL_MIN", "RESERVE", "SLICE", "TAKE_SCRIPT", "RedisStore"]

#: limits (burst or quota) from this size up may be spent locally, away from their end
LOCAL_MIN = 1000.0
#: the share of a limit kept for calls checked in Redis
RESERVE = 0.25
#: the share of the room above the reserve one node may spend before Redis hears of it
SLICE = 0.125
#: how long an answer's room is believed (other nodes spend too)
ROOM_TTL_MS = 1000.0
#: how long charges made locally may wait for other things to send (at most)
CHARGE_LINGER_S = 0.01
#: two Lua calls of a node start at least this far apart (busy: fewer, larger calls)
CALL_SPACING_S = 0.001

#: ARGV: prefix, then the requests as MessagePack: [[mode (0 check, 1 charge whatever the
#: level), [[key, kind, rate, capacity, cost], ...]], ...] (thousands of arguments cost
#: redis-py ~1 µs each; one blob costs nothing). Returns MessagePack [[ok, retry_after (-1:
#: never), failed, [room of each check after it]], ...]. Redis's own clock is the time (every
#: node agrees); a window's key holds its index.
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))  -- tostring keeps 14 digits
local prefix = ARGV[1]
local out = {}
for _, req in ipairs(cmsgpack.unpack(ARGV[2])) do
  local force = req[1] == 1
  local checks = {}
  local ok, wait, failed = 1, 0, -1
  for j, a in ipairs(req[2]) do
    local key, kind, rate, cap, cost = prefix .. a[1], a[2], a[3], a[4], a[5]
    local c = {key = key, kind = kind, rate = rate, cap = cap, cost = cost}
    if kind == 0 then
      local v = redis.call('HMGET', key, 'v', 't')
      local level = cap
      if v[1] then
        level = math.min(cap, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * rate)
      end
      c.level = level
      c.room = level
      if level < cost and not force then
        local w = -1
        if cost <= cap then w = (cost - level) / rate end
        if failed < 0 then failed = j - 1 end
        ok = 0
        if w < 0 or w > wait then wait = w end
      end
    else
      local window = math.floor(now / rate)
      c.wkey = key .. ':' .. window
      local used = tonumber(redis.call('GET', c.wkey) or '0')
      c.expire = math.ceil((window + 1) * rate - now) + 1
      c.room = cap - used
      if used + cost > cap and not force then
        if failed < 0 then failed = j - 1 end
        ok = 0
        local w = (window + 1) * rate - now
        if wait >= 0 and w > wait then wait = w end
      end
    end
    checks[j] = c
  end
  local rooms = {}
  for j, c in ipairs(checks) do
    if ok == 1 then
      c.room = c.room - c.cost
      if c.kind == 0 then
        redis.call('HSET', c.key, 'v', tostring(c.level - c.cost), 't', stamp)
        redis.call('PEXPIRE', c.key, math.ceil(c.cap / c.rate * 1000) + 1000)
      else
        redis.call('INCRBY', c.wkey, c.cost)
        redis.call('EXPIRE', c.wkey, c.expire)
      end
    end
    rooms[j] = c.room
  end
  out[#out + 1] = {ok, wait, failed, rooms}
end
return cmsgpack.pack(out)
"""


class _Row(msgspec.Struct, array_like=True):
    ok: int
    wait: float
    failed: int
    rooms: list[float]


_encode = msgspec.msgpack.Encoder().encode
_decode_rows = msgspec.msgpack.Decoder(list[_Row]).decode


class _Room:
    """What this node may still spend of one bucket without asking Redis."""

    __slots__ = ("check", "left", "pending", "until_ms")

    def __init__(self, check: Check) -> None:
        self.check = check  # a check of this bucket (its key, kind, rate and capacity)
        self.left = 0.0  # of this slice
        self.pending = 0  # charged here, not sent yet
        self.until_ms = 0.0


class RedisStore:
    """Buckets in Redis, shared by every node: one atomic script per loop turn."""

    kind = "redis"

    def __init__(self, guard: RedisGuard, prefix: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._guard = guard
        self._clock = clock
        self._prefix = f"{prefix}:rl:"
        self._script: Any = None
        self._rooms: dict[str, _Room] = {}
        self._owed: dict[str, _Room] = {}  # rooms with pending charges
        self._batcher = Batcher(self._send, more=lambda: bool(self._owed), linger_s=CHARGE_LINGER_S)
        #: calls passed here (spent locally) and calls Redis answered
        self.local_passes = 0
        self.remote_checks = 0

    async def take(self, checks: Sequence[Check]) -> Verdict:
        if self._spend_locally(checks):
            self.local_passes += 1
            return _PASS
        self.remote_checks += 1
        return await self._batcher.take(checks)

    def _spend_locally(self, checks: Sequence[Check]) -> bool:
        rooms = self._rooms
        now = -1.0
        for c in checks:
            room = rooms.get(c.key)
            if room is None or room.left < c.cost:
                return False
            if now < 0:
                now = self._clock.now_ms()
            if now > room.until_ms:
                return False
        for c in checks:
            room = rooms[c.key]
            room.left -= c.cost
            room.pending += c.cost
            self._owed[c.key] = room
        self._batcher.kick_later()
        return True

    async def _send(self, sets: list[Sequence[Check]]) -> list[Verdict]:
        if self._script is None:
            self._script = self._guard.client.register_script(TAKE_SCRIPT)
        owed = list(self._owed.values())
        self._owed = {}
        reqs: list[tuple[int, Sequence[Check]]] = []
        if owed:  # charges made here: Redis applies them whatever the level
            charges = [
                Check(r.check.key, r.check.kind, r.check.rate, r.check.capacity, r.pending)
                for r in owed
            ]
            for room in owed:
                room.pending = 0
            reqs.append((1, charges))
        reqs.extend((0, checks) for checks in sets)
        args = (self._prefix, _encode(reqs))
        script = self._script
        try:
            blob = await self._guard.call(lambda r: script(keys=[], args=args, client=r))
        except BaseException:
            self._rooms.clear()  # Redis is not answering: every call asks (and the gate decides)
            self._owed.clear()
            raise
        rows = _decode_rows(blob)
        if owed:
            self._learn(reqs[0][1], rows[0].rooms)
            rows = rows[1:]
        out: list[Verdict] = []
        for checks, row in zip(sets, rows, strict=True):
            wait = float("inf") if row.wait < 0 else row.wait
            out.append(Verdict(bool(row.ok), wait, row.failed))
            self._learn(checks, row.rooms)
        return out

    def _learn(self, checks: Sequence[Check], rooms: list[float]) -> None:
        """Redis said how much room these buckets have: the slice this node may spend alone."""
        until = self._clock.now_ms() + ROOM_TTL_MS
        for c, left in zip(checks, rooms, strict=True):
            if c.capacity < LOCAL_MIN:
                continue
            room = self._rooms.get(c.key)
            if room is None:
                room = self._rooms[c.key] = _Room(c)
            # charges made since this batch left are not in Redis's figure yet
            above = left - room.pending - RESERVE * c.capacity
            room.left = max(0.0, above * SLICE) - room.pending
            room.until_ms = until
        if len(self._rooms) > 10_000:  # bounded: forget the oldest
            for key in list(self._rooms)[:1000]:
                if key not in self._owed:
                    del self._rooms[key]

    async def aclose(self) -> None:
        await self._batcher.aclose()


_PASS = Verdict(True)
