"""Prometheus families of request shaping, read from the shaper's counters at scrape time.

=================================================  =========================================
family                                             what
=================================================  =========================================
lasso_cache_hits_total{chain,finality}             answers served from the cache
lasso_cache_misses_total{chain,finality}           cacheable calls that went upstream (finality
                                                   of the answer; ``unknown`` when not kept)
lasso_cache_evictions_total{chain,finality}        entries dropped: by the store (size, expiry)
                                                   and by reorgs (counted as ``unfinalized``)
lasso_cache_stale_refused_total{chain}             entries found but not served (a reorg since,
                                                   the head moved, the head not confirmed)
lasso_cache_bypassed_total{chain}                  calls never cached (writes, filters, pending)
lasso_cache_bytes{profile} / lasso_cache_entries   what the profile's store holds now
lasso_cache_max_bytes{profile}                     its bound
lasso_chain_reorgs_total{chain}                    reorgs seen (a block hash changed)
lasso_dedup_upstream_calls_total{chain}            calls sent upstream with dedup on
lasso_dedup_coalesced_total{chain}                 calls answered by an identical call in flight
lasso_logs_split_total{chain}                      eth_getLogs/trace_filter answered in pieces
=================================================  =========================================

Chains of several profiles with the same name are summed (the labels SPEC §8 names).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from lasso_rpc.shaping.store import FINALITIES

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from lasso_rpc.shaping.shaper import Shaper

__all__ = ["ShapingCollector"]


class ShapingCollector:
    """A prometheus_client collector: ``registry.register(ShapingCollector(router.shaper))``."""

    def __init__(self, shaper: Shaper) -> None:
        self._shaper = shaper

    def collect(self) -> Iterator[Metric]:
        shaper = self._shaper
        by = ["chain", "finality"]
        hits = CounterMetricFamily("lasso_cache_hits", "Answers served from the cache", labels=by)
        misses = CounterMetricFamily(
            "lasso_cache_misses", "Cacheable calls that went upstream", labels=by
        )
        evictions = CounterMetricFamily(
            "lasso_cache_evictions", "Cache entries dropped (size, expiry, reorg)", labels=by
        )
        h: dict[tuple[str, str], int] = defaultdict(int)
        m: dict[tuple[str, str], int] = defaultdict(int)
        e: dict[tuple[str, str], int] = defaultdict(int)
        per_chain: dict[str, list[int]] = defaultdict(lambda: [0] * 7)
        cached_chains: set[str] = set()
        for (profile, chain), st in list(shaper.stats.items()):
            if profile in shaper.stores:
                cached_chains.add(chain)
            for fin in FINALITIES:
                h[chain, fin] += st.hits[fin]
                m[chain, fin] += st.misses[fin]
                e[chain, fin] += st.reorg_evictions[fin]
            row = per_chain[chain]
            for i, v in enumerate(
                (
                    st.stale_refused,
                    st.bypassed,
                    st.reorgs,
                    st.dedup_leaders,
                    st.dedup_followers,
                    st.log_splits,
                )
            ):
                row[i] += v
        evicted = dict(shaper.retired_evictions)
        for store in shaper.stores.values():
            for key, n in store.stats().evictions.items():
                evicted[key] = evicted.get(key, 0) + n
        for (namespace, fin), n in evicted.items():
            e[namespace.split("/", 1)[-1], fin] += n
        for chain in cached_chains:  # every series from the start, at 0
            for fin in FINALITIES:
                for d in (h, m, e):
                    d[chain, fin] += 0
        for family, values in ((hits, h), (misses, m), (evictions, e)):
            for key, n in sorted(values.items()):
                family.add_metric(key, n)
        yield from (hits, misses, evictions)
        names = (
            ("lasso_cache_stale_refused", "Cache entries found but not served (reorg, head)"),
            ("lasso_cache_bypassed", "Calls never cached (writes, filters, pending, ...)"),
            ("lasso_chain_reorgs", "Reorgs seen by the cache's head watch"),
            ("lasso_dedup_upstream_calls", "Calls sent upstream with in-flight dedup on"),
            ("lasso_dedup_coalesced", "Calls answered by an identical call already in flight"),
            ("lasso_logs_split", "eth_getLogs/trace_filter requests answered in pieces"),
        )
        for i, (name, doc) in enumerate(names):
            fam = CounterMetricFamily(name, doc, labels=["chain"])
            for chain, row in sorted(per_chain.items()):
                fam.add_metric([chain], row[i])
            yield fam
        size = GaugeMetricFamily("lasso_cache_bytes", "Bytes the cache holds", labels=["profile"])
        entries = GaugeMetricFamily("lasso_cache_entries", "Cache entries", labels=["profile"])
        cap = GaugeMetricFamily("lasso_cache_max_bytes", "The cache's bound", labels=["profile"])
        for slug, store in sorted(shaper.stores.items()):
            s = store.stats()
            size.add_metric([slug], s.bytes)
            entries.add_metric([slug], s.entries)
            cap.add_metric([slug], s.max_bytes)
        yield from (size, entries, cap)

    def __repr__(self) -> str:
        return f"ShapingCollector({self._shaper!r})"
