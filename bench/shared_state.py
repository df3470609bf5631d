"""Shared state (issue 13): what Redis costs a router, and what a Redis outage costs its clients.

    .venv/bin/python bench/shared_state.py            # 10 s wrk cells
    .venv/bin/python bench/shared_state.py --quick

1. Throughput of one worker at 64 connections (wrk, eth_blockNumber, one fast upstream):
   ``state: memory`` vs ``state: redis``, each without access control and with an API key
   whose limit is never reached, so every request runs a rate-limit check: a large limit
   (10^9: far from its end, Redis-backed nodes spend it locally and send the charges behind,
   access/redis_store.py), and a limit under 1,000 (always exact: every check waits for one
   Lua call to Redis per event-loop turn). Target: redis >= 0.9x memory, for each case.
2. The rate-limit check alone, in this process (no sockets to the router): router CPU µs per
   request for the local buckets and for Redis (a small limit one at a time and 64 at once,
   a large limit 64 at once). Targets: local <= 10 µs, Redis asked and batched <= 50 µs,
   Redis spent locally <= 10 µs (a router call costs ~65 µs: hot_path.py).
3. Redis killed under load: two router nodes sharing one Redis, an API key checked in Redis on
   every request, 200 req/s open loop spread over both; Redis dies at 4 s and comes back at
   8 s. Targets: 100 % answered; p99 while Redis is down <= p99 before + 20 ms; a cordon made
   on node A during the outage reaches node B <= 5 s after Redis returns.

Every target is printed with this run's figure and its verdict (``lib.targets``); the exit code
is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

import lib as c
from lasso_rpc.access.buckets import MemoryBuckets
from lasso_rpc.access.gate import AccessGate
from lasso_rpc.access.redis_store import RedisStore
from lasso_rpc.access.stores import LocalStore
from lasso_rpc.battle.providers.redis_server import RedisServer
from lasso_rpc.battle.providers.router_process import RouterProcess
from lasso_rpc.clock import SYSTEM_CLOCK
from lasso_rpc.cluster.redis_guard import RedisGuard
from lasso_rpc.config.shared import AccessConfig, StateConfig
from lib.targets import Targets

KEY = "bench-key-0123456789"
ACCESS = {"keys": [{"key": KEY, "name": "bench", "rate_limit": {"rps": 1e9, "burst": 10**9}}]}
#: a limit under LOCAL_MIN (never reached: it refills at once): every check asks Redis
ACCESS_SMALL = {"keys": [{"key": KEY, "name": "bench", "rate_limit": {"rps": 1e9, "burst": 999}}]}
CASES = {
    "none": "no access control",
    "large": "API key, large limit (spent locally)",
    "small": "API key, limit < 1,000 (every check asks)",
}


# -- 1. throughput -------------------------------------------------------------------------------


def throughput(args: argparse.Namespace, redis_url: str, targets: Targets) -> None:
    rows: list[list[Any]] = []
    rps: dict[tuple[str, str], float] = {}
    with c.Stack(keep_tmp=args.keep) as stack:
        for state in ("memory", "redis"):
            for case in CASES:
                up = c.start_upstream(stack)
                cfg = c.router_config([{"id": "up", "url": up.url}], log_level="warning")
                if state == "redis":
                    cfg["state"] = {"backend": "redis", "url": redis_url}
                if case != "none":
                    cfg["access"] = ACCESS if case == "large" else ACCESS_SMALL
                router = c.start_router(stack, cfg)
                route = f"key/{KEY}/{c.CHAIN}" if case != "none" else c.CHAIN
                url = c.router_url(router, route)
                c.check_ok(url)
                r = c.run_wrk(
                    stack,
                    url,
                    c.BLOCK_NUMBER,
                    conns=64,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    watch={"router": router, "upstream": up},
                    repeat=args.repeat,
                )
                rps[state, case] = r.rps
                name = f"state {state}, {CASES[case]}"
                rows.append([name, r.rps, r.p50_ms, r.p99_ms, r.errors + r.non2xx, c.cpu_note(r)])
                print(f"  {name}: {r.rps:,.0f} req/s", flush=True)
                stack.stop(router)
                stack.stop(up)
    print(
        c.table(
            ["case", "req/s", "p50 ms", "p99 ms", "err", "CPU"],
            rows,
            "## 1. Throughput, 1 worker, 64 connections",
        )
    )
    for case, what in CASES.items():
        ratio = rps["redis", case] / rps["memory", case]
        targets.check(f"redis / memory, {what}: >= 0.9x", f"{ratio:.2f}x", ratio >= 0.9)


# -- 2. the check alone --------------------------------------------------------------------------


async def check_cost(redis_url: str, n: int) -> list[list[Any]]:
    access = AccessConfig.model_validate(ACCESS)
    small = AccessConfig.model_validate(ACCESS_SMALL)
    rows: list[list[Any]] = []
    local = AccessGate(access, LocalStore(MemoryBuckets(SYSTEM_CLOCK)), clock=SYSTEM_CLOCK)
    guard = RedisGuard(StateConfig(backend="redis", url=redis_url, timeout_ms=1000))
    remote = AccessGate(access, RedisStore(guard, "bench"), clock=SYSTEM_CLOCK)
    asks = AccessGate(small, RedisStore(guard, "bench-small"), clock=SYSTEM_CLOCK)
    try:
        for name, gate, concurrency in (
            ("local buckets", local, 1),
            ("redis, limit < 1,000, one at a time", asks, 1),
            ("redis, limit < 1,000, 64 at once (batched)", asks, 64),
            ("redis, large limit, 64 at once (spent locally)", remote, 64),
        ):
            client = await gate.identify(KEY)
            await gate.check(client, "127.0.0.1", ["eth_blockNumber"])  # warm (script load)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            done = 0
            while done < n:
                if concurrency == 1:  # awaited in place: no task per check
                    await gate.check(client, "127.0.0.1", ["eth_blockNumber"])
                else:
                    await asyncio.gather(
                        *(
                            gate.check(client, "127.0.0.1", ["eth_blockNumber"])
                            for _ in range(concurrency)
                        )
                    )
                done += concurrency
            cpu = (time.process_time() - cpu0) / done * 1e6
            wall = (time.perf_counter() - wall0) / done * 1e6
            rows.append([name, f"{cpu:.1f}", f"{wall:.1f}"])
    finally:
        await remote.aclose()
        await asks.aclose()
        await guard.aclose()
    return rows


# -- 3. Redis killed under load -------------------------------------------------------------------


async def outage(args: argparse.Namespace, tmp: Path, targets: Targets) -> None:
    from lasso_rpc.battle.providers.fleet import MockFleet

    token = "bench-control"
    async with RedisServer() as redis:
        fleet = await MockFleet.start(2, block_time_ms=1000)
        async with fleet:
            doc = fleet.config_dict(strategy="fastest")
            doc["server"] = {
                "host": "127.0.0.1",
                "port": 0,
                "log_level": "warning",
                "control": {"enabled": True, "token": token},
            }
            doc["state"] = {
                "backend": "redis",
                "url": redis.url,
                "retry_ms": 200,
                "sync_interval_ms": 500,
            }
            doc["access"] = ACCESS
            path = tmp / "node.yaml"
            path.write_text(yaml.safe_dump(doc))
            async with RouterProcess(path) as a, RouterProcess(path) as b:
                urls = [a.url + "/rpc/ethereum", b.url + "/rpc/ethereum"]
                results: list[tuple[float, float, bool]] = []  # (intended s, latency ms, ok)
                total_s, kill_at, back_at, rate = args.outage_s, 4.0, 8.0, 200.0
                async with aiohttp.ClientSession(headers={"X-Lasso-Key": KEY}) as http:
                    t0 = time.perf_counter()

                    async def one(i: int) -> None:
                        intended = i / rate
                        body = {
                            "jsonrpc": "2.0",
                            "id": i,
                            "method": "eth_blockNumber",
                            "params": [],
                        }
                        ok = False
                        try:
                            async with http.post(urls[i % 2], json=body) as r:
                                ok = r.status == 200 and "result" in await r.json()
                        except aiohttp.ClientError:
                            ok = False
                        results.append((intended, (time.perf_counter() - t0 - intended) * 1000, ok))

                    async def chaos() -> float:
                        await asyncio.sleep(kill_at)
                        await redis.kill()
                        await asyncio.sleep(0.5)
                        async with http.post(
                            a.url + "/api/control/cordon",
                            json={"chain": "ethereum", "provider": "beta"},
                            headers={"Authorization": f"Bearer {token}"},
                        ) as r:
                            assert r.status == 200
                        await asyncio.sleep(back_at - kill_at - 0.5)
                        await redis.restart()
                        back = time.perf_counter()
                        while True:
                            async with http.get(b.url + "/api/providers") as r:
                                rows = (await r.json())["providers"]
                            if any(p["id"] == "beta" and p["cordoned"] for p in rows):
                                return time.perf_counter() - back
                            if time.perf_counter() - back > 30:
                                return float("inf")
                            await asyncio.sleep(0.02)

                    chaos_task = asyncio.create_task(chaos())
                    tasks = []
                    for i in range(int(total_s * rate)):
                        delay = t0 + i / rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        tasks.append(asyncio.create_task(one(i)))
                    await asyncio.gather(*tasks)
                    converge_s = await chaos_task
    answered = sum(1 for _, _, ok in results if ok) / len(results)

    def p99(lo: float, hi: float) -> float:
        lat = sorted(ms for t, ms, _ in results if lo <= t < hi)
        return lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")

    before, during = p99(0.5, kill_at), p99(kill_at, back_at)
    after = p99(back_at, total_s)
    added = during - before
    print(
        c.table(
            ["p99 (ms)", "before", "while Redis is down", "after"],
            [["eth_blockNumber, 2 nodes", before, during, after]],
            "## 3. Redis killed at 4 s, back at 8 s (200 req/s, API key checked in Redis)",
        )
    )
    targets.check("answered (200 with a result): 100 %", f"{answered * 100:.2f} %", answered == 1.0)
    targets.check("p99 added while Redis is down: <= 20 ms", f"{added:.1f} ms", added <= 20.0)
    targets.check(
        "a cordon made during the outage reaches node B after Redis returns: <= 5 s",
        f"{converge_s:.2f} s",
        converge_s <= 5.0,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.common_args(parser)
    parser.add_argument("--checks", type=int, default=20_000, help="checks per row of part 2")
    parser.add_argument("--outage-s", type=float, default=12.0, help="length of part 3")
    parser.add_argument("--skip-wrk", action="store_true", help="parts 2 and 3 only")
    args = parser.parse_args()
    c.apply_quick(args)
    c.header("shared state: Redis vs memory, rate-limit checks, a Redis outage", args)
    targets = Targets()
    with c.interrupt_exit(), c.Stack(keep_tmp=args.keep) as stack:
        redis_child = stack.start(
            "redis",
            [
                "redis-server",
                "--port",
                "0",
                "--unixsocket",
                str(stack.tmp / "redis.sock"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cpus=c.AUX_CPU,
        )
        redis_child.wait_for(r"ready to accept connections")
        redis_url = f"unix://{stack.tmp / 'redis.sock'}"
        if not args.skip_wrk:
            throughput(args, redis_url, targets)
        cost = asyncio.run(check_cost(redis_url, args.checks))
        print(
            c.table(
                ["rate-limit check", "CPU µs per request", "wall µs per request"],
                cost,
                "## 2. The rate-limit check alone",
            )
        )
        for row in cost:  # the router's CPU per request: local <= 10 µs, Redis batched <= 50 µs
            limit = {
                "local buckets": 10.0,
                "redis, limit < 1,000, 64 at once (batched)": 50.0,
                "redis, large limit, 64 at once (spent locally)": 10.0,
            }.get(row[0])
            if limit is not None:
                targets.check(
                    f"rate-limit check, {row[0]}: <= {limit:g} µs CPU per request",
                    f"{row[1]} µs",
                    float(row[1]) <= limit,
                )
        asyncio.run(outage(args, stack.tmp, targets))
    return targets.report()


if __name__ == "__main__":
    sys.exit(main())
