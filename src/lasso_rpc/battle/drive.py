"""The timed part of a run: workloads and chaos side by side, sent the way the contender reaches
the providers (through the router, straight to one provider, or through a client library in
the Node sidecar), until the longest workload ends; then chaos is cut short (and reverted).

Every unary workload gets its own ``random.Random`` drawn in scenario order, so the router's
load generator and a contender's sidecar send the same schedule for the same seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from lasso_rpc.battle.contenders.choice import Contender
from lasso_rpc.battle.contenders.sidecar import Sidecar
from lasso_rpc.battle.contenders.spec import ContenderRecord, SidecarSpec, schedule_of
from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.load.loadgen import LoadStats, run_workload
from lasso_rpc.battle.load.subscribe_workload import SubscribeWorkload
from lasso_rpc.battle.load.subscribers import run_subscribers
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.battle.measure.collector import Collector
from lasso_rpc.battle.measure.validity import LoadSummary
from lasso_rpc.battle.records import RequestRecord, SubscriptionRecord
from lasso_rpc.battle.spec import ProgressFn, ScenarioSpec

__all__ = ["Drive", "DriveResult", "drive"]

#: Chaos actions that act on the router itself: nothing to do for a contender without one.
ROUTER_ONLY_ACTIONS = frozenset({"open_circuit_breaker", "kill_router_node"})
_TELEMETRY_WAIT_S = 3.0  # after the load: how long to wait for the router's last events


@dataclass(slots=True)
class DriveResult:
    subscriptions: list[SubscriptionRecord] = field(default_factory=list)
    loads: list[LoadSummary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Drive:
    """What one run sends, and where; ``prepare`` starts what must be up before the clock."""

    def __init__(
        self,
        sc: ScenarioSpec,
        contender: Contender,
        ctx: ScenarioContext,
        reach_urls: dict[str, str],
        ws_urls: dict[str, str],
        chain_id: int,
        rng: random.Random,
        progress: ProgressFn | None,
    ) -> None:
        self.sc = sc
        self.contender = contender
        self.ctx = ctx
        self.reach_urls = reach_urls
        self.ws_urls = ws_urls
        self.chain_id = chain_id
        self.progress = progress
        self.rngs = [
            None if isinstance(w, SubscribeWorkload) else random.Random(rng.random())
            for w in sc.workloads
        ]
        self.sidecars: dict[int, Sidecar] = {}
        #: Sees every answer body the load generator gets (``measure.staleness.ChainTruth``).
        self.inspect: Callable[[float, bytes], None] | None = None

    async def prepare(self, stack: contextlib.AsyncExitStack) -> None:
        c = self.contender
        if not c.is_client:
            return
        targets = list(self.reach_urls.items())
        for i, w in enumerate(self.sc.workloads):
            rng = self.rngs[i]
            if isinstance(w, SubscribeWorkload) or rng is None:
                continue
            spec = SidecarSpec.of(
                c.kind,  # type: ignore[arg-type]
                targets,
                schedule_of(w, rng),
                chain_id=self.chain_id,
                timeout_ms=int(w.request_timeout_s * 1000),
                options=c.options,
            )
            sidecar = await Sidecar.launch(spec)
            stack.push_async_callback(sidecar.aclose)
            self.sidecars[i] = sidecar


async def drive(plan: Drive, collector: Collector) -> DriveResult:
    """Run the workloads and chaos of ``plan`` (see the module docstring)."""
    sc, ctx, c = plan.sc, plan.ctx, plan.contender
    out = DriveResult()
    actions = [a for a in sc.chaos_actions if c.is_router or a.action not in ROUTER_ONLY_ACTIONS]
    skipped = sorted({a.action for a in sc.chaos_actions} - {a.action for a in actions})
    if skipped:
        out.notes.append(f"chaos {', '.join(skipped)} acts on the router: not applied")
    total_s = sc.load_s
    async with asyncio.TaskGroup() as tg:
        chaos_tasks = [tg.create_task(a.run(ctx)) for a in actions]
        helpers: list[asyncio.Task[Any]] = []
        if "system" in sc.collect_names and c.is_router:
            helpers.append(tg.create_task(collector.sample_system()))
        if c.is_router and ctx.router_host.bus is None:
            helpers.append(tg.create_task(ctx.forward_chaos_events()))
        if plan.progress is not None:
            helpers.append(tg.create_task(_tick(ctx, total_s, plan.progress)))
        loads: list[asyncio.Task[Any]] = [
            tg.create_task(job)
            for job in (_job(plan, i, w, collector, out) for i, w in enumerate(sc.workloads))
            if job is not None
        ]
        for done in await asyncio.gather(*loads):
            if isinstance(done, list):
                out.subscriptions.extend(done)
            elif isinstance(done, LoadSummary):
                out.loads.append(done)
        for t in chaos_tasks:
            t.cancel()
        await asyncio.gather(*chaos_tasks, return_exceptions=True)
        if c.is_router:
            await _catch_up(collector)
        await asyncio.sleep(0.2)  # let the last events arrive (subprocess event stream)
        for helper in helpers:
            helper.cancel()
    out.loads.sort(key=lambda x: x.workload)
    return out


def _job(
    plan: Drive, i: int, w: Workload | SubscribeWorkload, collector: Collector, out: DriveResult
) -> Coroutine[Any, Any, Any] | None:
    c, ctx = plan.contender, plan.ctx
    if isinstance(w, SubscribeWorkload):
        if c.is_client:
            out.notes.append(f"workload {i} (subscribe) is not sent through {c.kind}")
            return None
        if c.kind == "direct":
            assert c.provider is not None
            url = plan.ws_urls[c.provider]
        else:
            url = ctx.router_url.replace("http", "ws", 1) + w.path
        truth_url = None
        if ctx.fleet is None and ctx.provider_urls:
            truth_url = next(iter(ctx.provider_urls.values()))  # a node itself, not the router
        return run_subscribers(
            url,
            count=w.count,
            kind=w.kind,  # type: ignore[arg-type]
            duration_s=w.duration_s,
            filter=w.filter,
            chain=ctx.fleet.chain if ctx.fleet is not None else None,
            truth_url=truth_url,
        )
    rng = plan.rngs[i]
    assert rng is not None
    if c.is_client:
        return _client_load(plan, i, collector)
    base_url = ctx.router_url
    record: Callable[[RequestRecord], None] = collector.record
    if c.kind == "direct":
        assert c.provider is not None
        pid = c.provider
        base_url = plan.ws_urls[pid] if w.transport == "ws" else plan.reach_urls[pid]
        w = dataclasses.replace(w, target_path="/")
        record = _as_provider(collector.record, pid)
    return _router_load(w, i, base_url, ctx.t0, rng, record, plan.inspect)


async def _router_load(
    w: Workload,
    i: int,
    base_url: str,
    t0: float,
    rng: random.Random,
    on_record: Callable[[RequestRecord], None],
    inspect: Callable[[float, bytes], None] | None = None,
) -> LoadSummary:
    stats: LoadStats = await run_workload(
        w, base_url=base_url, clock_start=t0, rng=rng, on_record=on_record, inspect=inspect
    )
    return LoadSummary(
        workload=i,
        sender="loadgen",
        transport=w.transport,
        sent=stats.sent,
        completed=stats.completed,
        cancelled=stats.cancelled,
        delayed_by_cap=stats.delayed_by_cap,
        generator_lag_ms_p99=round(stats.generator_lag_ms_p99, 3),
        generator_lag_ms_max=round(stats.generator_lag_ms_max, 3),
    )


async def _client_load(plan: Drive, i: int, collector: Collector) -> LoadSummary:
    sidecar = plan.sidecars[i]
    kind = plan.contender.kind
    await sidecar.go(plan.ctx.t0)
    async for rec in sidecar:
        collector.record(_from_client(rec, kind))
    s = sidecar.summary
    assert s is not None
    return LoadSummary(
        workload=i,
        sender="sidecar",
        transport=kind,
        sent=s.sent,
        completed=s.ok + s.errors,
        cancelled=s.cancelled,
        delayed_by_cap=0,
        generator_lag_ms_p99=None,
        generator_lag_ms_max=round(s.max_send_lag_ms, 3),
    )


def _from_client(r: ContenderRecord, kind: str) -> RequestRecord:
    """A client library's record as a workload record (its error class named by library)."""
    return RequestRecord(
        r.method,
        kind,
        r.intended_s,
        r.start_s,
        r.end_s,
        "ok" if r.ok else "error",
        None if r.ok else _client_error(kind, r.error_class),
        r.provider,
        r.attempts or 0,
    )


def _client_error(kind: str, error_class: str | None) -> str:
    if error_class in ("timeout", "cancelled"):
        return error_class
    return f"{kind}:{error_class or 'Error'}"


def _as_provider(
    record: Callable[[RequestRecord], None], pid: str
) -> Callable[[RequestRecord], None]:
    """Records of requests sent straight to ``pid`` (no include_meta to name it)."""

    def on_record(r: RequestRecord) -> None:
        record(dataclasses.replace(r, provider=pid, attempts=1))

    return on_record


async def _catch_up(collector: Collector) -> None:
    """Until the router's events cover every request it answered (or a short deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _TELEMETRY_WAIT_S
    while collector.router_requests < collector.answered_requests and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _tick(ctx: ScenarioContext, total_s: float, progress: ProgressFn) -> None:
    while True:
        progress(min(ctx.now_s(), total_s), total_s)
        await asyncio.sleep(0.25)
