"""Router throughput with 5 dashboard pages open vs none (goal >= 0.95x).

    .venv/bin/python bench/dashboard_load.py            # 10 s cells, 3 pairs
    .venv/bin/python bench/dashboard_load.py --quick
    .venv/bin/python bench/dashboard_load.py --browsers # real Chromium tabs (their CPU is on
                                                        # core 1, with wrk and the upstream)
    .venv/bin/python bench/dashboard_load.py --browsers --control

The router (core 0, default config, one provider: the fast upstream) serves ``eth_blockNumber``
to wrk at 64 connections. Cells come in pairs, ``--pairs`` of them, in the order none-pages,
pages-none, none-pages, ... (the machine drifts by a few % a minute: a pair's two cells are
neighbours in time, and the alternating order cancels a steady drift rather than charging it to
the pages). The figure is the median of the pairs' ratios. A page is what the dashboard's script does (``servers/dashboard_pages.py``: page and assets,
``/api/chains``, ``/api/providers`` every 2 s, the ``/api/events`` summary stream), or with
``--browsers`` a real headless Chromium tab (``servers/dashboard_browsers.py``). Prints req/s,
p50/p99 and the router's CPU per request of each cell, the ratio with its target and MET/MISSED;
exit 1 on a miss.

``--control`` adds a third cell to each group: the same pages following a second router (on
core 1, with them), so the measured router does no work for them. What that cell loses against
"none" is what the pages cost by merely running on this 2-core machine (Chromium's rendering
shares the caches and memory bandwidth with the router); the pages' cost to the router itself is
then "pages" against "control".
"""

from __future__ import annotations

import argparse
import statistics
import sys

import lib as c
from lib.targets import Targets

TARGET = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--pages", type=int, default=5, help="dashboard pages open")
    parser.add_argument("--conns", type=int, default=64, help="wrk connections")
    parser.add_argument("--pairs", type=int, default=4, help="(none, pages) cell pairs")
    parser.add_argument("--browsers", action="store_true", help="real Chromium tabs")
    parser.add_argument(
        "--control", action="store_true", help="also cells of pages following another router"
    )
    args = parser.parse_args()
    c.apply_quick(args)
    if args.quick:
        args.pairs = min(args.pairs, 2)
    c.require("wrk")
    c.pin_self()
    c.header(f"dashboard_load: router throughput with {args.pages} dashboard pages vs none", args)
    kind = "Chromium tabs" if args.browsers else "emulated pages (servers/dashboard_pages.py)"
    print(f"pages: {kind}; {args.pairs} pairs of cells, median kept; wrk -c{args.conns}")
    script = "dashboard_browsers.py" if args.browsers else "dashboard_pages.py"
    cells: dict[str, list[c.WrkResult]] = {"none": [], "pages": [], "control": []}
    order = ("none", "pages", "control") if args.control else ("none", "pages")
    rows = []
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        upstream = c.start_upstream(stack)
        router = c.start_router(stack, c.router_config([{"id": "up", "url": upstream.url}]))
        url = c.router_url(router)
        c.check_ok(url)
        other = None
        if args.control:
            config = c.router_config([{"id": "up", "url": upstream.url}])
            other = c.start_router(stack, config, cpus=c.AUX_CPU, name="other")
        for i in range(args.pairs):
            for mode in order if i % 2 == 0 else order[::-1]:
                pages = None
                if mode != "none":
                    followed = router if mode == "pages" else other
                    assert followed is not None
                    pages = stack.start(
                        f"pages-{i}",
                        [
                            c.PYTHON,
                            str(c.BENCH_DIR / "servers" / script),
                            followed.url,
                            "--pages",
                            str(args.pages),
                        ],
                        cpus=c.AUX_CPU,
                    )
                    pages.wait_for(r"ready \d+", timeout_s=90)
                r = c.run_wrk(
                    stack,
                    url,
                    c.BLOCK_NUMBER,
                    conns=args.conns,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    watch={
                        "router": router,
                        **({"pages": pages} if pages else {}),
                        **({"other router": other} if other and mode == "control" else {}),
                    },
                )
                if pages is not None:
                    if pages.popen.poll() is not None:
                        raise RuntimeError(f"the pages stopped:\n{pages.log_text()[-2000:]}")
                    stack.stop(pages)
                cells[mode].append(r)
                cpu_us = r.cpu.get("router", 0.0) / 100 / r.rps * 1e6 if r.rps else 0.0
                label = {
                    "none": "no page",
                    "pages": f"{args.pages} pages",
                    "control": f"{args.pages} pages on another router",
                }[mode]
                rows.append([f"{label} #{i + 1}", r.rps, r.p50_ms, r.p99_ms, cpu_us, c.cpu_note(r)])
                print(
                    f"  {label} #{i + 1}: {r.rps:,.0f} req/s p50 {r.p50_ms:.3f} ms "
                    f"p99 {r.p99_ms:.3f} ms router {cpu_us:.1f} µs CPU/req [{c.cpu_note(r)}]",
                    flush=True,
                )
    heads = ["cell", "req/s", "p50 ms", "p99 ms", "router µs CPU/req", "CPU"]
    print(c.table(heads, rows, "## Cells"))
    none = statistics.median(r.rps for r in cells["none"])
    with_pages = statistics.median(r.rps for r in cells["pages"])
    pair_ratios = _pair_ratios(cells, "pages", "none")
    ratio = statistics.median(pair_ratios)

    def cpu_per_req(rs: list[c.WrkResult]) -> float:
        return statistics.median(r.cpu.get("router", 0.0) / 100 / r.rps * 1e6 for r in rs if r.rps)

    cpu_none, cpu_pages = cpu_per_req(cells["none"]), cpu_per_req(cells["pages"])
    print(
        c.table(
            ["figure", "value"],
            [
                ["req/s, no page (median)", none],
                [f"req/s, {args.pages} pages (median)", with_pages],
                ["pages / none, pair by pair", " ".join(f"{r:.3f}" for r in pair_ratios)],
                ["pages / none, median of the pairs", f"{ratio:.3f}"],
                *_control_rows(cells),
                [
                    "router µs CPU per request, none / pages (median; steadier under noise)",
                    f"{cpu_none:.1f} / {cpu_pages:.1f} ({cpu_pages / cpu_none:.3f}x)",
                ],
            ],
            "## Figures",
        )
    )
    targets = Targets()
    targets.check(
        f"throughput with {args.pages} pages / none >= {TARGET}x (median of pairs; issue 14)",
        f"{ratio:.3f}x",
        ratio >= TARGET,
    )
    return targets.report()


def _pair_ratios(cells: dict[str, list[c.WrkResult]], a: str, b: str) -> list[float]:
    """req/s of each ``a`` cell over its group's ``b`` cell (0 when ``b`` served nothing)."""
    return [x.rps / y.rps if y.rps else 0.0 for x, y in zip(cells[a], cells[b], strict=True)]


def _control_rows(cells: dict[str, list[c.WrkResult]]) -> list[list[str]]:
    """With --control: what the pages cost by being on the machine, and to the router itself."""
    if not cells["control"]:
        return []

    def median_ratio(a: str, b: str) -> float:
        return statistics.median(_pair_ratios(cells, a, b))

    return [
        [
            "control (pages on another router) / none, median",
            f"{median_ratio('control', 'none'):.3f}",
        ],
        [
            "pages / control, median (the router's own share)",
            f"{median_ratio('pages', 'control'):.3f}",
        ],
    ]


if __name__ == "__main__":
    sys.exit(main())
