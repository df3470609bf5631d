"""Does a second router worker buy throughput? ``--workers 1`` vs ``--workers 2`` at 64 connections.

    .venv/bin/python bench/scaling.py            # 10 s cells
    .venv/bin/python bench/scaling.py --quick

The machine has 2 cores and wrk and the upstream need CPU too, so two workers can never
double the rate here. Both rows that are compared run unpinned (same scheduler freedom); a third
row repeats the pinned layout of proxy_overhead.py (router core 0, upstream + wrk core 1) as the
reference. The CPU of every process is reported so the bottleneck is visible: a process near
100 % of one core, or the machine near 200 %, is the limit, not the router's design.
"""

from __future__ import annotations

import argparse
import sys

import _common as c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--conns", type=int, default=64)
    args = parser.parse_args()
    c.apply_quick(args)
    c.require("wrk")
    c.header("scaling: router --workers 1 vs --workers 2", args)
    rows = []
    results: dict[str, c.WrkResult] = {}
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        cases = [
            ("w1 pinned (router c0; upstream+wrk c1)", 1, True),
            ("w1 unpinned", 1, False),
            ("w2 unpinned", 2, False),
        ]
        for name, workers, pinned in cases:
            up = c.start_upstream(stack, cpus=c.AUX_CPU if pinned else None)
            router = c.start_router(
                stack,
                c.router_config([{"id": "up", "url": up.url}]),
                cpus=c.SUT_CPU if pinned else None,
                workers=workers,
            )
            url = c.router_url(router)
            c.check_ok(url)
            watch: dict[str, c.Server | c.Pids] = {
                f"worker{i + 1}": c.Pids([pid]) for i, pid in enumerate(router.workers)
            }
            watch["upstream"] = up
            r = c.run_wrk(
                stack,
                url,
                c.BLOCK_NUMBER,
                conns=args.conns,
                seconds=args.seconds,
                warmup_s=args.warmup,
                cpus=c.AUX_CPU if pinned else None,
                watch=watch,
                repeat=args.repeat,
            )
            results[name] = r
            router_cpu = sum(v for k, v in r.cpu.items() if k.startswith("worker"))
            rows.append(
                [
                    name,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.errors + r.non2xx,
                    f"{router_cpu:.0f}%",
                    c.cpu_note(r),
                    bottleneck(r, router_cpu, workers),
                ]
            )
            print(f"  {name}: {r.rps:,.0f} req/s [{c.cpu_note(r)}]", flush=True)
            stack.stop(router)
            stack.stop(up)
    heads = ["case", "req/s", "p50 ms", "p99 ms", "err", "router CPU", "CPU per process", "limit"]
    print(c.table(heads, rows, f"## {args.conns} connections"))
    w1, w2 = results["w1 unpinned"], results["w2 unpinned"]
    print(f"\nworkers 2 / workers 1 (both unpinned): {c.ratio(w2.rps, w1.rps)}")
    w1_pinned = results["w1 pinned (router c0; upstream+wrk c1)"]
    print(f"workers 2 unpinned / workers 1 pinned: {c.ratio(w2.rps, w1_pinned.rps)}")
    return 0


def bottleneck(r: c.WrkResult, router_cpu: float, workers: int) -> str:
    busy = sum(r.cpu.values())
    hot = [k for k, v in r.cpu.items() if k != "other" and v >= 90]
    parts = []
    if busy >= 185:
        parts.append(f"machine saturated ({busy:.0f}% of 200%)")
    if hot:
        parts.append("near 100%: " + ", ".join(hot))
    if router_cpu >= 90 * workers:
        parts.append("router-bound")
    if r.cpu.get("wrk", 0) >= 90:
        parts.append("generator-bound")
    if r.cpu.get("upstream", 0) >= 90:
        parts.append("upstream-bound")
    return "; ".join(parts) or "none obvious"


if __name__ == "__main__":
    sys.exit(main())
