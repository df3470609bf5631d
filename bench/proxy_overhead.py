"""What the router costs per request, next to nginx and a bare aiohttp.web server.

    .venv/bin/python bench/proxy_overhead.py               # 10 s cells, about 3 minutes
    .venv/bin/python bench/proxy_overhead.py --quick       # 3 s smoke run
    .venv/bin/python bench/proxy_overhead.py --profile 15  # + py-spy hot spots of the router

Rows, each at 1 and 64 connections (wrk -t1, body ``eth_blockNumber``):

* direct: wrk → the fast upstream (upstream on core 1, wrk on core 0);
* router (default config): ``python -m lasso_rpc serve --workers 1`` with nothing but one
  provider configured, i.e. strategy load-balanced, hedging on (after p90), breaker defaults;
* router (priority, hedge off): the same with ``default_strategy: priority`` and hedging disabled;
* nginx: a plain keep-alive reverse proxy (1 worker, upstream keepalive 64, access_log off);
* aiohttp.web echo: the bare aiohttp server of issue 2 ("router ≥ 60 % of a bare aiohttp echo").

Proxies and the aiohttp echo run alone on core 0; upstream + wrk share core 1.
Ends with the issues' targets (MET/MISSED); the exit status is 1 when one was missed.
"""

from __future__ import annotations

import argparse
import sys

import lib as c
from lib.targets import Targets

CONNS = (1, 64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="then record the router (default config) with py-spy under 64-connection load",
    )
    args = parser.parse_args()
    c.apply_quick(args)
    c.require("wrk")
    c.pin_self()
    c.header("proxy_overhead: router vs direct vs nginx vs bare aiohttp.web", args)
    results: dict[str, dict[int, c.WrkResult]] = {}

    def cell(name: str, url: str, conns: int, watch: dict[str, c.Server], cpus: str) -> None:
        r = c.run_wrk(
            stack,
            url,
            c.BLOCK_NUMBER,
            conns=conns,
            seconds=args.seconds,
            warmup_s=args.warmup,
            cpus=cpus,
            watch=watch,
            repeat=args.repeat,
        )
        results.setdefault(name, {})[conns] = r
        print(
            f"  {name:<32} c={conns:<3} {r.rps:>9,.0f} req/s  p50 {r.p50_ms:.3f} ms  "
            f"p99 {r.p99_ms:.3f} ms  errors {r.errors + r.non2xx}  [{c.cpu_note(r)}]",
            flush=True,
        )

    notes: list[str] = []
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        up = c.start_upstream(stack, cpus=c.AUX_CPU)
        c.check_ok(up.url + "/")
        for n in CONNS:
            cell("direct", up.url + "/", n, {"upstream": up}, c.SUT_CPU)

        variants = {
            "router (default config)": None,
            "router (priority, hedge off)": {
                "default_strategy": "priority",
                "hedge": {"enabled": False},
            },
        }
        default_router: c.Server | None = None
        for name, routing in variants.items():
            router = c.start_router(
                stack, c.router_config([{"id": "up", "url": up.url}], routing=routing)
            )
            url = c.router_url(router)
            c.check_ok(url)
            before = c.metrics(router)
            for n in CONNS:
                cell(name, url, n, {"router": router, "upstream": up}, c.AUX_CPU)
            after = c.metrics(router)
            outcomes = c.request_outcomes(before, after)
            hedged = c.metric_sum(after, "lasso_hedged_total") - c.metric_sum(
                before, "lasso_hedged_total"
            )
            notes.append(f"{name}: router-side outcomes {outcomes}, hedged {hedged:.0f}")
            if routing is None:
                default_router = router
            else:
                stack.stop(router)

        ng = c.start_nginx(stack, up)  # installs Debian's nginx when it is missing
        c.check_ok(ng.url + "/")
        for n in CONNS:
            cell("nginx", ng.url + "/", n, {"nginx": ng, "upstream": up}, c.AUX_CPU)
        stack.stop(ng)

        echo = c.start_aiohttp_echo(stack)
        c.check_ok(echo.url + "/")
        for n in CONNS:
            cell("aiohttp.web echo", echo.url + "/", n, {"aiohttp": echo}, c.AUX_CPU)
        stack.stop(echo)

        code = print_tables(results, notes)

        if default_router is not None:
            stack.stop(default_router)
        if args.profile > 0:
            profile(stack, up, args.profile)
    return code


