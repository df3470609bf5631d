"""Where buckets live: this process, the workers' hub, or Redis; one small ``BucketStore``.

``take_many`` checks several requests' check lists at once; the remote stores collect the
checks of one event-loop turn and send them in one message (one Redis round trip, one Lua
call, for every request that arrived together), so the cost per request falls with load.
A remote store raises ``StateUnavailable``/``HubUnavailable`` (``LassoError``s) when it cannot
answer: the gate decides what that means (``access.on_state_down``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lasso_rpc.access.buckets import Check, MemoryBuckets, Verdict

if TYPE_CHECKING:
    from lasso_rpc.cluster.hub_link import HubLink
    from lasso_rpc.cluster.redis_guard import RedisGuard

__all__ = ["BucketStore", "HubStore", "LocalStore", "RedisStore", "TAKE_SCRIPT"]


class BucketStore(Protocol):
    kind: str

    async def take(self, checks: Sequence[Check], /) -> Verdict: ...

    async def aclose(self) -> None: ...


class LocalStore:
    """This process's buckets (one process, or a node whose limits are its own)."""

    kind = "memory"

    def __init__(self, buckets: MemoryBuckets) -> None:
        self.buckets = buckets

    async def take(self, checks: Sequence[Check]) -> Verdict:
        return self.buckets.take(checks)

    async def aclose(self) -> None:
        return None


class _Batcher:
    """Group commit: the checks that arrive while a batch is on its way go in the next one.

    At most ``max_in_flight`` sends at once; a check arriving meanwhile waits for one to end and
    leaves with everything gathered since. Idle, a check leaves at the next loop turn; busy,
    batches grow with the load instead of the round trips (Redis calls cost ~200 µs of CPU in
    redis-py, whatever their size).
    """

    def __init__(
        self,
        send: Callable[[list[Sequence[Check]]], Awaitable[list[Verdict]]],
        max_in_flight: int = 1,
    ) -> None:
        self._send = send
        self._max = max_in_flight
        self._sets: list[Sequence[Check]] = []
        self._futures: list[asyncio.Future[Verdict]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self.batches = 0

    async def take(self, checks: Sequence[Check]) -> Verdict:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Verdict] = loop.create_future()
        self._sets.append(checks)
        self._futures.append(fut)
        if not self._scheduled and len(self._tasks) < self._max:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        self._scheduled = False
        if not self._sets or len(self._tasks) >= self._max:
            return
        sets, futures = self._sets, self._futures
        self._sets, self._futures = [], []
        task = asyncio.get_running_loop().create_task(self._run(sets, futures))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._sets and not self._scheduled:  # what gathered meanwhile leaves now
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

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
        for t in list(self._tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t


class HubStore:
    """The hub's buckets, shared by every worker of ``serve --workers N``."""

    kind = "hub"

    def __init__(self, link: HubLink, timeout_s: float = 0.05) -> None:
        self._link = link
        self._timeout_s = timeout_s
        self._batcher = _Batcher(lambda sets: link.take(sets, self._timeout_s))

    async def take(self, checks: Sequence[Check]) -> Verdict:
        return await self._batcher.take(checks)

    async def aclose(self) -> None:
        await self._batcher.aclose()


#: ARGV: prefix, then per request: n, then n x (key, kind, rate, capacity, cost).
#: Returns per request {ok, retry_after (a string: Lua numbers become integers), failed}.
#: Redis's own clock is the time (every node agrees); a window's key holds its index.
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local prefix = ARGV[1]
local out = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  i = i + 1
  local checks = {}
  local ok, wait, failed = 1, 0, -1
  for j = 1, n do
    local key, kind = prefix .. ARGV[i], tonumber(ARGV[i + 1])
    local rate, cap, cost = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    i = i + 5
    local c = {key = key, kind = kind, rate = rate, cap = cap, cost = cost}
    if kind == 0 then
      local v = redis.call('HMGET', key, 'v', 't')
      local level = cap
      if v[1] then level = math.min(cap, tonumber(v[1]) + (now - tonumber(v[2])) * rate) end
      c.level = level
      if level < cost then
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
      if used + cost > cap then
        if failed < 0 then failed = j - 1 end
        ok = 0
        local w = (window + 1) * rate - now
        if wait >= 0 and w > wait then wait = w end
      end
    end
    checks[j] = c
  end
  if ok == 1 then
    for _, c in ipairs(checks) do
      if c.kind == 0 then
        redis.call('HSET', c.key, 'v', tostring(c.level - c.cost), 't', tostring(now))
        redis.call('PEXPIRE', c.key, math.ceil(c.cap / c.rate * 1000) + 1000)
      else
        redis.call('INCRBY', c.wkey, c.cost)
        redis.call('EXPIRE', c.wkey, c.expire)
      end
    end
  end
  out[#out + 1] = {ok, tostring(wait), failed}
end
return out
"""


class RedisStore:
    """Buckets in Redis, shared by every node: one atomic script per loop turn."""

    kind = "redis"

    def __init__(self, guard: RedisGuard, prefix: str) -> None:
        self._guard = guard
        self._prefix = f"{prefix}:rl:"
        self._script: Any = None
        self._batcher = _Batcher(self._send)

    async def take(self, checks: Sequence[Check]) -> Verdict:
        return await self._batcher.take(checks)

    async def _send(self, sets: list[Sequence[Check]]) -> list[Verdict]:
        if self._script is None:
            self._script = self._guard.client.register_script(TAKE_SCRIPT)
        args: list[Any] = [self._prefix]
        for checks in sets:
            args.append(len(checks))
            for c in checks:
                args.extend((c.key, c.kind, repr(c.rate), repr(c.capacity), c.cost))
        script = self._script
        rows = await self._guard.call(lambda r: script(keys=[], args=args, client=r))
        out: list[Verdict] = []
        for ok, wait, failed in rows:
            w = float(wait)
            out.append(Verdict(bool(ok), float("inf") if w < 0 else w, int(failed)))
        return out

    async def aclose(self) -> None:
        await self._batcher.aclose()
