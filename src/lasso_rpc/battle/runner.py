"""Runs one scenario: starts everything, drives load and chaos, collects, analyzes, judges.

setup → providers → router → (workload ∥ chaos) → collect → analyze → SLOs → result.
Everything a run starts is owned by one ``AsyncExitStack`` and torn down on success, failure
or cancellation (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.load.loadgen import run_workload
from lasso_rpc.battle.load.subscribe_workload import SubscribeWorkload
from lasso_rpc.battle.load.subscribers import run_subscribers
from lasso_rpc.battle.measure.analyzer import analyze
from lasso_rpc.battle.measure.collector import Collector
from lasso_rpc.battle.measure.staleness import ChainTruth
from lasso_rpc.battle.providers.anvil import AnvilNode
from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_host import start_router
from lasso_rpc.battle.records import RequestRecord, SubscriptionRecord
from lasso_rpc.battle.report.schema import SCHEMA
from lasso_rpc.battle.result import BattleResult, new_run_id
from lasso_rpc.battle.spec import ProgressFn, ScenarioSpec
from lasso_rpc.battle.testing.helpers import wait_until_ready

__all__ = ["run_scenario"]

CHAIN = "ethereum"


def router_config(
    sc: ScenarioSpec, urls: dict[str, str], token: str, chain_id: int, ws_urls: dict[str, str]
) -> str:
    routing: dict[str, Any] = {"default_strategy": sc.router_opts.strategy, "head_poll_ms": 500}
    routing.update(sc.router_opts.routing)
    doc: dict[str, Any] = {
        "name": f"Battle: {sc.name}",
        "slug": "battle",
        "routing": routing,
        **({"cache": dict(sc.router_opts.cache)} if sc.router_opts.cache else {}),
        "chains": {
            CHAIN: {
                "chain_id": chain_id,
                "providers": [
                    {"id": pid, "url": url, "priority": i + 1}
                    | ({"ws_url": ws_urls[pid]} if pid in ws_urls else {})
                    for i, (pid, url) in enumerate(urls.items())
                ],
            }
        },
        "server": {
            "host": "127.0.0.1",
            "port": 0,
            "log_level": "warning",
            "control": {"enabled": True, "token": token},
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _needs_proxy(sc: ScenarioSpec) -> set[str]:
    ids = set(sc.proxied)
    for action in sc.chaos_actions:
        ids |= set(action.proxied_targets())
    if sc.anvil_opts is not None:
        ids |= set(sc.provider_ids())  # real nodes take network chaos only through a proxy
    return ids


async def run_scenario(sc: ScenarioSpec, *, progress: ProgressFn | None = None) -> BattleResult:
    run_id, started_at = new_run_id(sc.slug)
    rng = random.Random(sc.seed)
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        provider_urls, fleet, nodes, chain_id = await _start_providers(sc, stack)
        router_urls = dict(provider_urls)
        ws_urls = _ws_urls(fleet, nodes)
        proxies: dict[str, FaultProxy] = {}
        for pid in sorted(_needs_proxy(sc)):
            parts = urlsplit(provider_urls[pid])
            proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 80)
            await proxy.start()
            stack.push_async_callback(proxy.aclose)
            proxies[pid] = proxy
            router_urls[pid] = proxy.url.rstrip("/") + (parts.path or "/")
            if pid in ws_urls:
                ws_urls[pid] = proxy.ws_url.rstrip("/") + (urlsplit(ws_urls[pid]).path or "/")
        token = secrets.token_hex(16)
        host = await start_router(
            router_config(sc, router_urls, token, chain_id, ws_urls), process=sc.router_opts.process
        )
        stack.push_async_callback(host.aclose)
        ctx = ScenarioContext(
            router_host=host,
            provider_urls=provider_urls,
            control_token=token,
            chain=CHAIN,
            fleet=fleet,
            proxies=proxies,
            nodes=nodes,
            rng=random.Random(rng.random()),
            session=session,
        )
        await wait_until_ready(session, host.url, CHAIN, timeout_s=30.0)
        for hook in sc.setup_hooks:
            extra = await hook(ctx)
            if extra:
                ctx.extra.update(extra)

        t0 = loop.time()
        ctx.t0 = t0
        truth = _truth(sc, fleet, t0)
        collector = Collector(
            start=t0,
            bucket_s=sc.bucket_s,
            keep_raw="raw" in sc.collect_names,
            router_pid=host.pid,
            collect=sc.collect_names,
        )
        stack.push_async_callback(collector.aclose)
        if host.bus is not None:
            collector.attach_bus(host.bus)
        else:
            await collector.attach_stream(host.url.replace("http", "ws", 1) + "/api/events")
        total_s = max(w.duration_s for w in sc.workloads)
        wall0 = time.time()
        subscriptions: list[SubscriptionRecord] = []
        await _drive(subscriptions, sc, ctx, collector, host.url, t0, total_s, rng, progress, truth)
        data = collector.snapshot()
        duration = loop.time() - t0
        truth.close()
        upstream = sum(p.requests_received for p in fleet) if fleet is not None else None
        figures = truth.figures(upstream)

    analysis = analyze(
        data,
        chaos=list(ctx.timeline),
        subscriptions=subscriptions or None,
        duration_s=duration,
        truth=figures,
    )
    assert sc.slos is not None
    verdicts = sc.slos.evaluate(analysis)
    body = analysis.to_dict()
    result = {
        "schema": SCHEMA,
        "id": run_id,
        "passed": bool(verdicts) and all(v.passed for v in verdicts),
        "scenario": sc.to_dict(),
        "started_at": started_at,
        "started_unix": wall0,
        "duration_s": round(duration, 3),
        "slos": [v.to_dict() for v in verdicts],
        **body,
    }
    return BattleResult(result)


def _ws_urls(fleet: Any, nodes: dict[str, Any]) -> dict[str, str]:
    if fleet is not None:
        return {p.id: p.ws_url for p in fleet}
    return {pid: n.ws_url for pid, n in nodes.items()}


async def _start_providers(
    sc: ScenarioSpec, stack: contextlib.AsyncExitStack
) -> tuple[dict[str, str], Any, dict[str, Any], int]:
    if sc.fleet is not None:
        fleet = await MockFleet.start(sc.fleet)
        stack.push_async_callback(fleet.aclose)
        return {p.id: p.url for p in fleet}, fleet, {}, fleet.chain.chain_id
    assert sc.anvil_opts is not None
    opts = sc.anvil_opts
    nodes: dict[str, Any] = {}
    for pid in sc.provider_ids():
        node = AnvilNode(chain_id=opts.chain_id, block_time_s=opts.block_time_s)
        await node.start()
        stack.push_async_callback(node.aclose)
        nodes[pid] = node
    return {pid: n.url for pid, n in nodes.items()}, None, nodes, opts.chain_id


async def _drive(
    subscriptions: list[SubscriptionRecord],
    sc: ScenarioSpec,
    ctx: ScenarioContext,
    collector: Collector,
    url: str,
    t0: float,
    total_s: float,
    rng: random.Random,
    progress: ProgressFn | None,
    truth: ChainTruth,
) -> None:
    """Workloads and chaos in one task group; chaos is cut short (and reverted) at the end."""
    async with asyncio.TaskGroup() as tg:
        chaos_tasks = [tg.create_task(a.run(ctx)) for a in sc.chaos_actions]
        sampler = (
            tg.create_task(collector.sample_system()) if "system" in sc.collect_names else None
        )
        forwarder = (
            tg.create_task(ctx.forward_chaos_events()) if ctx.router_host.bus is None else None
        )
        ticker = tg.create_task(_tick(ctx, total_s, progress)) if progress else None
        loads: list[asyncio.Task[Any]] = []
        for w in sc.workloads:
            if isinstance(w, SubscribeWorkload):
                sub = run_subscribers(
                    url.replace("http", "ws", 1) + w.path,
                    count=w.count,
                    kind=w.kind,  # type: ignore[arg-type]
                    duration_s=w.duration_s,
                    filter=w.filter,
                    chain=ctx.fleet.chain if ctx.fleet is not None else None,
                )
                loads.append(tg.create_task(sub))
            else:
                run = run_workload(
                    w,
                    base_url=url,
                    clock_start=t0,
                    rng=random.Random(rng.random()),
                    on_record=_both(collector.record, truth.record),
                    inspect=truth.inspect if truth.check else None,
                )
                loads.append(tg.create_task(run))
        for done in await asyncio.gather(*loads):
            if isinstance(done, list):
                subscriptions.extend(done)
        for t in chaos_tasks:
            t.cancel()
        await asyncio.gather(*chaos_tasks, return_exceptions=True)
        await asyncio.sleep(0.2)  # let the last events arrive (subprocess event stream)
        for helper in (sampler, forwarder, ticker):
            if helper is not None:
                helper.cancel()


def _truth(sc: ScenarioSpec, fleet: MockFleet | None, t0: float) -> ChainTruth:
    """Counts from the start: client requests, provider calls (counters reset now) and, when
    the scenario reorgs the chain or has a stale-answer SLO, every answer against the chain."""
    if fleet is not None:
        for p in fleet:
            p.reset_counters()
    check = any(a.action == "reorg" for a in sc.chaos_actions) or (
        sc.slos is not None and "max_stale_answers" in sc.slos.targets
    )
    return ChainTruth(fleet.chain if fleet is not None else None, t0, check=check)


def _both(
    a: Callable[[RequestRecord], None], b: Callable[[RequestRecord], None]
) -> Callable[[RequestRecord], None]:
    def both(rec: RequestRecord) -> None:
        a(rec)
        b(rec)

    return both


async def _tick(ctx: ScenarioContext, total_s: float, progress: ProgressFn) -> None:
    while True:
        progress(min(ctx.now_s(), total_s), total_s)
        await asyncio.sleep(0.25)
