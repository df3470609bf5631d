"""One run of a scenario against one contender: start, drive, collect, analyze.

setup → providers → router (router contenders) → (workloads ∥ chaos) → collect → analyze.
Everything a run starts is owned by one ``AsyncExitStack`` and torn down on success, failure
or cancellation (Ctrl-C). ``battle.runner`` runs the contenders one after the other and
assembles the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from lasso_rpc.battle.contenders.choice import Contender
from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.drive import Drive, drive
from lasso_rpc.battle.measure.analysis import Analysis
from lasso_rpc.battle.measure.analyzer import analyze
from lasso_rpc.battle.measure.collector import Collector
from lasso_rpc.battle.measure.data import CollectedData
from lasso_rpc.battle.measure.staleness import ChainTruth
from lasso_rpc.battle.measure.upstream_view import (
    ProviderCalls,
    UpstreamView,
    provider_calls,
    upstream_view,
)
from lasso_rpc.battle.measure.validity import unanswered
from lasso_rpc.battle.providers.anvil import AnvilNode
from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_cluster import ClusterHost, start_cluster
from lasso_rpc.battle.providers.router_host import RouterHost, start_router
from lasso_rpc.battle.router_config import CHAIN, router_config
from lasso_rpc.battle.spec import ProgressFn, ScenarioSpec
from lasso_rpc.battle.testing.helpers import wait_until_ready
from lasso_rpc.observability.events import EventBus

__all__ = ["RunOutcome", "run_once"]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    contender: Contender
    label: str
    analysis: Analysis
    chaos: tuple[Any, ...]  # ChaosRecord values of this run
    duration_s: float
    started_unix: float
    notes: tuple[str, ...] = field(default=())


class NoRouter:
    """The ``RouterHost`` of a run without a router (a provider direct, a client library)."""

    url = ""
    pid = os.getpid()
    bus: EventBus | None = None
    router = None

    async def aclose(self) -> None:
        return None


def _needs_proxy(sc: ScenarioSpec) -> set[str]:
    ids = set(sc.proxied)
    for action in sc.chaos_actions:
        ids |= set(action.proxied_targets())
    if sc.anvil_opts is not None:
        ids |= set(sc.provider_ids())  # real nodes take network chaos only through a proxy
    return ids


async def run_once(
    sc: ScenarioSpec,
    contender: Contender,
    *,
    progress: ProgressFn | None = None,
    on_router: Callable[[str], None] | None = None,
) -> RunOutcome:
    """The scenario against ``contender`` (the same seed: the same schedule and chaos);
    ``on_router(url)`` once its router listens."""
    rng = random.Random(sc.seed)
    loop = asyncio.get_running_loop()
    name = contender.name(sc.router_opts.strategy)
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        provider_urls, fleet, nodes, chain_id = await _start_providers(sc, stack)
        reach_urls = dict(provider_urls)  # what the router (or a contender) talks to
        ws_urls = _ws_urls(fleet, nodes)
        proxies: dict[str, FaultProxy] = {}
        for pid in sorted(_needs_proxy(sc)):
            parts = urlsplit(provider_urls[pid])
            proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 80)
            await proxy.start()
            stack.push_async_callback(proxy.aclose)
            proxies[pid] = proxy
            reach_urls[pid] = proxy.url.rstrip("/") + (parts.path or "/")
            if pid in ws_urls:
                ws_urls[pid] = proxy.ws_url.rstrip("/") + (urlsplit(ws_urls[pid]).path or "/")
        token = secrets.token_hex(16)
        host: RouterHost
        if contender.is_router:
            strategy = contender.strategy or sc.router_opts.strategy
            config = router_config(sc, reach_urls, token, chain_id, ws_urls, strategy=strategy)
            opts = sc.router_opts
            if opts.clustered:  # several nodes (or workers) sharing state: subprocesses
                host = await start_cluster(
                    config, nodes=opts.nodes, workers=opts.workers, state=opts.state
                )
            else:
                host = await start_router(config, process=opts.process)
            stack.push_async_callback(host.aclose)
            if on_router is not None:
                on_router(host.url)
        else:
            host = NoRouter()
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
        notes: list[str] = []
        node_urls = [host.url]
        if isinstance(host, ClusterHost):
            ctx.router_nodes, ctx.redis = list(host.nodes), host.redis
            node_urls = host.node_urls
        if contender.is_router:
            for url in node_urls:
                await wait_until_ready(session, url, CHAIN, timeout_s=30.0)
            for hook in sc.setup_hooks:
                extra = await hook(ctx)
                if extra:
                    ctx.extra.update(extra)
        elif sc.setup_hooks:
            notes.append("setup hooks run for router contenders only")
        plan = Drive(sc, contender, ctx, reach_urls, ws_urls, chain_id, rng, progress)
        await plan.prepare(stack)  # sidecars start before the clock (node takes ~0.5 s)
        before = _counters(fleet)
        t0 = loop.time()
        ctx.t0 = t0
        truth = _truth(sc, fleet, t0)
        stack.callback(truth.close)
        plan.inspect = truth.inspect if truth.check else None
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
        elif isinstance(host, ClusterHost):
            for events_url in host.event_urls:
                await collector.attach_stream(events_url)
        elif contender.is_router:
            await collector.attach_stream(host.url.replace("http", "ws", 1) + "/api/events")
        wall0 = time.time()
        done = await drive(plan, collector)
        notes += done.notes
        data = collector.snapshot()
        after = _counters(fleet)
        duration = loop.time() - t0

    requests = data.client_requests
    received = {p: provider_calls(before[p], after[p]) for p in before if p in after}
    truth.requests = requests
    # Every call the providers got, the router's head polls and cache head checks included.
    calls = sum(n for c in received.values() for n in c.calls.values()) if received else None
    view = _view(sc, data, received, requests, contender) if received else None
    analysis = analyze(
        data,
        chaos=list(ctx.timeline),
        subscriptions=done.subscriptions or None,
        duration_s=duration,
        load_s=sc.load_s,
        loads=done.loads,
        upstream=view,
        router=contender.is_router,
        own_process=contender.is_router and sc.router_opts.process,
        max_generator_lag_ms=sc.max_generator_lag_ms,
        truth=truth.figures(calls),
    )
    return RunOutcome(contender, name, analysis, tuple(ctx.timeline), duration, wall0, tuple(notes))


def _view(
    sc: ScenarioSpec,
    data: CollectedData,
    received: dict[str, ProviderCalls],
    requests: int,
    contender: Contender,
) -> UpstreamView:
    errors: dict[str, int] = {}
    for b in data.client_buckets:
        for k, v in b.errors_by_class.items():
            errors[k] = errors.get(k, 0) + v
    return upstream_view(
        methods=sc.unary_methods(),
        received=received,
        attempts_by_method=data.attempts_by_method if contender.is_router else None,
        requests=requests,
        unanswered=unanswered(errors),
    )


def _truth(sc: ScenarioSpec, fleet: MockFleet | None, t0: float) -> ChainTruth:
    """Answers checked against the chain when the scenario reorgs it or has a stale-answer
    SLO (``measure.staleness``)."""
    check = any(a.action == "reorg" for a in sc.chaos_actions) or (
        sc.slos is not None and "max_stale_answers" in sc.slos.targets
    )
    return ChainTruth(fleet.chain if fleet is not None else None, t0, check=check)


def _counters(fleet: MockFleet | None) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    if fleet is None:
        return {}
    return {p.id: (p.method_counts, p.probe_counts) for p in fleet}


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
