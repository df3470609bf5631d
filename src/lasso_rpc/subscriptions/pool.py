"""The upstream WebSocket connections of every chain: one ``UpstreamWs`` per provider endpoint."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

import aiohttp

from lasso_rpc.clock import Clock
from lasso_rpc.subscriptions.options import SubscriptionOptions
from lasso_rpc.subscriptions.upstream_ws import UpstreamWs

__all__ = ["UpstreamPool"]


class UpstreamPool:
    """The upstream connections of every chain, one per (profile, chain, provider, url)."""

    def __init__(self, *, options: SubscriptionOptions, clock: Clock, rng: random.Random) -> None:
        self.options = options
        self._clock = clock
        self._rng = rng
        self._conns: dict[tuple[str, str, str, str], UpstreamWs] = {}
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.options.connect_timeout_s)
            )
        return self._session

    def connection(
        self, profile: str, chain: str, provider: str, url: str, headers: Mapping[str, str]
    ) -> UpstreamWs:
        key = (profile, chain, provider, url)
        conn = self._conns.get(key)
        if conn is None:
            conn = self._conns[key] = UpstreamWs(
                provider,
                url,
                headers=headers,
                session=self._get_session,
                options=self.options,
                clock=self._clock,
                rng=random.Random(self._rng.random()),
            )
        return conn

    def peek(self, profile: str, chain: str, provider: str, url: str) -> UpstreamWs | None:
        return self._conns.get((profile, chain, provider, url))

    def connections(self) -> list[UpstreamWs]:
        return list(self._conns.values())

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._conns.values()))
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        open_ = sum(c.is_open for c in self._conns.values())
        return f"UpstreamPool(connections={len(self._conns)}, open={open_})"
