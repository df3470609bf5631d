"""``ChainShaping``: everything request shaping does for one chain, around ``Pipeline.execute``.

For one call, in order: an ``eth_getLogs``/``trace_filter`` range is checked against the hard
maximum and split when it is longer than providers accept (``logsplit``; each piece comes back
through here); the cache is read (``cache``); a miss runs through in-flight dedup (``dedup``) to
the pipeline; the answer is stored when the rules allow; ``eth_blockNumber`` is kept monotonic.

A cache hit and a coalesced follower never reach the pipeline, so their ``request.finished``
events are published here (provider ``cache`` for a hit; the leader's provider for a follower,
with no attempts of its own).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import msgspec

from lasso_rpc.errors import DeadlineExceeded, InvalidParams, RequestRejected, error_name
from lasso_rpc.jsonrpc.codec import Call
from lasso_rpc.observability.events import EventBus, RequestFinished
from lasso_rpc.resilience.call import CallContext, CallOutcome
from lasso_rpc.resilience.methods import is_write_method
from lasso_rpc.routing.decision import Decision
from lasso_rpc.shaping.archive import ArchiveRouting
from lasso_rpc.shaping.blockrefs import NEVER, block_range, is_never_cached
from lasso_rpc.shaping.cache import ResponseCache, ShapingStats, cache_key
from lasso_rpc.shaping.dedup import RETRY, InFlight, Result, Waiters
from lasso_rpc.shaping.logsplit import merge_arrays, plan_range, split_run, with_range

if TYPE_CHECKING:
    from lasso_rpc.clock import Clock
    from lasso_rpc.resilience.pipeline import Pipeline
    from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["CACHE_DECISION", "ChainShaping"]

CACHE_DECISION = Decision((), "cache", "served from the response cache")
_RANGE_METHODS = frozenset({"eth_getLogs", "trace_filter"})


class ChainShaping:
    def __init__(
        self,
        chain: ChainRuntime,
        *,
        pipeline: Pipeline,
        cache: ResponseCache | None,
        bus: EventBus,
        clock: Clock,
        stats: ShapingStats,
    ) -> None:
        self.chain = chain
        self.stats = stats
        self.cache = cache
        self._pipeline = pipeline
        self._bus = bus
        self._clock = clock
        cfg = chain.routing.shaping
        self._cfg = cfg
        self.inflight = InFlight(clock) if cfg.dedup else None
        self._flights = self.inflight.flights if self.inflight is not None else {}
        self._exclude = tuple(cfg.dedup_exclude)
        self._dedupable: dict[str, bool] = {}
        self.floor = -1  # the highest eth_blockNumber answered so far
        archive = ArchiveRouting(chain, cfg.archive_after_blocks)
        self._archive = archive if archive.enabled else None

    # -- the entry point -------------------------------------------------------------------

    def execute(self, ctx: CallContext, call: Call) -> Awaitable[CallOutcome]:
        """The answer to one call (a coroutine: one frame on the path without cache)."""
        if self._archive is not None and ctx.route.pin is None:
            avoid = self._archive.avoid(call.method, call.params)
            if avoid:
                route = msgspec.structs.replace(ctx.route, avoid=ctx.route.avoid | avoid)
                ctx = msgspec.structs.replace(ctx, route=route)
        if call.method in _RANGE_METHODS:
            return self._ranged(ctx, call)
        if self.cache is None:
            return self._upstream(ctx, call)
        return self._cached(ctx, call)

    async def _ranged(self, ctx: CallContext, call: Call) -> CallOutcome:
        split = await self._split(ctx, call)
        if split is not None:
            return split
        return await self._piece(ctx, call)

    # -- cache -----------------------------------------------------------------------------

    async def _cached(self, ctx: CallContext, call: Call) -> CallOutcome:
        cache = self.cache
        assert cache is not None
        method = call.method
        if is_write_method(method) or ctx.route.pin is not None:
            return _mark(await self._upstream(ctx, call), "BYPASS")
        refs = cache.refs(method, call.params)
        if refs is NEVER:
            self.stats.bypassed += 1
            return _mark(await self._upstream(ctx, call), "BYPASS")
        key = cache_key(method, call.params)
        arrived = self._clock.now_ms()
        if not ctx.bypass_cache:
            entry = await cache.lookup(key, arrived)
            if entry is not None:
                return self._hit(ctx, call, entry.value, arrived)
        ledger = cache.ledger
        seq, head = ledger.seq, ledger.head
        out = await self._upstream(ctx, call, key)
        fin = None
        if out.ok and not out.coalesced and not self._lagging(out.provider):
            fin = await cache.keep(
                key,
                method,
                refs,
                bytes(out.payload),
                seq=seq,
                head=head,
                now_wall_ms=self._clock.wall_s() * 1000.0,
            )
        if not out.coalesced:  # a follower is counted as such (dedup), not as a miss
            self.stats.misses[fin or "unknown"] += 1
        return _mark(out, "BYPASS" if ctx.bypass_cache else "MISS")

    def _lagging(self, provider: str) -> bool:
        p = self.chain.providers.get(provider)
        return p is None or (p.lag is not None and p.lag > 0)

    def _hit(self, ctx: CallContext, call: Call, value: bytes, t0: float) -> CallOutcome:
        latency = self._clock.now_ms() - t0
        self._publish(ctx, call, latency, "ok", None, "cache", cache="HIT")
        out = CallOutcome(True, value, "cache", (), False, latency, CACHE_DECISION, "HIT")
        return self._monotonic(out) if call.method == "eth_blockNumber" else out

    # -- dedup and the pipeline ------------------------------------------------------------

    async def _upstream(
        self, ctx: CallContext, call: Call, key: bytes | None = None
    ) -> CallOutcome:
        """Through in-flight dedup to the pipeline. The leader's path is written out inline
        (no helper calls): it is every uncached call's path."""
        method = call.method
        shareable = self._dedupable.get(method)
        if shareable is None:
            shareable = self._shareable(method)
        if not shareable:  # also every call when dedup is off
            out = await self._pipeline.execute(ctx, call)
            return self._monotonic(out) if method == "eth_blockNumber" else out
        if key is None:  # the raw params: identical requests in flight are byte-identical
            key = method.encode() + b"\x00" + call.params
        if ctx.route.pin is not None:
            key = b"%s\x00%s" % (ctx.route.pin.encode(), key)
        flights = self._flights
        waiters = flights.get(key)
        if waiters is not None:
            return await self._follow(ctx, call, key, waiters)
        waiters = flights[key] = []
        self.stats.dedup_leaders += 1
        try:
            out = await self._pipeline.execute(ctx, call)
        except DeadlineExceeded:
            self._release(key, waiters, RETRY)  # followers have deadlines of their own
            raise
        except Exception as exc:
            self._release(key, waiters, exc)
            raise
        except BaseException:  # cancelled: the followers go on without this client
            self._release(key, waiters, RETRY)
            raise
        if flights.get(key) is waiters:
            del flights[key]
        if waiters:
            self._release(key, waiters, out)
        return self._monotonic(out) if method == "eth_blockNumber" else out

    def _release(self, key: bytes, waiters: Waiters, result: Result) -> None:
        assert self.inflight is not None
        self.inflight.end(key, waiters, result)

    async def _follow(
        self, ctx: CallContext, call: Call, key: bytes, waiters: Waiters
    ) -> CallOutcome:
        inflight = self.inflight
        assert inflight is not None
        t0 = self._clock.now_ms()
        self.stats.dedup_followers += 1
        deadline = t0 + ctx.chain.routing.request_timeout_ms
        while True:
            try:
                shared = await inflight.follow(waiters, deadline)
            except RequestRejected as exc:
                self._publish(ctx, call, self._clock.now_ms() - t0, "error", exc, None)
                raise
            if shared is not None:
                latency = self._clock.now_ms() - t0
                status = "ok" if shared.ok else "client_error"
                self._publish(ctx, call, latency, status, None, shared.provider, coalesced=True)
                out = msgspec.structs.replace(
                    shared, attempts=(), hedged=False, latency_ms=latency, coalesced=True
                )
                return self._monotonic(out) if call.method == "eth_blockNumber" else out
            # The leader gave up on its own account: lead now, or follow whoever leads.
            again = self._flights.get(key)
            if again is None:
                return await self._upstream(ctx, call, key if ctx.route.pin is None else None)
            waiters = again

    def _shareable(self, method: str) -> bool:
        ok = self._dedupable.get(method)
        if ok is None:
            ok = self.inflight is not None and not (
                is_write_method(method)
                or is_never_cached(method)
                or any(fnmatch.fnmatchcase(method, g) for g in self._exclude)
            )
            if len(self._dedupable) < 4096:
                self._dedupable[method] = ok
        return ok

    # -- eth_getLogs / trace_filter ranges -------------------------------------------------

    async def _split(self, ctx: CallContext, call: Call) -> CallOutcome | None:
        found = block_range(call.params)
        if found is None:
            return None
        spec, lo, hi = found
        span = hi - lo + 1
        if span <= 0:
            return None  # the providers say what is wrong with it
        hard = self._cfg.logs_max_block_range
        if hard is not None and span > hard:
            raise InvalidParams(
                f"{call.method} over {span} blocks exceeds this chain's limit of {hard} blocks;"
                " ask for a shorter range",
                data={"blocks": span, "limit": hard},
            )
        limits = {pid: p.config.logs_max_block_range for pid, p in self.chain.providers.items()}
        plan = plan_range(span, limits)
        n = 0

        async def piece(a: int, b: int, avoid: frozenset[str]) -> CallOutcome:
            nonlocal n
            if (a, b) == (lo, hi) and not avoid:
                return await self._piece(ctx, call)  # whole, as the client sent it
            n += 1
            route = msgspec.structs.replace(ctx.route, avoid=avoid) if avoid else ctx.route
            sub = CallContext(f"{ctx.request_id}.r{n}", ctx.chain, route, ctx.bypass_cache)
            part = Call(call.method, with_range(spec, a, b), call.id_raw)
            return await self._piece(sub, part)

        t0 = self._clock.now_ms()
        outs = await split_run(
            lo, hi, plan.chunk, plan.avoid, piece, concurrency=self._cfg.logs_split_concurrency
        )
        return self._merged(outs, t0)

    async def _piece(self, ctx: CallContext, call: Call) -> CallOutcome:
        if self.cache is None:
            return await self._upstream(ctx, call)
        return await self._cached(ctx, call)

    def _merged(self, outs: list[CallOutcome], t0: float) -> CallOutcome:
        if len(outs) == 1:
            return outs[0]
        self.stats.log_splits += 1
        first = outs[0]
        providers = list(dict.fromkeys(o.provider for o in outs))
        caches = {o.cache for o in outs}
        return CallOutcome(
            True,
            merge_arrays([bytes(o.payload) for o in outs]),
            "+".join(providers),
            tuple(a for o in outs for a in o.attempts),
            any(o.hedged for o in outs),
            self._clock.now_ms() - t0,
            first.decision,
            caches.pop() if len(caches) == 1 else "MISS",
        )

    # -- monotonic heads -------------------------------------------------------------------

    def _monotonic(self, out: CallOutcome) -> CallOutcome:
        if not out.ok or not self._cfg.monotonic_block_number:
            return out
        raw = bytes(out.payload)
        try:
            n = int(raw.strip(b'" '), 16)
        except ValueError:
            return out
        if n >= self.floor:
            self.floor = n
            return out
        return msgspec.structs.replace(out, payload=b'"%s"' % hex(self.floor).encode())

    # -- events ----------------------------------------------------------------------------

    def _publish(
        self,
        ctx: CallContext,
        call: Call,
        latency_ms: float,
        status: str,
        error: RequestRejected | None,
        provider: str | None,
        *,
        cache: str | None = None,
        coalesced: bool = False,
    ) -> None:
        route = ctx.route
        self._bus.publish(
            RequestFinished(
                ts=self._clock.wall_s(),
                request_id=ctx.request_id,
                profile=ctx.chain.profile,
                chain=ctx.chain.name,
                method=call.method,
                strategy=route.strategy if route.pin is None else "provider",
                transport=route.transport,
                status=status,
                error_class=None if error is None else error_name(type(error)),
                latency_ms=latency_ms,
                attempts=(),
                provider=provider,
                decision=CACHE_DECISION if cache == "HIT" else None,
                cache=cache,
                coalesced=coalesced,
            )
        )

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.watch.aclose()

    def __repr__(self) -> str:
        return (
            f"ChainShaping({self.chain.profile}/{self.chain.name} cache={self.cache!r}"
            f" dedup={self.inflight!r} floor={self.floor})"
        )


def _mark(out: CallOutcome, status: str) -> CallOutcome:
    return msgspec.structs.replace(out, cache=status)
