"""The added latency of a request that fails over, vs one that does not.

    .venv/bin/python bench/failover_cost.py            # 10 s cells, 1 and 64 connections
    .venv/bin/python bench/failover_cost.py --quick

Each scenario is a router (core 0) with two providers and pinned ``priority`` routing, hedging
off and a breaker threshold of 10^9 faults, so the first provider is tried on every request:

* no failover: the healthy upstream first (the broken one second, never reached);
* refused first: the first provider is a free loopback port nothing listens on (ECONNREFUSED);
* HTTP 500 first: the first provider answers every call with HTTP 500 and a JSON-RPC error.

The healthy and the 500 upstreams and wrk share core 1. The router's counters confirm that every
request made two attempts (``lasso_upstream_attempts_total``, ``lasso_failovers_total``).
"""

from __future__ import annotations

import argparse
import sys

import lib as c

ROUTING = {
    "default_strategy": "priority",
    "hedge": {"enabled": False},
    "max_attempts": 3,
    "breaker": {"failure_threshold": 1_000_000_000},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--conns", default="1,64", help="comma-separated connection counts")
    args = parser.parse_args()
    c.apply_quick(args)
    c.require("wrk")
    c.pin_self()
    conns = [int(x) for x in args.conns.split(",")]
    c.header("failover_cost: a request that fails over vs one that does not", args)
    rows = []
    res: dict[tuple[str, int], c.WrkResult] = {}
    notes = []
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        good = c.start_upstream(stack)
        bad500 = c.start_upstream(stack, mode="fail500")
        refused = f"http://{c.HOST}:{c.free_port()}"  # nothing listens there
        scenarios = {
            "no failover": [("good", good.url, 1), ("refused", refused, 2)],
            "refused first": [("refused", refused, 1), ("good", good.url, 2)],
            "HTTP 500 first": [("http500", bad500.url, 1), ("good", good.url, 2)],
        }
        for name, providers in scenarios.items():
            config = c.router_config(
                [{"id": pid, "url": url, "priority": prio} for pid, url, prio in providers],
                routing=ROUTING,
            )
            router = c.start_router(stack, config)
            url = c.router_url(router)
            c.check_ok(url)
            for n in conns:
                before = c.metrics(router)
                r = c.run_wrk(
                    stack,
                    url,
                    c.BLOCK_NUMBER,
                    conns=n,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    watch={"router": router},
                    repeat=args.repeat,
                )
                after = c.metrics(router)
                res[(name, n)] = r
                outcomes = c.request_outcomes(before, after)
                calls = sum(outcomes.values())
                attempts = {
                    k.split("{", 1)[1].rstrip("}"): int(v - before.get(k, 0.0))
                    for k, v in after.items()
                    if k.startswith("lasso_upstream_attempts_total{") and v - before.get(k, 0.0)
                }
                failovers = c.metric_sum(after, "lasso_failovers_total") - c.metric_sum(
                    before, "lasso_failovers_total"
                )
                per_call = sum(attempts.values()) / calls if calls else 0.0
                notes.append(f"{name} c={n}: outcomes {outcomes}; attempts {attempts}")
                rows.append(
                    [
                        name,
                        n,
                        r.rps,
                        r.p50_ms,
                        r.p99_ms,
                        f"{per_call:.2f}",
                        f"{100 * failovers / calls if calls else 0:.0f}%",
                        r.errors + r.non2xx,
                        c.cpu_note(r),
                    ]
                )
                print(
                    f"  {name} c={n}: {r.rps:,.0f} req/s p50 {r.p50_ms:.3f} ms p99 "
                    f"{r.p99_ms:.3f} ms attempts/call {per_call:.2f} [{c.cpu_note(r)}]",
                    flush=True,
                )
            stack.stop(router)
    heads = [
        "scenario",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "attempts/call",
        "failed over",
        "err",
        "CPU",
    ]
    print(c.table(heads, rows, "## Failover"))
    rows = []
    for name in ("refused first", "HTTP 500 first"):
        for n in conns:
            base, r = res[("no failover", n)], res[(name, n)]
            rows.append(
                [
                    name,
                    n,
                    c.delta_us(r.p50_ms, base.p50_ms),
                    c.delta_us(r.p99_ms, base.p99_ms),
                    c.ratio(r.rps, base.rps),
                ]
            )
    print(
        c.table(
            ["scenario", "conns", "added p50", "added p99", "req/s vs no failover"],
            rows,
            "## Cost of one failover",
        )
    )
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
