"""The response cache: throughput of a hit vs the uncached router path, the latency a hit adds,
and the memory of the store under a scan of a million distinct keys.

    .venv/bin/python bench/cache.py            # 10 s cells, 1 and 64 connections
    .venv/bin/python bench/cache.py --quick

One upstream (``servers/upstream.py --mode chain``: real-looking blocks, core 1) and, on core 0,
in turn: the router without cache (and without dedup, so that every request goes upstream) and
the router with ``cache: {enabled: true}``. wrk (core 1) asks for one finalized block, ``eth_getBlockByNumber("0xfff000",
false)``, at 64 and 1 connections, and once straight at the upstream (for the added latency).
The router's /metrics confirm what happened (cache hits, upstream attempts).

The scan runs in this process: a ``MemoryStore`` of 32 MB takes 1,000,000 distinct keys of the
shape the cache uses (a block request, a ~1.3 KB answer) while 500 hot keys keep being read;
traced memory (tracemalloc) and RSS are read before and after.

Targets (exit 1 when one is MISSED): hit throughput >= 1.5x the uncached path at 64
connections; traced memory of the store <= 1.25x its max_bytes after the scan; the hot keys
still hit >= 90 % during the scan.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc

import psutil

import lib as c
from lasso_rpc.clock import SYSTEM_CLOCK
from lasso_rpc.shaping.cache import cache_key
from lasso_rpc.shaping.memory import MemoryStore
from lasso_rpc.shaping.store import CacheEntry
from lib.targets import Targets

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0xfff000",false]}'
SCAN_KEYS = 1_000_000
STORE_BYTES = 32 * 1024 * 1024


def _router(stack: c.Stack, upstream: c.Server, cache: bool) -> c.Server:
    # Without cache, dedup is off too: 64 connections asking for the same block would
    # otherwise mostly share calls in flight, and the uncached path would not be measured.
    routing = {"hedge": {"enabled": False}, "shaping": {"dedup": cache}}
    config = c.router_config([{"id": "up", "url": upstream.url}], routing=routing)
    if cache:
        config["cache"] = {"enabled": True}
    return c.start_router(stack, config, name="router-cache" if cache else "router-nocache")


def _wrk_cells(args: argparse.Namespace, conns: list[int]) -> dict[tuple[str, int], c.WrkResult]:
    res: dict[tuple[str, int], c.WrkResult] = {}
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        upstream = c.start_upstream(stack, mode="chain")
        res[("direct", 1)] = c.run_wrk(
            stack, upstream.url, BODY, conns=1, seconds=args.seconds, warmup_s=args.warmup,
            repeat=args.repeat,
        )  # fmt: skip
        for cache in (False, True):
            name = "cache hit" if cache else "uncached"
            router = _router(stack, upstream, cache)
            url = c.router_url(router)
            c.check_ok(url, BODY)
            before = c.metrics(router)
            for n in conns:
                r = c.run_wrk(
                    stack,
                    url,
                    BODY,
                    conns=n,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    watch={"router": router, "upstream": upstream},
                    repeat=args.repeat,
                )
                res[(name, n)] = r
                print(
                    f"  {name} c={n}: {r.rps:,.0f} req/s p50 {r.p50_ms:.3f} ms p99 "
                    f"{r.p99_ms:.3f} ms errors {r.errors + r.non2xx} [{c.cpu_note(r)}]",
                    flush=True,
                )
            after = c.metrics(router)
            hits = c.metric_sum(after, "lasso_cache_hits_total") - c.metric_sum(
                before, "lasso_cache_hits_total"
            )
            sent = c.metric_sum(after, "lasso_upstream_attempts_total") - c.metric_sum(
                before, "lasso_upstream_attempts_total"
            )
            print(f"    router counters: cache hits {hits:,.0f}, upstream attempts {sent:,.0f}")
            stack.stop(router)
    return res


def _scan() -> tuple[float, float, float, float, int]:
    """(traced MB of the store, its max in MB, RSS growth MB, hot hit ratio, seconds)."""
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    tracemalloc.start()
    t0 = time.monotonic()
    store = MemoryStore(STORE_BYTES, clock=SYSTEM_CLOCK)
    value = c.REPO.joinpath("bench", "servers", "upstream.py").read_bytes()[:1300]
    hot = [cache_key("eth_getBlockByNumber", b'["%s",false]' % hex(i).encode()) for i in range(500)]
    asked = hits = 0

    def read(key: bytes) -> bool:
        if store.get_now("p/c", key) is not None:
            return True
        store.set_now("p/c", key, CacheEntry(value + key, "finalized"), ttl_ms=None)
        return False

    for _ in range(4):
        for k in hot:
            read(k)
    for i in range(SCAN_KEYS):
        read(cache_key("eth_getBlockByNumber", b'["0x%x",false]' % (0x100000 + i)))
        if i % 20 == 0:
            asked += 1
            hits += read(hot[(i // 20) % len(hot)])
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = psutil.Process().memory_info().rss - rss0
    stats = store.stats()
    assert stats.bytes <= STORE_BYTES
    seconds = int(time.monotonic() - t0)
    return traced / 1e6, STORE_BYTES / 1e6, rss / 1e6, hits / asked, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--conns", default="64,1", help="comma-separated connection counts")
    parser.add_argument("--no-scan", action="store_true", help="skip the 1M-key scan")
    args = parser.parse_args()
    c.apply_quick(args)
    c.require("wrk")
    conns = [int(x) for x in args.conns.split(",")]
    c.header("cache: hit vs uncached router path; store memory under a scan", args)
    res = _wrk_cells(args, conns)
    rows = [[name, n, r.rps, r.p50_ms, r.p99_ms, c.cpu_note(r)] for (name, n), r in res.items()]
    print(c.table(["path", "conns", "req/s", "p50 ms", "p99 ms", "CPU"], rows, "## Throughput"))
    targets = Targets()
    reported: list[list[object]] = []
    top = max(conns)
    if ("cache hit", top) in res and ("uncached", top) in res:
        ratio = res[("cache hit", top)].rps / res[("uncached", top)].rps
        targets.check(
            f"hit throughput >= 1.5x uncached at {top} conns", f"{ratio:.2f}x", ratio >= 1.5
        )
    if 1 in conns:
        direct = res[("direct", 1)].p50_ms
        hit, miss = res[("cache hit", 1)].p50_ms, res[("uncached", 1)].p50_ms
        reported.append(
            ["added p50 of a hit at 1 conn (vs the upstream direct)", c.delta_us(hit, direct)]
        )
        reported.append(
            ["added p50 uncached at 1 conn (vs the upstream direct)", c.delta_us(miss, direct)]
        )
    if not args.no_scan:
        c.pin_self()
        traced, cap, rss, hot, secs = _scan()
        print(
            f"  scan of {SCAN_KEYS:,} keys in {secs} s: traced {traced:.1f} MB (store max "
            f"{cap:.1f} MB), RSS +{rss:.1f} MB, hot hit ratio {hot:.3f}",
            flush=True,
        )
        targets.check(
            f"store memory <= 1.25 x {cap:.0f} MB after {SCAN_KEYS:,} distinct keys",
            f"{traced:.1f} MB traced, RSS +{rss:.1f} MB",
            traced <= 1.25 * cap,
        )
        targets.check(
            "hot keys still hit >= 90 % during the scan", f"{100 * hot:.1f} %", hot >= 0.9
        )
    if reported:
        print(c.table(["figure", "this run"], reported, "## Reported"))
    return targets.report()


if __name__ == "__main__":
    sys.exit(main())
