"""The contender sidecar (viem fallback, ethers FallbackProvider in node) against mock providers.

Figures each run prints (``pytest -s``) are the libraries' real behaviour; only what is stable is
asserted: viem's fallback moving past a refused connection is deterministic, ethers' choice of
backends is random (``Math.random`` shuffle), so its failure rate under a kill is printed only.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lasso_rpc.battle import MockProvider
from lasso_rpc.battle.contenders import (
    ClientName,
    ContenderRecord,
    ScheduledCall,
    Sidecar,
    SidecarFailed,
    SidecarSpec,
    SidecarUnavailable,
    find_node,
    find_node_modules,
    run_contender,
    schedule_of,
)
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.battle.providers.fleet import MockFleet

CLIENTS: Sequence[ClientName] = ("viem", "ethers")


def need_sidecar(client: ClientName) -> None:
    """Skip (like the anvil tests) when node or the npm packages are missing, unless the
    packages were pointed at explicitly: then a broken setup fails."""
    try:
        find_node()
        find_node_modules([client])
    except SidecarUnavailable as exc:
        if os.environ.get("LASSO_NODE_MODULES"):
            raise
        pytest.skip(str(exc))


@pytest.fixture
async def fleet3() -> AsyncIterator[MockFleet]:
    spec = MockProvider.fleet(
        alpha={"latency_ms": 10}, beta={"latency_ms": 20}, gamma={"latency_ms": 30}
    )
    async with await MockFleet.start(spec) as fleet:
        yield fleet


def spec_for(
    client: ClientName, fleet: MockFleet, calls: Sequence[ScheduledCall], **kw: Any
) -> SidecarSpec:
    return SidecarSpec.of(client, [(p.id, p.url) for p in fleet], calls, **kw)


def block_numbers(rate: float, duration_s: float) -> tuple[ScheduledCall, ...]:
    return schedule_of(Workload.constant(rate, duration_s), random.Random(1))


Action = Callable[[], Awaitable[object]]


async def drive(
    sidecar: Sidecar, clock_start: float, during: dict[float, Action] | None = None
) -> list[ContenderRecord]:
    """Go at ``clock_start``; run each ``during`` action at its offset (on the same clock)."""
    loop = asyncio.get_running_loop()

    async def at(offset: float, action: Action) -> None:
        await asyncio.sleep(max(0.0, clock_start + offset - loop.time()))
        await action()

    await sidecar.go(clock_start)
    async with asyncio.TaskGroup() as tasks:
        for offset, action in (during or {}).items():
            tasks.create_task(at(offset, action))
        records = [r async for r in sidecar]
    return records


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def describe(client: str, records: list[ContenderRecord]) -> str:
    ok = [r for r in records if r.ok]
    lat = [r.latency_ms for r in ok]
    errors = Counter(r.error_class for r in records if not r.ok)
    return (
        f"{client}: {len(ok)}/{len(records)} ok ({100 * len(ok) / max(1, len(records)):.1f} %), "
        f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, errors {dict(errors)}"
    )


@pytest.mark.parametrize("client", CLIENTS)
async def test_every_request_succeeds_with_all_providers_up(
    client: ClientName, fleet3: MockFleet
) -> None:
    need_sidecar(client)
    calls = block_numbers(20, 2.0)
    async with await Sidecar.launch(spec_for(client, fleet3, calls)) as sidecar:
        assert sidecar.ready.library == client and sidecar.ready.warmup == "ok"
        records = await drive(sidecar, asyncio.get_running_loop().time() + 0.05)
        summary = sidecar.summary
    print(describe(client, records))
    assert summary is not None and (summary.scheduled, summary.sent, summary.ok) == (40, 40, 40)
    assert sorted(r.i for r in records) == list(range(40))
    assert all(r.ok and r.method == "eth_blockNumber" for r in records)
    assert [r.intended_s for r in sorted(records, key=lambda r: r.i)] == [c.offset_s for c in calls]
    assert all(r.end_s >= r.start_s >= r.intended_s - 0.002 for r in records)
    assert sum(p.method_counts.get("eth_blockNumber", 0) for p in fleet3) > 0
    if client == "viem":  # rank off, all up: the first transport answers every call
        assert {(r.provider, r.attempts) for r in records} == {("alpha", 1)}
    else:  # ethers tells no provider; three backends of weight 1 give quorum 2
        assert sidecar.ready.quorum == 2
        assert {r.provider for r in records} == {None}


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_killed_provider_shows_each_librarys_real_behaviour(
    client: ClientName, fleet3: MockFleet
) -> None:
    need_sidecar(client)
    calls = block_numbers(20, 2.0)
    kill_at = 1.0
    killed_at: list[float] = []
    async with await Sidecar.launch(spec_for(client, fleet3, calls, timeout_ms=5000)) as sidecar:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        async def kill() -> None:
            await fleet3["alpha"].stop()
            killed_at.append(loop.time() - start)  # later than kill_at on a busy machine

        records = await drive(sidecar, start, {kill_at: kill})
    before = [r for r in records if r.end_s < kill_at]
    after = [r for r in records if r.intended_s > kill_at]
    print(describe(f"{client} before the kill", before))
    print(describe(f"{client} after the kill ", after))
    assert sorted(r.i for r in records) == list(range(len(calls)))
    assert before and all(r.ok for r in before)
    if client == "viem":
        # A refused connection is not retried against the same transport: the next one answers.
        assert all(r.ok for r in after)
        assert {r.provider for r in before} == {"alpha"}
        # The sidecar's times are on our clock: what it sent after the kill went to beta.
        late = [r for r in after if r.start_s > killed_at[0]]
        assert late and {(r.provider, r.attempts) for r in late} == {("beta", 2)}


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_hung_provider_does_not_delay_later_sends(
    client: ClientName, fleet3: MockFleet
) -> None:
    need_sidecar(client)
    calls = block_numbers(20, 1.0)
    async with await spec_single(client, fleet3, calls) as sidecar:
        fleet3["alpha"].set_failure("hang")  # after the warm-up: the clients are up
        # ethers shares an answer with identical calls for 250 ms: start past the warm-up's.
        records = await drive(sidecar, asyncio.get_running_loop().time() + 0.3)
        summary = sidecar.summary
    print(describe(client, records), f"max send lag {summary and summary.max_send_lag_ms:.1f} ms")
    assert len(records) == 20 and all(r.error_class == "timeout" for r in records)
    # Closed loop would send the second request only after the first timed out (600 ms later).
    assert max(r.start_s - r.intended_s for r in records) < 0.25
    assert min(r.latency_ms for r in records) >= 600 - 5


async def spec_single(
    client: ClientName, fleet: MockFleet, calls: Sequence[ScheduledCall]
) -> Sidecar:
    spec = SidecarSpec.of(client, [("alpha", fleet["alpha"].url)], calls, timeout_ms=600)
    return await Sidecar.launch(spec)


async def test_stop_records_in_flight_as_cancelled_and_ends_the_process(
    fleet3: MockFleet,
) -> None:
    need_sidecar("viem")
    calls = block_numbers(20, 3.0)
    sidecar = await spec_single("viem", fleet3, calls)
    async with sidecar:
        fleet3["alpha"].set_failure("hang")
        loop = asyncio.get_running_loop()
        records = await drive(sidecar, loop.time(), {0.5: sidecar.stop})
        summary = sidecar.summary
        assert summary is not None and summary.stopped_early
        await asyncio.wait_for(sidecar._proc.wait(), 5)  # exits by itself after the summary
        assert sidecar.returncode == 0
    cancelled = [r for r in records if r.error_class == "cancelled"]
    assert cancelled and summary.cancelled == len(cancelled)
    assert summary.unsent > 0 and summary.sent + summary.unsent == summary.scheduled == 60
    assert len(records) == summary.sent


async def test_sigterm_stops_the_run_with_a_summary(fleet3: MockFleet) -> None:
    need_sidecar("ethers")
    calls = block_numbers(20, 3.0)
    async with await Sidecar.launch(spec_for("ethers", fleet3, calls)) as sidecar:

        async def terminate() -> None:
            os.kill(sidecar.pid, signal.SIGTERM)

        records = await drive(sidecar, asyncio.get_running_loop().time(), {0.5: terminate})
        assert sidecar.summary is not None and sidecar.summary.stopped_early
        assert 0 < len(records) == sidecar.summary.sent < len(calls)
        assert await asyncio.wait_for(sidecar._proc.wait(), 5) == 0


async def test_cancelling_the_reader_kills_the_process_group(fleet3: MockFleet) -> None:
    need_sidecar("viem")
    sidecar = await Sidecar.launch(spec_for("viem", fleet3, block_numbers(20, 30.0)))

    async def consume() -> None:
        async with sidecar:
            await sidecar.go()
            async for _ in sidecar:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sidecar.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(sidecar.pid, 0)


async def test_run_contender_feeds_records_until_stopped(fleet3: MockFleet) -> None:
    need_sidecar("viem")
    stop = asyncio.Event()
    records: list[ContenderRecord] = []

    def on_record(record: ContenderRecord) -> None:
        records.append(record)
        if len(records) == 5:
            stop.set()

    summary = await run_contender(
        spec_for("viem", fleet3, block_numbers(20, 10.0)), on_record=on_record, stop=stop
    )
    assert summary.stopped_early and 5 <= summary.sent == len(records) < 200


async def test_a_sidecar_that_dies_fails_with_its_exit_code(fleet3: MockFleet) -> None:
    spec = spec_for("viem", fleet3, block_numbers(1, 1.0))
    with pytest.raises(SidecarFailed, match="exited with code 1"):
        await Sidecar.launch(spec, node="/bin/false", node_modules=Path("/nonexistent"))


async def test_a_spec_the_library_rejects_is_a_clear_failure() -> None:
    need_sidecar("viem")
    spec = SidecarSpec.of("viem", [("alpha", "")], [])
    with pytest.raises(SidecarFailed, match=r"viem sidecar: .*No URL was provided"):
        await Sidecar.launch(spec)


@pytest.mark.parametrize("client", CLIENTS)
async def test_failed_calls_are_recorded_and_the_run_goes_on(
    client: ClientName, fleet3: MockFleet
) -> None:
    need_sidecar(client)
    calls = [
        ScheduledCall(0.0, "lasso_noSuchMethod"),
        ScheduledCall(
            0.05, "eth_getBalance", b'["0xd8da6bf26964af9d7eed9e03e53415d37aa96045","latest"]'
        ),
        ScheduledCall(0.1, "eth_blockNumber"),
    ]
    async with await Sidecar.launch(spec_for(client, fleet3, calls)) as sidecar:
        records = sorted(await drive(sidecar, asyncio.get_running_loop().time()), key=lambda r: r.i)
    assert [r.ok for r in records] == [False, True, True]
    bad = records[0]
    if client == "viem":  # -32601 is not one viem stops at: every transport was asked
        assert (bad.error_class, bad.rpc_code, bad.attempts) == (
            "MethodNotFoundRpcError",
            -32601,
            3,
        )
    else:  # FallbackProvider has typed calls only
        assert bad.error_class == "UnsupportedMethod"
    assert "127.0.0.1" not in (bad.error or "")


async def test_sigterm_before_go_ends_the_sidecar(fleet3: MockFleet) -> None:
    need_sidecar("viem")
    async with await Sidecar.launch(spec_for("viem", fleet3, block_numbers(1, 1.0))) as sidecar:
        os.kill(sidecar.pid, signal.SIGTERM)
        assert await asyncio.wait_for(sidecar._proc.wait(), 5) == 0
