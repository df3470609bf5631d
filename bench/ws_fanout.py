"""WebSocket fan-out: N clients holding ``newHeads`` through the router, one block per second.

    .venv/bin/python bench/ws_fanout.py --clients 1000 --seconds 30
    .venv/bin/python bench/ws_fanout.py --quick    # 200 clients, 8 s, a block every 250 ms

A mock fleet (3 providers, ``--block-ms`` per block) runs in this process, the router in a
``lasso-rpc serve`` subprocess (so its RSS and CPU are its own), the clients in this process
(``lasso_rpc.battle.load.subscribers.run_subscribers``). Delivery latency runs from the moment the mock
chain mined a block to the moment a client decoded its notification: provider WebSocket →
router (one upstream subscription, fan-out) → client. The clients share one Python process, so
the latency of the N-th client includes decoding the N-1 before it; "first client per block"
(provider → router → one client) and the first-to-last spread (fan-out plus client-side work)
separate the two. Blocks mined before a client's subscription was confirmed (a new feed
back-fills from the router's view of the head at the confirmation, which may trail the chain by
a poll) are delivered but not timed: the client never waited for them. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import psutil
import uvloop

from lasso_rpc.battle.load.subscribers import run_subscribers
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_host import start_router


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def sample(proc: psutil.Process, out: list[tuple[float, float]], stop: asyncio.Event) -> None:
    proc.cpu_percent(None)
    while not stop.is_set():
        await asyncio.sleep(0.5)
        out.append((proc.memory_info().rss / 2**20, proc.cpu_percent(None)))


async def main(clients: int, seconds: float, block_ms: int, providers: int) -> None:
    fleet = await MockFleet.start(providers, block_time_ms=block_ms)
    async with fleet:
        host = await start_router(fleet.config_yaml(), process=True)
        try:
            proc = psutil.Process(host.pid)
            await asyncio.sleep(1.0)
            idle_rss = proc.memory_info().rss / 2**20
            samples: list[tuple[float, float]] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(proc, samples, stop))
            latencies: list[float] = []
            per_block: dict[str, list[float]] = {}

            def on_delivery(block_hash: str, ms: float) -> None:
                latencies.append(ms)
                per_block.setdefault(block_hash, []).append(ms)

            ready = asyncio.Event()
            t0 = time.monotonic()
            run = asyncio.create_task(
                run_subscribers(
                    host.url + "/ws/rpc/ethereum",
                    count=clients,
                    kind="newHeads",
                    duration_s=seconds,
                    chain=fleet.chain,
                    ready=ready,
                    on_delivery=on_delivery,
                )
            )
            await asyncio.wait_for(ready.wait(), timeout=seconds)
            connect_s = time.monotonic() - t0
            head0 = fleet.chain.head_number
            records = await run
            blocks = fleet.chain.head_number - head0
            stop.set()
            await sampler
        finally:
            await host.aclose()
    events = sum(r.events for r in records)
    gaps = sum(r.gaps for r in records)
    dups = sum(r.duplicates for r in records)
    connected = statistics.mean(r.connected_s for r in records)
    peak_rss = max((m for m, _ in samples), default=float("nan"))
    end_rss = samples[-1][0] if samples else float("nan")
    cpu = statistics.mean(c for _, c in samples) if samples else float("nan")
    rows = [
        ("clients", f"{clients}"),
        ("seconds / block interval", f"{seconds:g} s / {block_ms} ms"),
        ("all subscribed after", f"{connect_s:.2f} s"),
        ("blocks mined while subscribed", f"{blocks}"),
        ("notifications delivered", f"{events}"),
        ("gaps / duplicates", f"{gaps} / {dups}"),
        ("mean connected time", f"{connected:.2f} s"),
        ("delivery latency p50", f"{pct(latencies, 0.50):.2f} ms"),
        ("delivery latency p99", f"{pct(latencies, 0.99):.2f} ms"),
        ("delivery latency max", f"{max(latencies, default=float('nan')):.2f} ms"),
        ("router RSS idle / peak / end", f"{idle_rss:.1f} / {peak_rss:.1f} / {end_rss:.1f} MB"),
        ("router CPU (mean of 0.5 s samples)", f"{cpu:.1f} %"),
    ]
    first = [min(v) for v in per_block.values()]
    spread = [max(v) - min(v) for v in per_block.values()]
    rows[10:10] = [
        ("first client per block p50 / p99", f"{pct(first, 0.5):.2f} / {pct(first, 0.99):.2f} ms"),
        ("first-to-last spread p50 / p99", f"{pct(spread, 0.5):.2f} / {pct(spread, 0.99):.2f} ms"),
    ]
    width = max(len(k) for k, _ in rows)
    print(
        f"\nws_fanout: {clients} newHeads clients through the router ({providers} mock providers)"
    )
    print("-" * (width + 24))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--block-ms", type=int, default=1000)
    ap.add_argument("--providers", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 200 clients, 8 s, 250 ms")
    a = ap.parse_args()
    if a.quick:
        a.clients, a.seconds, a.block_ms = 200, 8.0, 250
    uvloop.run(main(a.clients, a.seconds, a.block_ms, a.providers))
