"""The workers' hub and its links, in one process over real socketpairs (no worker processes):
relaying records, gathering answers (and not waiting for a worker that is gone), shared
buckets, and the event fan-out switched on by watchers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from lasso_rpc.access.buckets import BUCKET, Check
from lasso_rpc.cluster.hub import Hub
from lasso_rpc.cluster.hub_link import HubLink
from lasso_rpc.cluster.records import Command, StateRecord


class Sink:
    def __init__(self) -> None:
        self.applied: list[StateRecord] = []
        self.commands: list[Command] = []

    def apply(self, record: StateRecord) -> None:
        self.applied.append(record)

    def run_command(self, command: Command) -> None:
        self.commands.append(command)

    def records(self) -> list[StateRecord]:
        return []


@pytest.fixture
async def wired() -> AsyncIterator[tuple[Hub, list[HubLink], list[Sink]]]:
    pairs = [socket.socketpair() for _ in range(3)]
    hub = Hub(gather_timeout_s=0.3)
    tasks = [asyncio.create_task(hub.serve([a for a, _ in pairs]))]
    links = [HubLink(b, i) for i, (_, b) in enumerate(pairs)]
    sinks = [Sink() for _ in links]
    for link, sink in zip(links, sinks, strict=True):
        await link.start(sink)
    try:
        yield hub, links, sinks
    finally:
        for link in links:
            await link.aclose()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _rec(ts: float, state: str = "open") -> StateRecord:
    return StateRecord(aspect="breaker", target="p/c/a", state=state, ts=ts, origin="w0")


async def _settle(links: list[HubLink]) -> None:
    await links[0].gather("ping")


async def test_records_reach_every_other_worker_and_late_ones_get_the_newest(wired) -> None:  # type: ignore[no-untyped-def]
    hub, links, sinks = wired
    links[0].publish(_rec(2.0))
    links[0].publish(_rec(1.0, "closed"))  # older: the hub keeps and relays only the newer
    links[1].publish(Command(name="reload", origin="w1", ts=3.0))
    await _settle(links)
    assert sinks[0].applied == [] and sinks[1].applied == sinks[2].applied == [_rec(2.0)]
    assert [c.name for c in sinks[0].commands] == ["reload"] and sinks[1].commands == []
    a, b = socket.socketpair()
    late_task = asyncio.create_task(hub._serve_one(7, a))
    late, sink = HubLink(b, 7), Sink()
    await late.start(sink)
    await late.gather("ping")
    assert sink.applied == [_rec(2.0)]
    await late.aclose()
    await asyncio.wait_for(late_task, 2)


async def test_a_gather_answers_with_every_worker_and_does_not_wait_for_the_dead(wired) -> None:  # type: ignore[no-untyped-def]
    _, links, _ = wired
    for link in links:
        link.on_query("who", lambda link=link: str(link.worker).encode())  # type: ignore[misc]
    answers, missing = await links[1].gather("who")
    assert answers == [(0, b"0"), (1, b"1"), (2, b"2")] and missing == 0
    links[2].on_query("who", lambda: (_ for _ in ()).throw(RuntimeError("bug")))  # type: ignore[misc]
    answers, _ = await links[0].gather("who")
    assert (2, b"") in answers  # an answerer's bug answers empty, the link lives on
    await links[2].aclose()
    answers, missing = await asyncio.wait_for(links[0].gather("who"), 2)
    assert [w for w, _ in answers] == [0, 1] and missing == 0


async def test_buckets_in_the_hub_are_one_limit_for_all_workers(wired) -> None:  # type: ignore[no-untyped-def]
    _, links, _ = wired
    check = [Check("k:acme", BUCKET, 0.001, 3.0, 1)]
    results = []
    for i in range(6):
        (v,) = await links[i % 3].take([check], timeout_s=1.0)
        results.append(v.ok)
    assert results == [True, True, True, False, False, False]


async def test_events_flow_only_while_someone_watches(wired) -> None:  # type: ignore[no-untyped-def]
    _, links, _ = wired
    streaming = {i: [] for i in range(3)}  # type: ignore[var-annotated]
    got: list[tuple[str, bytes]] = []
    for link in links:
        link.on_stream = streaming[link.worker].append
    links[1].on_events = got.extend
    links[1].watch(True)
    await _settle(links)
    assert all(s == [True] for s in streaming.values())
    links[2].send_events([("request.finished", b"{}")])
    await _settle(links)
    assert got == [("request.finished", b"{}")]
    links[1].watch(False)
    await _settle(links)
    assert all(s == [True, False] for s in streaming.values())
