"""No coordinated omission: a router that stalls for 2 s cannot hide the stall from the workload.

The router runs as a real subprocess in front of the mock fleet (in this process) and is frozen
with SIGSTOP from t=1.5 s to t=3.5 s while 100 req/s arrive. Two runs share the stall:

- open loop (the default): every request is sent on time; p99 latency shows the stall;
- a closed-loop client (one request at a time, ``concurrency(1)``): its requests pile up behind
  the stuck one. Our latency still runs from the intended time and shows the stall; the service
  time from the actual send — what a closed-loop benchmark reports — shows one slow request and
  hides the rest.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
from pathlib import Path

import pytest

from lasso_rpc.battle.load.loadgen import LoadStats, run_workload
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_process import RouterProcess
from lasso_rpc.battle.records import RequestRecord
from tests.conftest import fleet_config

pytestmark = pytest.mark.battle

STALL_AT_S, RESUME_AT_S, DURATION_S, RATE = 1.5, 3.5, 5.0, 100


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


async def test_a_router_stall_shows_in_p99_latency(fleet: MockFleet, tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(fleet_config(fleet, server={"log_level": "warning"}))
    async with RouterProcess(config, startup_timeout_s=20) as node:
        assert node.worker_pids == [node.pid]
        url = node.url
        loop = asyncio.get_running_loop()
        base = Workload.constant(RATE, DURATION_S, "eth_getBalance").timeout_s(15)
        open_records: list[RequestRecord] = []
        closed_records: list[RequestRecord] = []
        t0 = loop.time() + 0.05

        async def freeze() -> None:
            await asyncio.sleep(t0 + STALL_AT_S - loop.time())
            node.send_signal(signal.SIGSTOP)
            await asyncio.sleep(t0 + RESUME_AT_S - loop.time())
            node.send_signal(signal.SIGCONT)

        async def load(w: Workload, out: list[RequestRecord]) -> LoadStats:
            return await run_workload(
                w, base_url=url, clock_start=t0, rng=random.Random(1), on_record=out.append
            )

        try:
            async with asyncio.TaskGroup() as tg:
                open_run = tg.create_task(load(base, open_records))
                closed_run = tg.create_task(load(base.concurrency(1), closed_records))
                tg.create_task(freeze())
        finally:
            node.send_signal(signal.SIGCONT)

    open_stats, closed_stats = open_run.result(), closed_run.result()
    n = int(RATE * DURATION_S)
    for stats, records in ((open_stats, open_records), (closed_stats, closed_records)):
        assert stats.sent == len(records) == n
        assert all(r.outcome == "ok" for r in records), {r.error_class for r in records}
    stall_s = RESUME_AT_S - STALL_AT_S

    open_p99 = p99([r.latency_ms for r in open_records])
    closed_latency_p99 = p99([r.latency_ms for r in closed_records])
    closed_service_p99 = p99([r.service_ms for r in closed_records])
    stalled = [r for r in open_records if STALL_AT_S <= r.intended_s < RESUME_AT_S]
    print(
        f"\nopen loop: p99 latency {open_p99:.0f} ms, send lag p99"
        f" {open_stats.generator_lag_ms_p99:.1f} ms, max in flight {open_stats.max_in_flight}"
        f"\nclosed loop (concurrency 1): p99 latency from intended {closed_latency_p99:.0f} ms,"
        f" p99 service time {closed_service_p99:.1f} ms, delayed by cap {closed_stats.delayed_by_cap}"
    )

    # Open loop: the frozen router did not hold the sends back; the stall is in the latency.
    # (Right after SIGCONT the mock fleet, in this process, takes the whole backlog at once and
    # may delay a few sends of both runs; those still count from their intended time.)
    assert open_stats.delayed_by_cap == 0
    assert all(r.start_s - r.intended_s < 0.1 for r in stalled)
    assert open_stats.max_in_flight >= 150  # ≈ 200 requests were due while the router was frozen
    assert open_p99 >= 0.75 * stall_s * 1000
    assert len(stalled) >= 199 and sum(r.latency_ms > 500 for r in stalled) >= 140

    # Closed loop: the same stall, one request at a time.
    assert closed_stats.max_in_flight == 1 and closed_stats.delayed_by_cap >= 150
    assert closed_latency_p99 >= 0.75 * stall_s * 1000  # from intended: still visible
    assert closed_service_p99 < 250  # from the actual send: hidden
    assert sum(r.service_ms > 1000 for r in closed_records) == 1  # a single slow request
    assert closed_latency_p99 - closed_service_p99 >= 0.6 * stall_s * 1000