def print_tables(results: dict[str, dict[int, c.WrkResult]], notes: list[str]) -> int:
    """Every table, then the targets; the exit code (non-zero when a target was missed)."""
    rows = []
    for name, by_conn in results.items():
        row: list[object] = [name]
        for n in CONNS:
            r = by_conn.get(n)
            row += [r.rps, r.p50_ms, r.p99_ms, r.errors + r.non2xx] if r else ["—"] * 4
        rows.append(row)
    heads = ["server"]
    for n in CONNS:
        heads += [f"req/s c={n}", f"p50 ms c={n}", f"p99 ms c={n}", f"err c={n}"]
    print(c.table(heads, rows, "## Throughput and latency"))

    router = results.get("router (default config)", {})
    rows = []
    for other in ("direct", "nginx", "aiohttp.web echo"):
        if other in results and router:
            rows.append(
                [f"router / {other}", *(ratio_cell(router, results[other], n) for n in CONNS)]
            )
    lean = results.get("router (priority, hedge off)")
    if lean and router:
        rows.append(["lean router / default router", *(ratio_cell(lean, router, n) for n in CONNS)])
    print(c.table(["req/s ratio", *(f"c={n}" for n in CONNS)], rows, "## Ratios"))

    direct = results.get("direct", {}).get(1)
    rows = []
    if direct:
        for name, by_conn in results.items():
            r = by_conn.get(1)
            if name != "direct" and r and "echo" not in name:
                rows.append(
                    [
                        name,
                        r.p50_ms,
                        direct.p50_ms,
                        c.delta_us(r.p50_ms, direct.p50_ms),
                        c.delta_us(r.p99_ms, direct.p99_ms),
                    ]
                )
    print(
        c.table(
            ["proxy", "p50 ms c=1", "direct p50 ms", "added p50", "added p99"],
            rows,
            "## Added latency at 1 connection",
        )
    )

    rows = [[name, c.cpu_note(by_conn[64])] for name, by_conn in results.items() if 64 in by_conn]
    print(
        c.table(
            [
                "server",
                "CPU % of one core during the c=64 cell (other = kernel softirq + foreign load)",
            ],
            rows,
            "## CPU at 64 connections",
        )
    )
    code = print_targets(results)
    for note in notes:
        print(f"- {note}")
    print(
        "- default config = one provider, no routing section: latency-weighted, hedge p95 within a 5 % budget,"
        " breaker threshold 5, pool_size 64, log_level info"
    )
    return code


def print_targets(results: dict[str, dict[int, c.WrkResult]]) -> int:
    """The issues' targets, each with the figure of this run that decides it; the exit code
    (non-zero when one was missed)."""
    router = results.get("router (default config)", {})
    direct = results.get("direct", {})
    echo = results.get("aiohttp.web echo", {})
    targets = Targets()
    if 1 in router and 1 in direct:
        added_us = (router[1].p50_ms - direct[1].p50_ms) * 1000.0
        targets.check(
            "added p50 at 1 connection ≤ 300 µs (issue 2)", f"{added_us:+.0f} µs", added_us <= 300.0
        )
        targets.check(
            "added p50 at 1 connection ≤ 200 µs (issue 6)", f"{added_us:+.0f} µs", added_us <= 200.0
        )
    if 64 in router and 64 in echo:
        share = router[64].rps / echo[64].rps
        targets.check(
            "router ≥ 60 % of a bare aiohttp echo, c=64 (issue 2)", f"{share:.0%}", share >= 0.6
        )
    if 64 in router:
        rps = router[64].rps
        targets.check(
            "router ≥ 9,000 req/s, 1 worker, c=64 (issue 6)", f"{rps:,.0f} req/s", rps >= 9000.0
        )
    return targets.report()


def ratio_cell(a: dict[int, c.WrkResult], b: dict[int, c.WrkResult], n: int) -> str:
    if n in a and n in b:
        return c.ratio(a[n].rps, b[n].rps)
    return "—"


def profile(stack: c.Stack, upstream: c.Server, seconds: float) -> None:
    """py-spy on a router with the default config (started through ``servers/router.py`` so
    that the share of its CPU spent in the garbage collector is measured too)."""
    router = c.start_router(
        stack, c.router_config([{"id": "up", "url": upstream.url}]), instrumented="default"
    )
    pid = router.child.pid
    print(f"\n## Profile: py-spy on the router (pid {pid}) under 64 connections for {seconds:g} s")
    url = c.router_url(router)
    c.run_wrk(stack, url, c.BLOCK_NUMBER, conns=64, seconds=2, warmup_s=0, noise_retries=0)
    spy, out = c.start_py_spy(stack, pid, seconds)
    r = c.run_wrk(
        stack,
        url,
        c.BLOCK_NUMBER,
        conns=64,
        seconds=seconds + 1,
        warmup_s=0,
        watch={"router": router},
        gc_of=router,
        noise_retries=0,
    )
    spy.popen.wait(timeout=seconds + 30)
    print(
        f"(while sampled: {r.rps:,.0f} req/s, p50 {r.p50_ms:.3f} ms; {c.cpu_note(r)}; {r.gc_note})"
    )
    c.print_hot_spots(out)


if __name__ == "__main__":
    sys.exit(main())
