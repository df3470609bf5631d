"""A 50-item JSON-RPC batch through the router vs straight to the upstream.

    .venv/bin/python bench/batch.py            # 10 s cells, 1 and 64 connections
    .venv/bin/python bench/batch.py --quick

The router runs through ``servers/router.py`` (the same CLI plus a GC callback) so that the
share of its CPU spent in the cyclic garbage collector is reported; a second router with
``gc.set_threshold(50000, 20, 100)`` shows what GC tuning would buy (``--no-gc-experiment``).

Layout as proxy_overhead.py: direct = upstream on core 1, wrk on core 0; router = router on
core 0, upstream + wrk on core 1. The upstream answers a batch in one HTTP exchange; the router
splits it and sends every item as its own upstream request (concurrently), which the
``upstream requests per batch`` column shows (from the router's attempt counter).
"""

from __future__ import annotations

import argparse
import json
import sys

import lib as c

ITEMS = 50
GC_EXPERIMENT = "50000,20,100"  # gc.set_threshold(...) in the experimental router row
ADDRESSES = [f"0x{(i + 1) * 2_654_435_761:040x}" for i in range(ITEMS)]


def batch_body(n: int = ITEMS) -> bytes:
    """A realistic read batch: block number, balances, nonces and code of 50 accounts."""
    items = []
    for i in range(n):
        kind = i % 3
        if i == 0:
            method, params = "eth_blockNumber", []
        elif kind == 0:
            method, params = "eth_getBalance", [ADDRESSES[i], "latest"]
        elif kind == 1:
            method, params = "eth_getTransactionCount", [ADDRESSES[i], "latest"]
        else:
            method, params = "eth_getCode", [ADDRESSES[i], "latest"]
        items.append({"jsonrpc": "2.0", "id": i + 1, "method": method, "params": params})
    return json.dumps(items, separators=(",", ":")).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--conns", default="1,64", help="comma-separated connection counts")
    parser.add_argument(
        "--no-gc-experiment",
        dest="gc_experiment",
        action="store_false",
        help=f"skip the row with gc.set_threshold({GC_EXPERIMENT}) in the router process",
    )
    args = parser.parse_args()
    c.apply_quick(args)
    c.require("wrk")
    c.pin_self()
    conns = [int(x) for x in args.conns.split(",")]
    body = batch_body()
    c.header(f"batch: {ITEMS}-item batch ({len(body)} bytes) through the router vs direct", args)
    rows = []
    results: dict[tuple[str, int], c.WrkResult] = {}
    notes = []
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        up = c.start_upstream(stack, cpus=c.AUX_CPU)
        c.check_ok(up.url + "/", body)
        config = c.router_config([{"id": "up", "url": up.url}])
        routers = {"router": c.start_router(stack, config, instrumented="default")}
        if args.gc_experiment:
            routers[f"router, gc.set_threshold({GC_EXPERIMENT})"] = c.start_router(
                stack, config, instrumented=GC_EXPERIMENT
            )
        for each in routers.values():
            if len(json.loads(c.check_ok(c.router_url(each), body))) != ITEMS:
                raise RuntimeError("router answered a different number of items")
        for n in conns:
            cases: list[tuple[str, str, c.Server | None, str]] = [
                ("direct", up.url + "/", None, c.SUT_CPU)
            ]
            cases += [(name, c.router_url(r), r, c.AUX_CPU) for name, r in routers.items()]
            for name, target, router, wrk_cpu in cases:
                watch: dict[str, c.Server | c.Pids] = {"upstream": up}
                if router is not None:
                    watch = {"router": router, "upstream": up}
                before = c.metrics(router) if router is not None else {}
                r = c.run_wrk(
                    stack,
                    target,
                    body,
                    conns=n,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    cpus=wrk_cpu,
                    watch=watch,
                    repeat=args.repeat,
                    gc_of=router,
                )
                results[(name, n)] = r
                per_batch = "1"
                if router is not None:
                    after = c.metrics(router)
                    attempts = c.metric_sum(after, "lasso_upstream_attempts_total") - c.metric_sum(
                        before, "lasso_upstream_attempts_total"
                    )
                    outcomes = c.request_outcomes(before, after)
                    # Warm-up and retries included (the counters cover them): attempts/item x 50.
                    per_batch = f"{attempts / max(sum(outcomes.values()), 1) * ITEMS:.1f}"
                    notes.append(
                        f"{name} c={n}: item outcomes (warm-up and retries included) {outcomes}; {r.gc_note}"
                    )
                rows.append(
                    [
                        name,
                        n,
                        r.rps,
                        r.rps * ITEMS,
                        r.p50_ms,
                        r.p99_ms,
                        r.errors + r.non2xx,
                        per_batch,
                        c.cpu_note(r),
                    ]
                )
                print(
                    f"  {name} c={n}: {r.rps:,.0f} batches/s p50 {r.p50_ms:.2f} ms "
                    f"[{c.cpu_note(r)}] {r.gc_note}",
                    flush=True,
                )
    heads = [
        "path",
        "conns",
        "batches/s",
        "items/s",
        "p50 ms/batch",
        "p99 ms/batch",
        "err",
        "upstream requests per batch",
        "CPU",
    ]
    print(c.table(heads, rows, "## 50-item batches"))
    rows = []
    for name, n in results:
        if name == "direct":
            continue
        d, r = results[("direct", n)], results[(name, n)]
        cpu_us = 1e6 * r.cpu.get("router", 0.0) / 100 / (r.rps * ITEMS) if r.rps else 0.0
        rows.append(
            [
                name,
                n,
                c.ratio(r.rps, d.rps),
                c.delta_us(r.p50_ms, d.p50_ms),
                c.delta_us(r.p99_ms, d.p99_ms),
                f"{cpu_us:.0f} µs",
            ]
        )
    print(
        c.table(
            [
                "router",
                "conns",
                "router/direct batches/s",
                "added p50",
                "added p99",
                "router CPU per item",
            ],
            rows,
            "## Router vs direct",
        )
    )
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
