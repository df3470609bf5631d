"""``RedisGuard``: every Redis call of this process, each with a deadline, all behind a breaker.

Shared state must never cost a request more than a bounded delay, nor fail it:

- each call is cut at ``state.timeout_ms`` (an ``asyncio.timeout`` around it; redis-py drops a
  connection whose command was cut, so no answer is read by the wrong caller);
- ``state.failure_threshold`` failures in a row mark Redis down: calls fail at once, with no
  I/O (``StateUnavailable``), and callers go on with local state;
- while down, a probe (PING) runs every ``state.retry_ms``; the first answer marks Redis up
  again and runs the ``on_up`` hooks (``RedisPeers`` resynchronises there).

``on_change(connected, reason)`` hears both transitions (the server publishes a
``state.backend`` event). The client is created lazily: importing redis costs ~50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from lasso_rpc.config.shared import StateConfig
from lasso_rpc.errors import LassoError
from lasso_rpc.observability.redact import mask_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisGuard", "StateUnavailable"]

log = logging.getLogger("lasso_rpc.cluster.redis")
T = TypeVar("T")


class StateUnavailable(LassoError):
    """Redis is down, slow, or considered down: go on with local state."""


class RedisGuard:
    def __init__(self, config: StateConfig) -> None:
        assert config.url is not None
        self.config = config
        self.url = config.url
        self.timeout_s = config.timeout_ms / 1000.0
        self._client: Redis | None = None
        self.up = True  # optimistic until the first failures: no probe before the first call
        self._failures = 0
        self.errors = 0
        self.reconnects = 0
        self.fallbacks = 0  # calls refused at once because Redis was down
        self._probe: asyncio.Task[None] | None = None
        self._up_event = asyncio.Event()
        self._up_event.set()
        self.on_up: list[Callable[[], None]] = []
        self.on_change: Callable[[bool, str], None] | None = None

    @property
    def client(self) -> Redis:
        if self._client is None:
            from redis.asyncio import Redis

            t = self.timeout_s
            self._client = Redis.from_url(
                self.url,
                socket_timeout=max(t, 0.05),
                socket_connect_timeout=max(t, 0.05),
                retry_on_timeout=False,
                health_check_interval=0,
                max_connections=256,
            )
        return self._client

    async def call(
        self, fn: Callable[[Redis], Awaitable[T]], *, timeout_s: float | None = None
    ) -> T:
        """``fn(client)`` within the deadline; ``StateUnavailable`` when it cannot be had."""
        if not self.up:
            self.fallbacks += 1
            raise StateUnavailable("redis is down")
        try:
            async with asyncio.timeout(timeout_s if timeout_s is not None else self.timeout_s):
                result = await fn(self.client)
        except Exception as exc:
            if not _redis_failure(exc):
                raise
            self.failed(f"{type(exc).__name__}: {exc}")
            raise StateUnavailable(str(exc) or type(exc).__name__) from exc
        self._failures = 0
        return result

    def failed(self, why: str) -> None:
        """A failed operation (also reported by long-lived users: the pub/sub listener)."""
        self.errors += 1
        self._failures += 1
        if self.up and self._failures >= self.config.failure_threshold:
            self.up = False
            self._up_event.clear()
            log.warning(
                "redis %s unreachable (%s): serving on local state", mask_url(self.url), why
            )
            if self.on_change is not None:
                self.on_change(False, why)
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())

    async def wait_up(self) -> None:
        await self._up_event.wait()

    async def _probe_until_up(self) -> None:
        while True:
            await asyncio.sleep(self.config.retry_ms / 1000.0)
            try:
                async with asyncio.timeout(max(self.timeout_s, 0.2)):
                    await self.client.ping()
            except Exception as exc:
                if not _redis_failure(exc):
                    raise
                continue
            break
        self.up = True
        self._failures = 0
        self.reconnects += 1
        self._up_event.set()
        log.warning("redis %s reachable again: resynchronising", mask_url(self.url))
        if self.on_change is not None:
            self.on_change(True, "probe answered")
        for hook in list(self.on_up):
            hook()

    async def aclose(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    def __repr__(self) -> str:
        return (
            f"RedisGuard({mask_url(self.url)}, up={self.up}, failures={self._failures}, "
            f"errors={self.errors}, reconnects={self.reconnects})"
        )


def _redis_failure(exc: BaseException) -> bool:
    """A failure of Redis or of the way to it (anything else is a bug, and propagates)."""
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError | TimeoutError)
