"""Client-side fallback under a provider kill: viem ``fallback`` vs ethers v6 ``FallbackProvider``.

Three mock providers at 50/100/150 ms, the fastest killed (or hung with ``--mode hang``) at 2 s of
a 6 s run at 20 req/s of eth_blockNumber, sent open loop by the contender sidecar (issue 15).
Prints success rate and p50/p99 latency (from the intended send time) per library and setting,
for the whole run and after the fault, over ``--repeat`` runs (ethers picks backends at random).

    .venv/bin/python bench/contenders_fallback.py [--repeat 3] [--mode kill|hang]
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections import Counter
from dataclasses import dataclass

from lasso_rpc.battle import MockProvider
from lasso_rpc.battle.contenders import (
    ContenderRecord,
    EthersOptions,
    Sidecar,
    SidecarSpec,
    ViemOptions,
    schedule_of,
)
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.battle.providers.fleet import MockFleet

RATE, DURATION_S, FAULT_AT_S = 20.0, 6.0, 2.0


@dataclass(frozen=True)
class Setting:
    label: str
    client: str
    options: ViemOptions | EthersOptions | None = None


SETTINGS = (
    Setting("viem fallback (defaults, rank off)", "viem"),
    Setting("ethers FallbackProvider (defaults: quorum 2)", "ethers"),
    Setting("ethers FallbackProvider quorum 1", "ethers", EthersOptions(quorum=1)),
    Setting("ethers quorum 2, no request sharing", "ethers", EthersOptions(cache_timeout_ms=-1)),
)


async def one_run(setting: Setting, mode: str, seed: int) -> list[ContenderRecord]:
    fleet_spec = MockProvider.fleet(
        alpha={"latency_ms": 50}, beta={"latency_ms": 100}, gamma={"latency_ms": 150}
    )
    calls = schedule_of(Workload.constant(RATE, DURATION_S), random.Random(seed))
    async with await MockFleet.start(fleet_spec) as fleet:
        spec = SidecarSpec.of(
            setting.client,  # type: ignore[arg-type]
            [(p.id, p.url) for p in fleet],
            calls,
            timeout_ms=30_000,
            options=setting.options,
        )
        async with await Sidecar.launch(spec) as sidecar:
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.3  # past the warm-up's shared answer (ethers, 250 ms)

            async def fault() -> None:
                await asyncio.sleep(start + FAULT_AT_S - loop.time())
                if mode == "kill":
                    await fleet["alpha"].stop()
                else:
                    fleet["alpha"].set_failure("hang")

            await sidecar.go(start)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(fault())
                records = [r async for r in sidecar]
            return records


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def success(records: list[ContenderRecord]) -> float:
    return 100.0 * sum(r.ok for r in records) / max(1, len(records))


def row(label: str, runs: list[list[ContenderRecord]], after: float) -> str:
    runs = [[r for r in run if r.intended_s >= after] for run in runs]
    records = [r for run in runs for r in run]
    ok = [r.latency_ms for r in records if r.ok]
    errors = Counter(r.error_class for r in records if not r.ok)
    top = ", ".join(f"{k} x{v}" for k, v in errors.most_common(3)) or "-"
    each = " ".join(f"{success(run):.0f}" for run in runs)
    return (
        f"{label:<46} {len(records):>5} {success(records):>7.1f} % {pct(ok, 50):>8.1f} "
        f"{pct(ok, 99):>8.1f}   [{each}]   {top}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=("kill", "hang"), default="kill")
    args = parser.parse_args()
    print(
        f"3 mock providers 50/100/150 ms; alpha ({args.mode}) at {FAULT_AT_S} s of {DURATION_S} s"
        f" at {RATE} req/s eth_blockNumber; {args.repeat} run(s) per setting, pooled"
        " (latency of answered requests, from the intended send time)"
    )
    runs: dict[str, list[list[ContenderRecord]]] = {}
    for setting in SETTINGS:
        runs[setting.label] = [
            await one_run(setting, args.mode, seed) for seed in range(args.repeat)
        ]
    header = (
        f"{'setting':<46} {'reqs':>5} {'success':>9} {'p50 ms':>8} {'p99 ms':>8}"
        "   [success % per run]   errors"
    )
    for window, after in (
        ("whole run", 0.0),
        (f"after the fault (intended >= {FAULT_AT_S} s)", FAULT_AT_S),
    ):
        print(f"\n{window}\n{header}")
        for label, label_runs in runs.items():
            print(row(label, label_runs, after))


if __name__ == "__main__":
    asyncio.run(main())
