"""Does a second router worker buy throughput? ``--workers 1`` vs ``--workers 2`` at 64 connections.

    .venv/bin/python bench/scaling.py            # 10 s cells
    .venv/bin/python bench/scaling.py --quick

On a 2-core machine the load generator (wrk, about 11 µs of CPU per request) and the upstream
(about 12 µs) share the cores with the workers, so two workers can never double the rate here:
every process's CPU is reported, so the limit is visible. (Tried and dropped: an nginx + Lua
upstream costs as much CPU per request as the Python one, and wrk's pipelining saves it nothing
because the router answers a connection's requests one at a time.)

Rows: one worker pinned to core 0 with everything else on core 1 (one worker's capacity: the
router-bound reference); one worker unpinned; two workers unpinned. Besides the req/s ratio,
the script prints the router's efficiency (req/s per CPU-second of its workers) and what two
workers would give with a core each at the efficiency measured (the 2-core projection): when
the machine is saturated, that is what the second worker is worth without the apparatus.
"""

from __future__ import annotations

import argparse
import sys

import lib as c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--conns", type=int, default=64)
    args = parser.parse_args()
    c.apply_quick(args)
    c.require("wrk")
    c.header("scaling: router --workers 1 vs --workers 2", args)
    rows = []
    results: dict[str, tuple[c.WrkResult, float]] = {}
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        cases = [
            ("w1 pinned (router c0; upstream+wrk c1)", 1, True),
            ("w1 unpinned", 1, False),
            ("w2 unpinned", 2, False),
        ]
        for name, workers, pinned in cases:
            aux = c.AUX_CPU if pinned else None
            up = c.start_upstream(stack, cpus=aux)
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
                cpus=aux,
                watch=watch,
                repeat=args.repeat,
            )
            router_cpu = sum(v for k, v in r.cpu.items() if k.startswith("worker"))
            results[name] = (r, router_cpu)
            per_core = r.rps / (router_cpu / 100.0) if router_cpu > 0 else 0.0
            rows.append(
                [
                    name,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.errors + r.non2xx,
                    f"{router_cpu:.0f}%",
                    per_core,
                    c.cpu_note(r),
                    bottleneck(r, router_cpu, workers),
                ]
            )
            print(f"  {name}: {r.rps:,.0f} req/s [{c.cpu_note(r)}]", flush=True)
            stack.stop(router)
            stack.stop(up)
    heads = [
        "case",
        "req/s",
        "p50 ms",
        "p99 ms",
        "err",
        "router CPU",
        "req/s per router core",
        "CPU per process",
        "limit",
    ]
    print(c.table(heads, rows, f"## {args.conns} connections"))
    w1, w2, w2_cpu = results["w1 unpinned"][0], *results["w2 unpinned"]
    w1p, w1p_cpu = results["w1 pinned (router c0; upstream+wrk c1)"]
    eff1 = w1p.rps / (w1p_cpu / 100.0)
    eff2 = w2.rps / (w2_cpu / 100.0)
    ratios = [
        ["workers 2 / workers 1, both unpinned (measured)", c.ratio(w2.rps, w1.rps)],
        ["workers 2 unpinned / workers 1 pinned (measured)", c.ratio(w2.rps, w1p.rps)],
        ["efficiency of 2 workers vs 1 (req/s per router core)", c.ratio(eff2, eff1)],
        ["2-core projection: 2 workers with a core each / 1 worker", c.ratio(2 * eff2, w1p.rps)],
    ]
    print(c.table(["ratio", "value"], ratios, "## Scaling"))
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
