"""A Feed against fake upstreams and a fake back-fill: failover, back-fill, order, dedupe, reorgs.

No sockets: the seams (``UpstreamSource``, ``UpstreamStream``, ``Backfill``) are fakes that hand
out scripted heads and logs. The feed runs as a task; each test waits for what it delivered.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import orjson
import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.errors import ConnectError, ConnectionLost
from lasso_rpc.observability.events import Event, SubscriptionFailover
from lasso_rpc.subscriptions import Feed, FeedSpec, Head, LogEntry, SubscriptionOptions
from lasso_rpc.subscriptions.frames import Item

LOGS = FeedSpec("logs", b'["logs",{}]', b"{}")
HEADS = FeedSpec("newHeads", b'["newHeads"]')


def h(n: int, fork: str = "") -> Head:
    """Block ``n`` of the canonical chain, or of fork ``fork`` (its parent: same fork)."""
    raw = orjson.dumps(
        {"number": hex(n), "hash": f"0x{fork}{n:04x}", "parentHash": f"0x{fork}{n - 1:04x}"}
    )
    return Head.parse(raw)


def lg(block: int, index: int) -> LogEntry:
    raw = orjson.dumps(
        {"blockNumber": hex(block), "blockHash": f"0x{block:04x}", "logIndex": hex(index)}
    )
    return LogEntry.parse(raw)


class FakeStream:
    def __init__(self, provider: str, script: Sequence[Item | Exception | None]) -> None:
        self.provider = provider
        self.queue: asyncio.Queue[Item | Exception | None] = asyncio.Queue()
        for x in script:
            self.queue.put_nowait(x)
        self.closed = False

    async def next(self) -> Item:
        x = await self.queue.get()
        if x is None:  # "then nothing": block forever
            await asyncio.Event().wait()
        if isinstance(x, Exception):
            raise x
        assert x is not None
        return x

    def close(self) -> None:
        self.closed = True


class FakeSource:
    def __init__(self, scripts: dict[str, list[list[Item | Exception | None]]]) -> None:
        self.scripts = scripts
        self.opened: list[str] = []

    async def open(self, provider: str, spec: FeedSpec) -> FakeStream:
        runs = self.scripts.get(provider)
        if not runs:
            raise ConnectError(f"{provider}: refused")
        self.opened.append(provider)
        return FakeStream(provider, runs.pop(0))


class FakeBackfill:
    def __init__(self, head: int | None, blocks: dict[int, Head], logs: list[LogEntry]) -> None:
        self._head, self._blocks, self._logs = head, blocks, logs
        self.block_reads: list[int] = []

    async def head(self, provider: str) -> int | None:
        return self._head

    async def blocks(self, lo: int, hi: int, provider: str) -> Sequence[Head | None]:
        self.block_reads.extend(range(lo, hi + 1))
        return [self._blocks.get(n) for n in range(lo, hi + 1)]

    async def logs(self, filter_json: bytes, lo: int, hi: int, provider: str) -> list[LogEntry]:
        return [x for x in self._logs if lo <= x.block_number <= hi]


class Harness:
    def __init__(
        self,
        spec: FeedSpec,
        source: FakeSource,
        backfill: FakeBackfill,
        candidates: list[str],
        **options: float,
    ) -> None:
        self.out: list[bytes] = []
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.feed = Feed(
            label=spec.key,
            chain="ethereum",
            spec=spec,
            source=source,
            backfill=backfill,
            candidates=lambda: list(candidates),
            deliver=self._deliver,
            publish=self.events.append,
            options=SubscriptionOptions(reconnect_base_ms=1, reconnect_max_ms=2, **options),  # type: ignore[arg-type]
            block_time_ms=12_000,
            clock=FakeClock(),
            rng=random.Random(1),
        )
        self.task = asyncio.create_task(self.feed.run())

    def _deliver(self, raw: bytes) -> None:
        self.out.append(raw)
        self.changed.set()

    async def until(self, n: int) -> None:
        async with asyncio.timeout(2):
            while len(self.out) < n:
                self.changed.clear()
                await self.changed.wait()

    def numbers(self) -> list[int]:
        return [int(orjson.loads(r)["number"], 16) for r in self.out]

    def hashes(self) -> list[str]:
        return [orjson.loads(r)["hash"] for r in self.out]

    def failovers(self) -> list[SubscriptionFailover]:
        return [e for e in self.events if isinstance(e, SubscriptionFailover)]

    async def aclose(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def closing() -> object:
    harnesses: list[Harness] = []
    yield harnesses
    for x in harnesses:
        await x.aclose()


async def test_failover_backfills_the_missed_blocks_and_drops_duplicates(closing: list) -> None:
    lost = ConnectionLost("alpha: closed")
    source = FakeSource({"alpha": [[h(1), h(2), h(3), lost]], "beta": [[h(5), h(6), h(7), None]]})
    backfill = FakeBackfill(6, {n: h(n) for n in range(1, 10)}, [])
    x = Harness(HEADS, source, backfill, ["alpha", "beta"])
    closing.append(x)
    await x.until(7)
    assert x.numbers() == [1, 2, 3, 4, 5, 6, 7]
    assert x.feed.duplicates == 2 and x.feed.backfilled == 3
    (ev,) = x.failovers()
    assert (ev.from_provider, ev.to_provider, ev.backfilled, ev.gap, ev.reorg) == (
        "alpha",
        "beta",
        3,
        False,
        False,
    )
    assert source.opened == ["alpha", "beta"] and x.feed.provider == "beta"


async def test_a_jump_in_the_live_stream_is_filled_before_it(closing: list) -> None:
    source = FakeSource({"alpha": [[h(1), h(2), h(5), h(6), None]]})
    x = Harness(HEADS, source, FakeBackfill(6, {n: h(n) for n in range(10)}, []), ["alpha"])
    closing.append(x)
    await x.until(6)
    assert x.numbers() == [1, 2, 3, 4, 5, 6] and not x.failovers()


async def test_a_gap_longer_than_the_bound_is_reported(closing: list) -> None:
    source = FakeSource({"alpha": [[h(1), h(20), h(21), None]]})
    x = Harness(
        HEADS,
        source,
        FakeBackfill(21, {n: h(n) for n in range(30)}, []),
        ["alpha"],
        max_backfill_blocks=3,
    )
    closing.append(x)
    await x.until(6)
    assert x.numbers() == [1, 17, 18, 19, 20, 21]
    assert x.feed.gaps == 15
    (ev,) = x.failovers()
    assert ev.gap and ev.backfilled == 3 and ev.from_provider == ev.to_provider == "alpha"


async def test_reorg_is_delivered_as_the_new_block_with_the_same_number(closing: list) -> None:
    source = FakeSource({"alpha": [[h(1), h(2), h(3), h(3, "f"), h(4, "f"), None]]})
    x = Harness(HEADS, source, FakeBackfill(None, {}, []), ["alpha"])
    closing.append(x)
    await x.until(5)
    assert x.numbers() == [1, 2, 3, 3, 4]
    assert x.hashes()[3:] == ["0xf0003", "0xf0004"]
    assert [e.reorg for e in x.failovers()] == [True]


async def test_a_fork_seen_by_parent_hash_is_repaired(closing: list) -> None:
    # Blocks 3 and 4 were replaced while alpha was silent; beta only shows the new 5.
    lost = ConnectionLost("alpha: closed")
    fork = {1: h(1), 2: h(2), 3: h(3, "f"), 4: h(4, "f"), 5: h(5, "f")}
    fork[3] = Head.parse(orjson.dumps({"number": "0x3", "hash": "0xf0003", "parentHash": "0x0002"}))
    source = FakeSource({"alpha": [[h(1), h(2), h(3), lost]], "beta": [[fork[5], None]]})
    x = Harness(HEADS, source, FakeBackfill(5, fork, []), ["alpha", "beta"])
    closing.append(x)
    await x.until(6)
    assert x.numbers() == [1, 2, 3, 3, 4, 5]
    assert x.hashes()[3:] == ["0xf0003", "0xf0004", "0xf0005"]
    assert x.feed.reorgs == 1 and any(e.reorg for e in x.failovers())


async def test_logs_failover_backfills_from_the_watermark(closing: list) -> None:
    lost = ConnectionLost("alpha: closed")
    chain_logs = [lg(b, i) for b in range(10, 14) for i in range(2)]
    source = FakeSource(
        {
            "alpha": [[h(10), lg(10, 0), lg(10, 1), h(11), lg(11, 0), lost]],
            "beta": [[lg(13, 0), lg(13, 1), h(14), lg(14, 0), None]],
        }
    )
    x = Harness(LOGS, source, FakeBackfill(13, {}, chain_logs), ["alpha", "beta"])
    closing.append(x)
    await x.until(9)
    got = [
        (int(orjson.loads(r)["blockNumber"], 16), int(orjson.loads(r)["logIndex"], 16))
        for r in x.out
    ]
    assert got == [(10, 0), (10, 1), (11, 0), (11, 1), (12, 0), (12, 1), (13, 0), (13, 1), (14, 0)]
    assert x.feed.duplicates == 3  # 11/0 re-read by the back-fill, 13/0 and 13/1 live again
    (ev,) = x.failovers()
    assert (ev.from_provider, ev.to_provider, ev.backfilled) == ("alpha", "beta", 5)


async def test_a_new_feed_backfills_from_its_start(closing: list) -> None:
    # Confirmed at head 4; by the time the upstream subscription is live the chain is at 6 and
    # the provider (lagging) still sends 3 and 4: those are owed to no one.
    source = FakeSource({"alpha": [[h(3), h(4), h(6), h(7), None]]})
    backfill = FakeBackfill(6, {n: h(n) for n in range(10)}, [])
    x = Harness(HEADS, source, backfill, ["alpha"])
    x.feed.start_after(4)
    closing.append(x)
    await x.until(3)
    await asyncio.sleep(0.01)
    assert x.numbers() == [5, 6, 7]
    assert backfill.block_reads == [5, 6] and x.feed.backfilled == 2
    assert not x.failovers()


async def test_a_new_logs_feed_backfills_from_its_start(closing: list) -> None:
    chain_logs = [lg(b, i) for b in range(10, 14) for i in range(2)]
    source = FakeSource({"alpha": [[lg(11, 0), lg(13, 0), h(14), lg(14, 0), None]]})
    x = Harness(LOGS, source, FakeBackfill(13, {}, chain_logs), ["alpha"])
    x.feed.start_after(11)
    closing.append(x)
    await x.until(5)
    await asyncio.sleep(0.01)
    got = [
        (int(orjson.loads(r)["blockNumber"], 16), int(orjson.loads(r)["logIndex"], 16))
        for r in x.out
    ]
    assert got == [(12, 0), (12, 1), (13, 0), (13, 1), (14, 0)]
    assert x.feed.backfilled == 4 and not x.failovers()


async def test_a_start_beyond_the_backfill_bound_is_a_reported_gap(closing: list) -> None:
    source = FakeSource({"alpha": [[h(20), h(21), None]]})
    backfill = FakeBackfill(20, {n: h(n) for n in range(30)}, [])
    x = Harness(HEADS, source, backfill, ["alpha"], max_backfill_blocks=3)
    x.feed.start_after(4)
    closing.append(x)
    await x.until(4)
    assert x.numbers() == [18, 19, 20, 21]
    assert x.feed.gaps == 13
    (ev,) = x.failovers()
    assert ev.gap and ev.from_provider == ev.to_provider == "alpha" and ev.backfilled == 3


async def test_no_provider_reachable_retries_with_backoff(closing: list) -> None:
    source = FakeSource({})
    x = Harness(HEADS, source, FakeBackfill(None, {}, []), ["alpha"])
    closing.append(x)
    async with asyncio.timeout(2):
        while x.feed.state != "reconnecting":  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    source.scripts["alpha"] = [[h(1), None]]
    await x.until(1)
    assert x.feed.state == "live"


async def test_a_stale_stream_is_left_for_the_next_provider(closing: list) -> None:
    source = FakeSource({"alpha": [[h(1), None]], "beta": [[h(2), None]]})
    x = Harness(
        HEADS,
        source,
        FakeBackfill(1, {}, []),
        ["alpha", "beta"],
        stale_min_ms=30,
        stale_factor=0.0,
    )
    closing.append(x)
    await x.until(2)
    assert x.numbers() == [1, 2]
    assert [(e.from_provider, e.to_provider) for e in x.failovers()] == [("alpha", "beta")]
