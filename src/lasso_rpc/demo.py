"""`make demo`: a router in front of a mock fleet, load through every strategy, a summary."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from rich.console import Console
from rich.table import Table

from lasso_rpc.battle.catalogue import builtin_scenarios
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.report.console import print_slo_table
from lasso_rpc.battle.scenario import Scenario
from lasso_rpc.config import load_config_text
from lasso_rpc.server.app import RouterServer

__all__ = ["run_demo"]

_LATENCIES = {"alpha": 10.0, "beta": 25.0, "gamma": 50.0}
_STRATEGIES = ("fastest", "load-balanced", "latency-weighted", "priority")
_PER_STRATEGY = 300
_CONCURRENCY = 8
_ADDR = "0x" + "ab" * 20


def _pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


async def _drive(http: aiohttp.ClientSession, url: str, n: int) -> list[dict[str, Any]]:
    body = orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [_ADDR, "latest"]}
    )
    out: list[dict[str, Any]] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                reply = orjson.loads(await r.read())
            ms = (time.perf_counter() - t0) * 1000.0
            meta = reply.get("lasso_meta", {})
            out.append({"ok": "result" in reply, "ms": ms, "provider": meta.get("provider")})

    await asyncio.gather(*(worker() for _ in range(_CONCURRENCY)))
    return out


async def run_demo(out_dir: Path, *, scale: float = 0.5) -> bool:
    """The failover battle (shortened by ``scale``), then a tour of the strategies."""
    console = Console()
    # As in `battle run`: the router's own warnings under chaos are all in the report.
    logging.getLogger("lasso_rpc").setLevel(logging.ERROR)
    sc = Scenario.from_yaml(builtin_scenarios()["provider-failover"]).scaled(scale)
    console.print(f"[bold]battle[/]: {sc.name} — {sc.description} ({scale:g}x length)")
    result = await sc.run()
    paths = result.write_reports(out_dir)
    print_slo_table(result.data)
    console.print(f"reports: {paths.json}\n         {paths.markdown}\n         {paths.html}")
    await run_strategy_tour(out_dir, console)
    return result.passed


async def run_strategy_tour(out_dir: Path, console: Console) -> None:
    spec = {pid: {"latency_ms": ms, "jitter_ms": ms * 0.2} for pid, ms in _LATENCIES.items()}
    summary: dict[str, Any] = {"providers": _LATENCIES, "strategies": {}}
    async with await MockFleet.start(spec, block_time_ms=1000) as fleet:
        cfg = load_config_text([("demo.yaml", fleet.config_yaml())])
        async with RouterServer(cfg, port=0) as server, aiohttp.ClientSession() as http:
            console.print(
                f"[bold]lasso-rpc demo[/]: router {server.url} in front of "
                + ", ".join(f"{p} ({ms:.0f} ms)" for p, ms in _LATENCIES.items())
            )
            table = Table(
                title=f"{_PER_STRATEGY} eth_getBalance calls per strategy, {_CONCURRENCY} in flight"
            )
            for col in ("strategy", "ok", *_LATENCIES, "p50 ms", "p95 ms", "p99 ms"):
                table.add_column(col, justify="right" if col != "strategy" else "left")
            for strategy in _STRATEGIES:
                url = f"{server.url}/rpc/{strategy}/ethereum?include_meta=body"
                res = await _drive(http, url, _PER_STRATEGY)
                lat = sorted(r["ms"] for r in res)
                share = Counter(r["provider"] for r in res)
                ok = sum(r["ok"] for r in res)
                row = {
                    "ok": ok,
                    "total": len(res),
                    "share": {p: share.get(p, 0) / len(res) for p in _LATENCIES},
                    "p50_ms": _pct(lat, 0.50),
                    "p95_ms": _pct(lat, 0.95),
                    "p99_ms": _pct(lat, 0.99),
                }
                summary["strategies"][strategy] = row
                table.add_row(
                    strategy,
                    f"{ok}/{len(res)}",
                    *(f"{row['share'][p]:.0%}" for p in _LATENCIES),
                    f"{row['p50_ms']:.1f}",
                    f"{row['p95_ms']:.1f}",
                    f"{row['p99_ms']:.1f}",
                )
            console.print(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "strategy-tour.json"
    path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    console.print(f"strategy tour written to {path}")
