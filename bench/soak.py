"""Soak: a steady open-loop rate through the router for minutes; does its memory grow?

    .venv/bin/python bench/soak.py                     # 10 minutes at 1000 req/s
    .venv/bin/python bench/soak.py --minutes 2 --rate 1000

The router (one worker, core 0, started through ``servers/router.py`` for its live-object count)
serves a mix of reads (``eth_blockNumber``, ``eth_getBalance``, ``eth_call``, and the locally
answered ``eth_chainId``) from the fast upstream on core 1. The generator runs in this process
on core 1: ``lasso_rpc.battle.load.loadgen.run_workload`` (open loop, latency from the intended send
time, requests sent with ``?include_meta=body``) when it is importable, else a small
constant-rate client on ``HttpPoolTransport`` (``--generator simple``).

Router RSS is sampled every ``--sample-every`` seconds (10). The first 20 % of the run is
warm-up. Reported: RSS growth from the first post-warm-up sample to the last, and the slope of
a least-squares line through the post-warm-up samples (MB/min).

``--stall-upstream 10:1.5`` freezes the upstream for 1.5 s at t=10 s (fault injection; see
"Router bug found under load" in docs/performance.md).

Exit status: 0 ok; 1 RSS grew more than ``--max-growth`` % (5); 2 more than ``--max-errors``
% (1) of the requests failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvloop

import lib as c

MIX = {"eth_blockNumber": 5, "eth_getBalance": 3, "eth_call": 2, "eth_chainId": 1}


@dataclass
class Tally:
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    hist: Any = None

    def __post_init__(self) -> None:
        from hdrh.histogram import HdrHistogram

        self.hist = HdrHistogram(1, 120_000_000, 3)  # µs

    def add(self, ok: bool, error: str | None, latency_ms: float) -> None:
        if ok:
            self.ok += 1
        else:
            key = error or "error"
            self.errors[key] = self.errors.get(key, 0) + 1
        self.hist.record_value(max(1, int(latency_ms * 1000)))

    @property
    def total(self) -> int:
        return self.ok + sum(self.errors.values())

    def pct(self, q: float) -> float:
        return float(self.hist.get_value_at_percentile(q)) / 1000 if self.total else 0.0


@dataclass(frozen=True)
class Sample:
    t_s: float
    rss_mb: float
    objects: int
    requests: int
    errors: int
    other_cpu: float  # % of one core used outside router, upstream and generator since the last


class Sampler:
    """Router RSS and live objects, plus the CPU the rest of the machine took meanwhile."""

    def __init__(self, router: c.Server, upstream: c.Server, tally: Tally) -> None:
        import psutil

        self.router = router
        self.upstream = upstream
        self.rss_proc = psutil.Process(router.child.pid)
        self.ours = [*router.processes(), *upstream.processes(), psutil.Process()]
        self.tally = tally
        self.t0 = time.monotonic()
        self.last = (self.t0, c.machine_busy_s(), c.cpu_seconds(self.ours))

    def take(self) -> Sample:
        stats = c.router_stats(self.router)
        now, busy, ours = time.monotonic(), c.machine_busy_s(), c.cpu_seconds(self.ours)
        t, b, o = self.last
        self.last = (now, busy, ours)
        other = 100 * max((busy - b) - (ours - o), 0.0) / max(now - t, 1e-6)
        tally = self.tally
        return Sample(
            now - self.t0,
            self.rss_proc.memory_info().rss / 2**20,
            stats["objects"],
            tally.total,
            sum(tally.errors.values()),
            other,
        )


async def run_loadgen(base: str, rate: float, seconds: float, tally: Tally) -> str:
    from lasso_rpc.battle.load.loadgen import run_workload
    from lasso_rpc.battle.load.workload import Workload

    wl = Workload.constant(rate, seconds).mix(MIX).path(f"/rpc/{c.CHAIN}")
    wl = wl.concurrency(1024).timeout_s(10)

    def on_record(rec: Any) -> None:
        tally.add(rec.outcome != "error", rec.error_class, rec.latency_ms)

    stats = await run_workload(
        wl, base_url=base, clock_start=time.monotonic(), rng=random.Random(1), on_record=on_record
    )
    return (
        f"lasso_rpc.battle.load.loadgen: sent {stats.sent:,}, max in flight {stats.max_in_flight}, "
        f"delayed by cap {stats.delayed_by_cap}, generator lag p99 {stats.generator_lag_ms_p99:.2f}"
        f" ms (max {stats.generator_lag_ms_max:.1f} ms)"
    )


async def run_simple(base: str, rate: float, seconds: float, tally: Tally) -> str:
    """Constant rate, open loop: every request at its slot, latency from the slot."""
    from lasso_rpc.transport import HttpPoolTransport

    transport = HttpPoolTransport(f"{base}/rpc/{c.CHAIN}", pool_size=1024)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()
    t0 = time.monotonic()
    interval = 1.0 / rate
    n_total = int(seconds * rate)
    lag_max = 0.0

    def finish(intended: float) -> Callable[[asyncio.Task[Any]], None]:
        def done(task: asyncio.Task[Any]) -> None:
            pending.discard(task)
            latency = (time.monotonic() - intended) * 1000
            if task.cancelled():
                tally.add(False, "cancelled", latency)
            elif task.exception() is not None:
                tally.add(False, type(task.exception()).__name__, latency)
            else:
                resp = task.result()
                ok = resp.status == 200 and b'"result"' in resp.body
                tally.add(ok, None if ok else f"http {resp.status}", latency)

        return done

    try:
        for i in range(n_total):
            intended = t0 + i * interval
            now = time.monotonic()
            if intended > now:
                await asyncio.sleep(intended - now)
            else:
                lag_max = max(lag_max, now - intended)
            task = loop.create_task(transport.post(c.BLOCK_NUMBER, timeout_s=10))
            pending.add(task)
            task.add_done_callback(finish(intended))
        if pending:
            await asyncio.wait(list(pending))
    finally:
        for task in list(pending):
            task.cancel()
        await transport.aclose()
    return (
        f"simple constant-rate client (eth_blockNumber only), max send lag {1000 * lag_max:.1f} ms"
    )


async def soak(args: argparse.Namespace, sampler: Sampler, samples: list[Sample]) -> str:
    tally = args.tally
    seconds = args.minutes * 60
    use_loadgen = args.generator == "loadgen"
    if args.generator == "auto":
        try:
            import lasso_rpc.battle.load.loadgen  # noqa: F401

            use_loadgen = True
        except ImportError:
            use_loadgen = False
    gen = run_loadgen if use_loadgen else run_simple

    async def sample_forever() -> None:
        while True:
            s = await asyncio.to_thread(sampler.take)
            samples.append(s)
            print(
                f"  t={s.t_s:6.0f}s  rss {s.rss_mb:7.1f} MB  objects {s.objects:>9,}  "
                f"requests {s.requests:>9,}  errors {s.errors:,}  p99 {tally.pct(99):.2f} ms  "
                f"other CPU {s.other_cpu:.0f}%",
                flush=True,
            )
            await asyncio.sleep(args.sample_every)

    task = asyncio.create_task(sample_forever())
    if args.stall_upstream:
        # Fault injection: SIGSTOP the upstream we started, SIGCONT it later (by its pid).
        at, length = (float(x) for x in args.stall_upstream.split(":"))
        pid = sampler.upstream.child.pid
        loop = asyncio.get_running_loop()
        loop.call_later(at, os.kill, pid, signal.SIGSTOP)
        loop.call_later(at + length, os.kill, pid, signal.SIGCONT)
    try:
        note = await gen(sampler.router.url, args.rate, seconds, tally)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    samples.append(sampler.take())  # one last sample at the very end
    return note


def breaker_events(router: c.Server, t0_wall: float) -> list[list[object]]:
    """``breaker.changed`` events from the router's JSON log, seconds from the run's start."""
    rows: list[list[object]] = []
    for line in router.child.log_text().splitlines():
        if "breaker.changed" not in line:
            continue
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ev = json.loads(line)
            rows.append(
                [
                    f"{ev['ts'] - t0_wall:.1f}",
                    ev["provider"],
                    f"{ev['from_state']} → {ev['to_state']}",
                    ev["reason"],
                ]
            )
    return rows


def slope_per_min(points: list[Sample]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [p.t_s / 60 for p in points]
    ys = [p.rss_mb for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-growth", type=float, default=5.0, help="% RSS growth allowed")
    parser.add_argument("--max-errors", type=float, default=1.0, help="% failed requests allowed")
    parser.add_argument("--generator", choices=["auto", "loadgen", "simple"], default="auto")
    parser.add_argument(
        "--stall-upstream",
        metavar="AT:SECONDS",
        help="freeze the upstream (SIGSTOP) at AT s for SECONDS s: the single-provider stall",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = parser.parse_args()
    args.tally = Tally()
    c.pin_self()
    c.header(f"soak: {args.rate:g} req/s open loop for {args.minutes:g} min, router RSS")
    samples: list[Sample] = []
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        up = c.start_upstream(stack)
        router = c.start_router(
            stack, c.router_config([{"id": "up", "url": up.url}]), instrumented="default"
        )
        c.check_ok(c.router_url(router))
        before = c.metrics(router)
        t0_wall = time.time()
        note = uvloop.run(soak(args, Sampler(router, up, args.tally), samples))
        after = c.metrics(router)
        breakers = breaker_events(router, t0_wall)
        if breakers or args.tally.errors:
            stack.keep()
            print(f"(errors or breaker changes: logs kept in {stack.tmp})")
    tally: Tally = args.tally
    warm = args.minutes * 60 * 0.2
    post = [s for s in samples if s.t_s >= warm]
    if len(post) < 2:
        post = samples[-2:]
    first, last = post[0], post[-1]
    growth = 100 * (last.rss_mb - first.rss_mb) / first.rss_mb
    slope = slope_per_min(post)
    total = tally.total
    err_pct = 100 * sum(tally.errors.values()) / total if total else 100.0
    rows = [
        [f"{s.t_s:.0f}", f"{s.rss_mb:.1f}", s.objects, s.requests, s.errors, f"{s.other_cpu:.0f}%"]
        for s in samples
    ]
    heads = ["t s", "RSS MB", "live objects", "requests done", "errors", "other CPU"]
    print(c.table(heads, rows, "## Samples"))
    if breakers:
        print(c.table(["t s", "provider", "breaker", "reason"], breakers, "## Breaker changes"))
    rows = [
        ["generator", note],
        ["requests", f"{total:,} ({total / (args.minutes * 60):,.0f}/s achieved)"],
        ["errors", f"{sum(tally.errors.values()):,} ({err_pct:.3f}%) {tally.errors or ''}"],
        [
            "latency p50 / p99 / p99.9 / max",
            f"{tally.pct(50):.2f} / {tally.pct(99):.2f} / {tally.pct(99.9):.2f} / "
            f"{tally.hist.get_max_value() / 1000:.1f} ms",
        ],
        ["router-side outcomes", str(c.request_outcomes(before, after))],
        ["warm-up", f"first {warm:.0f} s (20 %)"],
        [
            "RSS first post-warm-up → last",
            f"{first.rss_mb:.1f} → {last.rss_mb:.1f} MB (t={first.t_s:.0f}s → {last.t_s:.0f}s)",
        ],
        ["RSS growth", f"{growth:+.2f}% (limit {args.max_growth:g}%)"],
        ["RSS slope (least squares, post-warm-up)", f"{slope:+.3f} MB/min"],
        ["live objects first post-warm-up → last", f"{first.objects:,} → {last.objects:,}"],
        ["max other CPU in a sample interval", f"{max(x.other_cpu for x in samples):.0f}%"],
    ]
    print(c.table(["measure", "value"], rows, "## Soak summary"))
    if growth > args.max_growth:
        print(f"\nFAIL: RSS grew {growth:.2f}% > {args.max_growth:g}%")
        return 1
    if err_pct > args.max_errors:
        print(f"\nFAIL: {err_pct:.3f}% of requests failed > {args.max_errors:g}%")
        return 2
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
