"""``Shaper``: request shaping for every chain of a router, in front of ``Pipeline.execute``.

The router builds one ``ChainShaping`` per chain (``add_chain``) with, when the chain's profile
has ``cache.enabled``, a ``ResponseCache`` on the profile's store (one store per profile; a
``store_factory`` may give another kind than ``MemoryStore``), a ``BlockLedger`` and a
``HeadWatch`` fed by the chain's head polls. ``execute`` is what the server calls for every
unary call (HTTP and WebSocket). A chain without shaping state goes straight to the pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from lasso_rpc.config.shaping import CacheConfig
from lasso_rpc.jsonrpc.codec import Call
from lasso_rpc.observability.events import ChainReorg, EventBus
from lasso_rpc.resilience.call import CallContext, CallOutcome
from lasso_rpc.shaping.blockrefs import Named
from lasso_rpc.shaping.cache import ResponseCache, ShapingStats
from lasso_rpc.shaping.chain import ChainShaping
from lasso_rpc.shaping.headwatch import HeadWatch
from lasso_rpc.shaping.ledger import BlockLedger
from lasso_rpc.shaping.memory import MemoryStore
from lasso_rpc.shaping.store import CacheStore
from lasso_rpc.shaping.testing import reorg_safety_on

if TYPE_CHECKING:
    from lasso_rpc.clock import Clock
    from lasso_rpc.resilience.pipeline import Pipeline
    from lasso_rpc.upstream.chain import ChainRuntime
    from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["Shaper", "StoreFactory"]

#: (profile slug, its cache config) → the store of that profile.
StoreFactory = Callable[[str, CacheConfig], CacheStore]


def memory_store(clock: Clock) -> StoreFactory:
    return lambda slug, cfg: MemoryStore(cfg.max_bytes, clock=clock)


class Shaper:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        bus: EventBus,
        clock: Clock,
        store_factory: StoreFactory | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._bus = bus
        self._clock = clock
        self._store_factory = store_factory or memory_store(clock)
        self._chains: dict[ChainRuntime, ChainShaping] = {}
        #: By (profile, chain): counters survive reloads (Prometheus counters never go back).
        self.stats: dict[tuple[str, str], ShapingStats] = {}
        self.stores: dict[str, CacheStore] = {}  # by profile slug, for the profiles with a cache
        #: Evictions counted by stores a reload replaced, by (namespace, finality).
        self.retired_evictions: dict[tuple[str, str], int] = {}

    def store_for(self, slug: str, cfg: CacheConfig) -> CacheStore:
        """A new store for a profile (a reload starts with an empty cache)."""
        old = self.stores.get(slug)
        if old is not None:  # its eviction counts live on in the totals
            for key, n in old.stats().evictions.items():
                self.retired_evictions[key] = self.retired_evictions.get(key, 0) + n
        store = self._store_factory(slug, cfg)
        self.stores[slug] = store
        return store

    def add_chain(
        self, chain: ChainRuntime, cache_cfg: CacheConfig, store: CacheStore | None
    ) -> None:
        cache = None
        stats = self.stats.setdefault((chain.profile, chain.name), ShapingStats())
        if cache_cfg.enabled and store is not None:
            ledger = BlockLedger(finality_depth=chain.config.finality_depth)
            namespace = f"{chain.profile}/{chain.name}"

            async def on_reorg(fork: int) -> None:
                await self._evict(chain, fork)

            watch = HeadWatch(
                chain,
                ledger,
                check_ms=cache_cfg.head_check_ms,
                clock=self._clock,
                on_reorg=on_reorg,
            )
            cache = ResponseCache(cache_cfg, store, namespace, ledger, watch, stats)
            chain.watch_blocks(_HeadFeed(watch, ledger))
        self._chains[chain] = ChainShaping(
            chain,
            pipeline=self._pipeline,
            cache=cache,
            bus=self._bus,
            clock=self._clock,
            stats=stats,
        )

    def shaping(self, chain: ChainRuntime) -> ChainShaping | None:
        return self._chains.get(chain)

    def chains(self) -> list[ChainShaping]:
        return list(self._chains.values())

    def execute(self, ctx: CallContext, call: Call) -> Awaitable[CallOutcome]:
        """Answer one unary call: shaped, or straight from the pipeline."""
        cs = self._chains.get(ctx.chain)
        if cs is None:
            return self._pipeline.execute(ctx, call)
        return cs.execute(ctx, call)

    async def _evict(self, chain: ChainRuntime, fork: int) -> None:
        cs = self._chains.get(chain)
        if cs is None or cs.cache is None:
            return
        cache = cs.cache
        cs.stats.reorgs += 1
        evicted = 0
        if reorg_safety_on():
            evicted = await cache.store.evict_from(cache.namespace, fork)
            if evicted > 0:
                cs.stats.reorg_evictions["unfinalized"] += evicted
        self._bus.publish(
            ChainReorg(
                ts=self._clock.wall_s(),
                profile=chain.profile,
                chain=chain.name,
                fork_block=fork,
                evicted=evicted,
            )
        )

    async def forget(self, chain: ChainRuntime) -> None:
        """Stop shaping ``chain`` (a reload replaced it)."""
        cs = self._chains.pop(chain, None)
        if cs is not None:
            await cs.aclose()

    async def aclose(self) -> None:
        for chain in list(self._chains):
            await self.forget(chain)
        for store in self.stores.values():
            await store.aclose()

    def __repr__(self) -> str:
        return f"Shaper(chains={len(self._chains)}, stores={list(self.stores)})"


class _HeadFeed:
    """The chain head tracker's block listener: heads at or above the known one are news."""

    __slots__ = ("_ledger", "_watch")

    def __init__(self, watch: HeadWatch, ledger: BlockLedger) -> None:
        self._watch = watch
        self._ledger = ledger

    def __call__(self, p: ProviderRuntime, number: int, block_hash: str, parent: str) -> None:
        head = self._ledger.head
        if head is None or number >= head:
            self._watch.observe([Named(number, block_hash.lower(), parent)], confirms=True)
