"""``RedisPeers``: provider state shared by router nodes through Redis (``state.backend: redis``).

Keys (``<prefix>`` is ``state.prefix``):

- ``<prefix>:state``, a hash: field ``<aspect>:<profile>/<chain>/<provider>``, value the newest
  ``StateRecord`` as JSON. Written only through one Lua script that keeps the newer record
  (``records.newer``) and publishes it in the same step;
- ``<prefix>:events``, a pub/sub channel: every record written, and commands.

A change is pushed at once (a queue drained by one writer task: ``publish`` never waits). A
listener applies what the others publish. Every ``state.sync_interval_ms``, and right after
Redis comes back, a full reconciliation reads the hash (applying what is newer) and writes back
what this node knows better (so an emptied Redis, after a restart, is filled again by the
nodes). While Redis is down (``RedisGuard``), changes stay local and are pushed on return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from lasso_rpc.clock import Clock
from lasso_rpc.cluster.peers import PeerSink, PeerStatus
from lasso_rpc.cluster.records import (
    Message,
    StateRecord,
    decode_message,
    encode_message,
    newer,
)
from lasso_rpc.cluster.redis_guard import RedisGuard, StateUnavailable
from lasso_rpc.config.shared import StateConfig

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisPeers"]

log = logging.getLogger("lasso_rpc.cluster.redis")

#: KEYS[1] hash, ARGV: field, record JSON, ts, origin, channel. 1 when written (newer).
SET_NEWER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local c = cjson.decode(cur)
  local ts = tonumber(ARGV[3])
  if c.ts > ts or (c.ts == ts and c.origin >= ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[2])
return 1
"""


class RedisPeers:
    backend = "redis"

    def __init__(
        self, config: StateConfig, *, clock: Clock, guard: RedisGuard | None = None
    ) -> None:
        self.config = config
        self._clock = clock
        self.guard = guard or RedisGuard(config)
        self.hash_key = f"{config.prefix}:state"
        self.channel = f"{config.prefix}:events"
        self._sink: PeerSink | None = None
        self._outbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self._resync = asyncio.Event()
        self._script: Any = None
        self.published = 0
        self.received = 0
        self.dropped = 0

    async def start(self, sink: PeerSink) -> None:
        self._sink = sink
        self.guard.on_up.append(self._resync.set)
        self._script = self.guard.client.register_script(SET_NEWER)
        with contextlib.suppress(StateUnavailable):
            await self._reconcile()  # start from what the others know
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write(), name="state-writer"),
            loop.create_task(self._listen(), name="state-listener"),
            loop.create_task(self._sync_every(), name="state-sync"),
        ]

    def publish(self, message: Message) -> None:
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1  # records are pushed again by the next reconciliation

    def status(self) -> PeerStatus:
        g = self.guard
        return PeerStatus(self.backend, g.up, self.published, self.received, g.errors, g.reconnects)

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        await self.guard.aclose()

    # -- out ------------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Until every change published so far was written (or given up on)."""
        await self._outbox.join()

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                if self.guard.up:  # else pushed by the reconciliation when Redis is back
                    await self._send(message)
            except StateUnavailable:
                pass
            finally:
                self._outbox.task_done()

    async def _send(self, message: Message) -> None:
        data = encode_message(message)
        if isinstance(message, StateRecord):
            args = [message.field, data, repr(message.ts), message.origin, self.channel]
            await self.guard.call(lambda r: self._script(keys=[self.hash_key], args=args, client=r))
        else:
            await self.guard.call(lambda r: r.publish(self.channel, data))
        self.published += 1

    # -- in -------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            await self.guard.wait_up()
            pubsub = self.guard.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._resync.set()  # anything published before the subscription took
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        self._receive(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from redis.exceptions import RedisError

                if not isinstance(exc, RedisError | OSError):
                    raise
                self.guard.failed(f"pub/sub: {type(exc).__name__}: {exc}")
                await asyncio.sleep(min(self.config.retry_ms, 200) / 1000.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _receive(self, data: bytes) -> None:
        try:
            message = decode_message(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("malformed message on %s", self.channel)
            return
        sink = self._sink
        if sink is None:
            return
        self.received += 1
        if isinstance(message, StateRecord):
            sink.apply(message)
        else:
            sink.run_command(message)

    async def _sync_every(self) -> None:
        interval = self.config.sync_interval_ms / 1000.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._resync.wait()
            self._resync.clear()
            if not self.guard.up:
                continue
            with contextlib.suppress(StateUnavailable):
                await self._reconcile()

    async def _reconcile(self) -> None:
        """Apply what Redis holds that is newer; write back what this node knows better."""
        sink = self._sink
        assert sink is not None
        timeout = max(self.guard.timeout_s * 4, 0.1)
        raw = await self.guard.call(lambda r: _hgetall(r, self.hash_key), timeout_s=timeout)
        remote: dict[str, StateRecord] = {}
        for value in raw.values():
            try:
                m = decode_message(value)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if isinstance(m, StateRecord):
                remote[m.field] = m
                sink.apply(m)
        for rec in sink.records():
            if newer(rec, remote.get(rec.field)):
                await self._send(rec)

    def __repr__(self) -> str:
        return f"RedisPeers({self.guard!r}, published={self.published}, received={self.received})"


async def _hgetall(r: Redis, key: str) -> dict[Any, Any]:
    return dict(await r.hgetall(key))
