"""Resilience that does not waste provider quota (issue 11): hedges, a hung provider, the default.

    .venv/bin/python bench/quota.py                  # the four cases of issue 11, 20 s each
    .venv/bin/python bench/quota.py --compare        # ... and every strategy with no fault
    .venv/bin/python bench/quota.py --cases nofault,hang --seconds 10

Three mock providers (the battle ``MockProvider`` fleet) answer every call in 50, 100 and 150 ms
(alpha, beta, gamma); the router runs as its own process (``lasso-rpc serve``; ``--in-process``
shares the loop with the load instead) with the default configuration, apart from the mock
chain's provider list and in-flight dedup (off: identical open-loop calls would share attempts,
and what each call cost could not be counted at the providers); the load is ``--rate`` eth_getBalance calls per second, open loop, for
``--seconds`` (latency from the intended send time). eth_getBalance is not a method the router
sends on its own (head polls are eth_blockNumber), so what the providers counted for it, minus
the calls the clients made, is what hedges and retries cost: counted at the upstreams.

Cases (faults at ``--fault-at`` seconds, 7 by default, on alpha, the fastest):

* ``nofault``: upstream sends beyond one per call <= 5 % of calls; p50 within 10 % of alpha's own
  latency (median of 20 direct calls); every provider >= 1 % of the upstream traffic;
* ``hang`` (alpha accepts and never answers): alpha's share of first attempts < 5 % from 2 s
  after the fault to the end; p99 of all calls <= 250 ms; 100 % success;
* ``kill`` (alpha's server stops) and ``http500`` (alpha answers HTTP 500): 100 % success,
  p99 <= 200 ms.

Every figure is printed with its target and a verdict (``lib.targets``); the exit code is 1 when
one is missed.
``--compare`` adds a table of every strategy with no fault (how the default was chosen).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from lasso_rpc.battle import Chaos, MockProvider, Scenario, Workload
from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.providers.mock import MockProvider as RunningMock
from lasso_rpc.battle.testing.helpers import direct_request
from lasso_rpc.config.models import STRATEGIES, RoutingConfig
from lib.targets import Targets

METHOD = "eth_getBalance"
LATENCY = {"alpha": 50, "beta": 100, "gamma": 150}
DEFAULT = RoutingConfig().default_strategy


@dataclass
class Run:
    """One case's figures."""

    case: str
    strategy: str
    requests: int = 0
    success: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    upstream: dict[str, int] = field(default_factory=dict)
    router_hedged: int = 0
    alpha_direct_ms: float = 0.0
    first_share_after: float | None = None
    share_after: float | None = None
    ejections: list[str] = field(default_factory=list)

    @property
    def extra_sends(self) -> int:
        return sum(self.upstream.values()) - self.requests

    def upstream_share(self, pid: str) -> float:
        total = sum(self.upstream.values())
        return self.upstream.get(pid, 0) / total if total else 0.0


def chaos_for(case: str, at_s: float) -> list[Any]:
    if case == "hang":
        return [Chaos.blackhole("alpha", at_s=at_s)]
    if case == "kill":
        return [Chaos.kill_provider("alpha", at_s=at_s)]
    if case == "http500":
        return [Chaos.error_rate("alpha", 1.0, at_s=at_s, mode="http_500")]
    return []


async def run_case(case: str, strategy: str, args: argparse.Namespace) -> Run:
    fleet: dict[str, RunningMock] = {}
    direct: list[float] = []

    async def capture(ctx: ScenarioContext) -> None:
        assert ctx.fleet is not None
        fleet.update({p.id: p for p in ctx.fleet})
        for _ in range(20):  # alpha's own latency, without the router (not eth_getBalance)
            t0 = time.perf_counter()
            await direct_request(ctx, "alpha", "eth_blockNumber")
            direct.append((time.perf_counter() - t0) * 1000.0)

    knobs = {pid: {"latency_ms": ms, "jitter_ms": args.jitter} for pid, ms in LATENCY.items()}
    sc = (
        Scenario(f"quota {case} {strategy}")
        .providers(MockProvider.fleet(**knobs))
        .router(
            strategy=strategy,
            process=not args.in_process,
            head_poll_ms=2000,
            shaping={"dedup": False},  # every call its own attempts, so they count upstream
        )
        .setup(capture)
        .workload(Workload.constant(args.rate, args.seconds, METHOD))
        .chaos(*chaos_for(case, args.fault_at))
        .slo(success_rate=0.0)  # the figures are judged here, not by the battle's SLOs
    )
    result = await sc.run()
    d = result.data
    s = d["summary"]
    run = Run(case, strategy)
    run.requests = s["requests"]
    run.success = s["success_rate"]
    run.p50 = s["latency_ms"]["p50"]
    run.p99 = s["latency_ms"]["p99"]
    run.router_hedged = s["hedged"]
    run.upstream = {pid: p.method_counts.get(METHOD, 0) for pid, p in fleet.items()}
    run.alpha_direct_ms = statistics.median(direct)
    if d["chaos"]:
        run.first_share_after = d["chaos"][0].get("target_first_share")
        run.share_after = d["chaos"][0].get("target_share")
    return run


