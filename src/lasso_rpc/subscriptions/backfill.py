"""Back-fill over HTTP through the router's own pipeline (the real ``Backfill``).

Every read is pinned to the provider the feed just moved to (its view of the chain is the one
the live stream continues from) with failover allowed, so a provider whose HTTP side is sick
still gets its gap filled by the others. The reads are ordinary pipeline calls: they count in
provider stats and breakers and appear as ``request.finished`` events with request ids
``ws-backfill-N`` (transport ``http``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence

import msgspec
import orjson

from lasso_rpc.errors import RequestRejected
from lasso_rpc.jsonrpc.codec import Call
from lasso_rpc.resilience.call import CallContext
from lasso_rpc.resilience.pipeline import Pipeline
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.subscriptions.frames import Head, LogEntry
from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["PipelineBackfill"]

log = logging.getLogger("lasso_rpc.subscriptions")
_ids = itertools.count(1)
_ID = b"1"


class PipelineBackfill:
    def __init__(
        self, pipeline: Pipeline, resolve: Callable[[], ChainRuntime], *, concurrency: int = 8
    ) -> None:
        self._pipeline = pipeline
        self._resolve = resolve
        self._concurrency = max(1, concurrency)

    async def _call(self, method: str, params: bytes, provider: str) -> bytes | None:
        """The raw result, or None (a refusal, an upstream error or ``null``)."""
        chain = self._resolve()
        pin = provider if provider in chain.providers else None
        route = RouteRequest(chain.routing.default_strategy, pin, True, "http")
        ctx = CallContext(f"ws-backfill-{next(_ids)}", chain, route)
        try:
            outcome = await self._pipeline.execute(ctx, Call(method, params, _ID))
        except RequestRejected as exc:
            log.info("back-fill %s via %s failed: %s", method, provider, exc.message)
            return None
        payload = bytes(outcome.payload)
        if not outcome.ok or payload == b"null":
            return None
        return payload

    async def head(self, provider: str | None) -> int | None:
        """``provider``'s head (None: any provider's, as routed); when it cannot say, the
        chain's consensus head."""
        chain = self._resolve()
        if provider is None or provider in chain.providers:
            route = RouteRequest(chain.routing.default_strategy, provider)
            ctx = CallContext(f"ws-backfill-{next(_ids)}", chain, route)
            try:
                outcome = await self._pipeline.execute(ctx, Call("eth_blockNumber", b"[]", _ID))
                if outcome.ok:
                    return int(msgspec.json.decode(outcome.payload), 16)
            except (RequestRejected, msgspec.DecodeError, ValueError, TypeError):
                pass
        return chain.consensus_head

    async def blocks(self, lo: int, hi: int, provider: str) -> Sequence[Head | None]:
        sem = asyncio.Semaphore(self._concurrency)

        async def one(n: int) -> Head | None:
            async with sem:
                raw = await self._call("eth_getBlockByNumber", b'["0x%x",false]' % n, provider)
            if raw is None:
                return None
            try:
                head = Head.from_block(raw)
            except (ValueError, orjson.JSONDecodeError):
                return None
            return head if head.number == n else None

        return await asyncio.gather(*(one(n) for n in range(lo, hi + 1)))

    async def logs(
        self, filter_json: bytes, lo: int, hi: int, provider: str
    ) -> list[LogEntry] | None:
        spec = orjson.loads(filter_json)
        spec["fromBlock"], spec["toBlock"] = hex(lo), hex(hi)
        raw = await self._call("eth_getLogs", b"[" + orjson.dumps(spec) + b"]", provider)
        if raw is None:
            return None
        try:
            items = msgspec.json.decode(raw, type=list[msgspec.Raw])
            logs = [LogEntry.parse(bytes(r)) for r in items]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            return None
        logs.sort(key=lambda lg: (lg.block_number, lg.log_index))
        return logs

    def __repr__(self) -> str:
        return f"PipelineBackfill(concurrency={self._concurrency})"
