"""Test helpers of the battle framework (as in Lasso's): seed routing benchmarks, talk to one
provider directly, wait until a chain is ready. Cleanup is the scenario's exit stack."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.router import Router

__all__ = ["direct_request", "seed_benchmarks", "wait_until_ready"]


def seed_benchmarks(
    target: ScenarioContext | Router,
    latencies: Mapping[str, Mapping[str, float]],
    *,
    chain: str = "ethereum",
    success_rate: float = 1.0,
    samples: int = 20,
    transport: str = "http",
) -> None:
    """Pre-populate latency/success per provider x method so ``fastest`` starts from a known
    ranking: ``seed_benchmarks(ctx, {"alpha": {"eth_blockNumber": 50}, "beta": {...}})``.

    Only for a router in this process (its stats live in memory).
    """
    router = target if isinstance(target, Router) else target.router_host.router
    if router is None:
        raise RuntimeError("seed_benchmarks needs the router in this process (process=False)")
    rt = router.resolve(chain)
    now = router.clock.now_ms()
    for pid, methods in latencies.items():
        stats = rt.providers[pid].stats
        for method, ms in methods.items():
            stats.seed(method, transport, ms, success_rate, samples, now_ms=now)


async def direct_request(
    ctx: ScenarioContext, provider_id: str, method: str, params: list[Any] | None = None
) -> Any:
    """Ask one provider itself, bypassing the router (and any fault proxy in front of it).

    Returns the ``result``; raises ``RuntimeError`` with the JSON-RPC error otherwise.
    """
    assert ctx.session is not None
    url = ctx.provider_urls[provider_id]
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    async with ctx.session.post(
        url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
    ) as r:
        reply = orjson.loads(await r.read())
    if "error" in reply:
        raise RuntimeError(f"{provider_id} answered {method} with {reply['error']}")
    return reply["result"]


async def wait_until_ready(
    session: aiohttp.ClientSession, router_url: str, chain: str, *, timeout_s: float = 30.0
) -> None:
    """Until every provider of ``chain`` has been probed (head known) and /ready says yes."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                async with session.get(f"{router_url}/api/providers?chain={chain}") as r:
                    providers = (await r.json())["providers"]
                async with session.get(f"{router_url}/ready") as r:
                    ready = r.status == 200
                if ready and providers and all(p["head"] is not None for p in providers):
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