class Verdicts:
    """Each figure against its target, through the bench suite's ``Targets``."""

    def __init__(self) -> None:
        self.targets = Targets("## Issue 11 targets")

    def check(self, label: str, value: float | None, op: str, target: float, unit: str) -> None:
        if value is None:
            ok, shown = False, "not measured"
        else:
            ok = value <= target if op == "<=" else value < target if op == "<" else value >= target
            shown = f"{value:.4g}{unit}"
        self.targets.check(f"{label} {op} {target:.4g}{unit}", shown, ok)


def judge(run: Run, v: Verdicts) -> None:
    pct = 100.0
    if run.case == "nofault":
        v.check(
            "no fault: upstream sends beyond one per call (hedges), % of calls",
            pct * run.extra_sends / max(run.requests, 1),
            "<=",
            5.0,
            " %",
        )
        v.check(
            f"no fault: p50 of calls (alpha direct: {run.alpha_direct_ms:.1f} ms)",
            run.p50,
            "<=",
            1.1 * run.alpha_direct_ms,
            " ms",
        )
        for pid in LATENCY:
            v.check(
                f"no fault: {pid}'s share of upstream traffic",
                pct * run.upstream_share(pid),
                ">=",
                1.0,
                " %",
            )
        return
    if run.case == "hang":
        v.check(
            "hang: alpha's share of first attempts from 2 s after the hang",
            None if run.first_share_after is None else pct * run.first_share_after,
            "<",
            5.0,
            " %",
        )
    limit = 250.0 if run.case == "hang" else 200.0
    v.check(f"{run.case}: p99 of all calls", run.p99, "<=", limit, " ms")
    v.check(f"{run.case}: success", pct * run.success, ">=", 100.0, " %")


def row(run: Run) -> str:
    shares = " ".join(f"{pid} {100 * run.upstream_share(pid):5.1f}%" for pid in LATENCY)
    hedges = 100 * run.extra_sends / max(run.requests, 1)
    after = "-" if run.first_share_after is None else f"{100 * run.first_share_after:.1f}%"
    return (
        f"| {run.case:<8} | {run.strategy:<16} | {run.requests:>5} | {100 * run.success:7.2f}% |"
        f" {run.p50:6.1f} | {run.p99:6.1f} | {run.extra_sends:>5} ({hedges:4.1f}%) |"
        f" {run.router_hedged:>5} | {after:>6} | {shares} |"
    )


HEAD = (
    "| case     | strategy         | calls | success  |  p50ms |  p99ms | extra sends   |"
    " hedged | alpha first after | upstream share |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--fault-at", type=float, default=7.0)
    parser.add_argument("--jitter", type=float, default=0.0, help="mock latency jitter, ms")
    parser.add_argument("--cases", default="nofault,hang,kill,http500")
    parser.add_argument("--compare", action="store_true", help="every strategy, no fault")
    parser.add_argument("--in-process", action="store_true", help="router in this process")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"# quota: 3 mock providers {LATENCY} ms, {args.rate:g} req/s {METHOD} open loop,"
        f" {args.seconds:g} s per case, faults on alpha at {args.fault_at:g} s; default"
        f" strategy {DEFAULT}; router {'in process' if args.in_process else 'in a process'};"
        f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    runs: list[Run] = []
    for case in args.cases.split(","):
        runs.append(await run_case(case, DEFAULT, args))
        print(row(runs[-1]) if len(runs) > 1 else HEAD + "\n" + row(runs[-1]), flush=True)
    if args.compare:
        print("\n## Every strategy, no fault\n\n" + HEAD, flush=True)
        for strategy in sorted(set(STRATEGIES.values())):
            print(row(await run_case("nofault", strategy, args)), flush=True)
    v = Verdicts()
    for run in runs:
        judge(run, v)
    print()
    return v.targets.report()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
