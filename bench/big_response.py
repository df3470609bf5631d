"""A ~1 MB eth_getLogs result passed through the router: added latency, MB/s, bytes copied.

    .venv/bin/python bench/big_response.py           # 10 s cells
    .venv/bin/python bench/big_response.py --quick

The upstream (``servers/upstream.py --mode big``) answers ``eth_getLogs`` with about 1 MB of
ERC-20 Transfer logs (about 1,500 log objects). Three measurements:

1. latency at 1 connection, router vs direct (p50/p99 and the difference);
2. throughput at ``--conns`` connections (default 8): MB/s of response bodies and router CPU
   milliseconds per MB;
3. memory: a second router runs under tracemalloc; for single sequential requests the peak of
   traced memory above the idle level shows how many copies of the result are alive at once.

Layout as proxy_overhead.py (router core 0; upstream + wrk core 1; direct: wrk core 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import lib as c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--conns", type=int, default=8, help="connections of the throughput run")
    parser.add_argument("--samples", type=int, default=20, help="requests of the memory run")
    args = parser.parse_args()
    c.apply_quick(args)
    c.require("wrk")
    c.pin_self()
    c.header("big_response: ~1 MB eth_getLogs result through the router", args)
    rows = []
    res: dict[tuple[str, int], c.WrkResult] = {}
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        up = c.start_upstream(stack, mode="big")
        size = len(c.check_ok(up.url + "/", c.GET_LOGS))
        config = c.router_config([{"id": "up", "url": up.url}])
        router = c.start_router(stack, config)
        url = c.router_url(router)
        through = c.check_ok(url, c.GET_LOGS)
        if len(through) != size:
            raise RuntimeError(f"router answer is {len(through)} bytes, upstream sent {size}")
        print(
            f"response: {size:,} bytes ({size / 1e6:.2f} MB), identical length through the router"
        )
        for n in (1, args.conns):
            for name, target, watch, wrk_cpu in (
                ("direct", up.url + "/", {"upstream": up}, c.SUT_CPU),
                ("router", url, {"router": router, "upstream": up}, c.AUX_CPU),
            ):
                r = c.run_wrk(
                    stack,
                    target,
                    c.GET_LOGS,
                    conns=n,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    cpus=wrk_cpu,
                    watch=watch,
                    repeat=args.repeat,
                )
                res[(name, n)] = r
                router_ms_per_mb = "—"
                if name == "router":
                    cpu_s = r.cpu["router"] / 100 * r.duration_s
                    router_ms_per_mb = f"{1000 * cpu_s / (r.bytes / 1e6):.2f}"
                rows.append(
                    [
                        name,
                        n,
                        r.rps,
                        r.p50_ms,
                        r.p99_ms,
                        r.mb_per_s,
                        router_ms_per_mb,
                        r.errors + r.non2xx,
                        c.cpu_note(r),
                    ]
                )
                print(
                    f"  {name} c={n}: {r.rps:,.0f} req/s {r.mb_per_s:,.0f} MB/s "
                    f"p50 {r.p50_ms:.2f} ms [{c.cpu_note(r)}]",
                    flush=True,
                )
        stack.stop(router)

        traced = c.start_router(stack, config, trace_malloc=True, name="router-tracemalloc")
        turl = c.router_url(traced)
        for _ in range(3):
            c.check_ok(turl, c.GET_LOGS)  # warm: connections, caches, first-use allocations
        extra = []
        for _ in range(args.samples):
            idle = c.router_stats(traced)  # resets the peak
            c.check_ok(turl, c.GET_LOGS)
            after = c.router_stats(traced)
            extra.append(after["peak"] - idle["current"])
        peak = statistics.median(extra)

    heads = ["path", "conns", "req/s", "p50 ms", "p99 ms", "MB/s", "router CPU ms/MB", "err", "CPU"]
    print(c.table(heads, rows, "## ~1 MB responses"))
    d1, r1 = res[("direct", 1)], res[("router", 1)]
    dn, rn = res[("direct", args.conns)], res[("router", args.conns)]
    rows = [
        ["added p50 at c=1", c.delta_us(r1.p50_ms, d1.p50_ms)],
        ["added p99 at c=1", c.delta_us(r1.p99_ms, d1.p99_ms)],
        [f"router MB/s at c={args.conns}", f"{rn.mb_per_s:,.0f} MB/s"],
        [f"router / direct MB/s at c={args.conns}", c.ratio(rn.mb_per_s, dn.mb_per_s)],
        ["peak traced memory above idle during one request (median)", f"{peak / 1e6:.2f} MB"],
        ["... in response sizes", f"{peak / size:.1f}x"],
    ]
    print(c.table(["measure", "value"], rows, "## Summary"))
    print(
        "\nThe tracemalloc figure counts Python allocations only (bytes objects, buffers); it"
        " is the number of result-sized buffers alive at the same moment, a lower bound of"
        " the bytes copied per request."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
