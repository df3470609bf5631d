"""HeadWatch (head checks, fork search, eviction callback), in-flight dedup and range splitting,
against in-memory transports: no sockets, no sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.config import load_config_text
from lasso_rpc.errors import AllAttemptsFailed, DeadlineExceeded, TransportError
from lasso_rpc.observability.events import EventBus
from lasso_rpc.resilience.call import CallOutcome
from lasso_rpc.routing.decision import Decision
from lasso_rpc.shaping.dedup import RETRY, InFlight
from lasso_rpc.shaping.headwatch import HeadWatch
from lasso_rpc.shaping.ledger import BlockLedger
from lasso_rpc.shaping.logsplit import split_run
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.upstream.chain import ChainRuntime

pytestmark = pytest.mark.asyncio


class FakeChain:
    """A chain as a provider's transport answers ``eth_getBlockByNumber``; ``reorg`` renames."""

    def __init__(self, head: int) -> None:
        self.salt = 0
        self.hashes = {n: self._h(n, 0) for n in range(head + 1)}
        self.calls: list[str] = []
        self.down = False

    @staticmethod
    def _h(n: int, salt: int) -> str:
        return f"0x{salt:02x}{n:062x}"

    @property
    def head(self) -> int:
        return max(self.hashes)

    def mine(self, k: int = 1) -> None:
        for _ in range(k):
            self.hashes[self.head + 1] = self._h(self.head + 1, self.salt)

    def reorg(self, depth: int) -> None:
        self.salt += 1
        for n in range(self.head - depth + 1, self.head + 1):
            self.hashes[n] = self._h(n, self.salt)

    def rewind(self, to: int) -> None:
        for n in [n for n in self.hashes if n > to]:
            del self.hashes[n]

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        if self.down:
            raise TransportError("down")
        req = orjson.loads(body)
        tag = req["params"][0]
        self.calls.append(tag)
        n = (
            self.head
            if tag == "latest"
            else max(0, self.head - 10)
            if tag == "finalized"
            else int(tag, 16)
        )
        result: Any = None
        if n in self.hashes:
            parent = self.hashes.get(n - 1, "0x" + "00" * 32)
            result = {"number": hex(n), "hash": self.hashes[n], "parentHash": parent}
        return UpstreamResponse(200, orjson.dumps({"jsonrpc": "2.0", "id": 0, "result": result}))

    async def aclose(self) -> None:
        return None


def _chain(fake: FakeChain, clock: FakeClock, block_time_ms: int = 1000) -> ChainRuntime:
    cfg = load_config_text(
        [
            (
                "t.yaml",
                "name: T\nslug: t\nchains:\n  eth:\n    chain_id: 1\n"
                f"    block_time_ms: {block_time_ms}\n"
                "    providers: [{id: a, url: 'http://127.0.0.1:9'}]\n",
            )
        ]
    )
    import random

    chain = ChainRuntime(
        "t",
        "eth",
        cfg.profiles["t"].chains["eth"],
        bus=EventBus(),
        clock=clock,
        rng=random.Random(1),
    )
    chain.providers["a"].transport = fake
    return chain


def _watch(fake: FakeChain, clock: FakeClock, check_ms: int = 250) -> tuple[HeadWatch, list[int]]:
    forks: list[int] = []

    async def on_reorg(fork: int) -> None:
        forks.append(fork)

    ledger = BlockLedger(finality_depth=64)
    return HeadWatch(
        _chain(fake, clock), ledger, check_ms=check_ms, clock=clock, on_reorg=on_reorg
    ), forks


async def test_a_check_confirms_the_head_and_concurrent_hits_share_it() -> None:
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, _ = _watch(fake, clock)
    assert not watch.fresh(clock.now_ms())
    oks = await asyncio.gather(*(watch.confirm(clock.now_ms()) for _ in range(50)))
    assert all(oks)
    assert fake.calls.count("latest") == 1  # one check for all fifty
    assert watch.ledger.head == 100 and watch.ledger.finalized == 90  # the tag answered
    clock.advance(249)
    assert watch.fresh(clock.now_ms())
    clock.advance(2)
    assert not watch.fresh(clock.now_ms())  # older than head_check_ms: check again


async def test_check_ms_zero_wants_a_check_sent_after_arrival() -> None:
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, _ = _watch(fake, clock, check_ms=0)
    await watch.confirm(clock.now_ms())
    clock.advance(1)
    assert not watch.fresh(clock.now_ms())
    await watch.confirm(clock.now_ms())
    assert fake.calls.count("latest") == 2


async def test_a_reorg_at_the_head_is_found_and_its_fork_point_reported() -> None:
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, forks = _watch(fake, clock)
    await watch.confirm(clock.now_ms())
    for n in range(95, 101):  # what answers have shown the ledger
        watch.ledger.observe(n, fake.hashes[n])
    seq = watch.ledger.seq
    fake.reorg(3)  # 98, 99, 100 replaced
    clock.advance(1000)
    assert await watch.confirm(clock.now_ms())
    assert forks == [98]
    assert watch.ledger.stale(seq, 98) and not watch.ledger.stale(seq, 97)
    assert watch.ledger.hashes[100] == fake.hashes[100]  # the new chain recorded


async def test_a_reorg_hidden_behind_new_blocks_is_found() -> None:
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, forks = _watch(fake, clock)
    await watch.confirm(clock.now_ms())
    for n in range(95, 101):
        watch.ledger.observe(n, fake.hashes[n])
    fake.reorg(2)  # 99, 100 replaced ...
    fake.mine(3)  # ... and three blocks on top before we look again
    clock.advance(1000)
    assert await watch.confirm(clock.now_ms())
    assert forks == [99]


async def test_a_shorter_chain_drops_the_heights_it_no_longer_has() -> None:
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, forks = _watch(fake, clock)
    await watch.confirm(clock.now_ms())
    fake.rewind(97)
    clock.advance(1000)
    assert await watch.confirm(clock.now_ms())
    assert forks == [98] and watch.ledger.head == 97


async def test_a_conflict_from_a_side_fork_is_a_false_alarm() -> None:
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, forks = _watch(fake, clock)
    await watch.confirm(clock.now_ms())
    from lasso_rpc.shaping.blockrefs import Named

    assert not watch.observe([Named(100, "0x" + "ee" * 32)])  # someone shows another block 100
    assert watch.ledger.walking
    await asyncio.sleep(0)
    await watch._walk  # type: ignore[misc]
    assert forks == [] and not watch.ledger.walking  # the chain still has ours


async def test_heights_the_ledger_never_saw_count_as_replaced() -> None:
    """Only 99 and 100 were seen (the first check): a reorg there cannot be bounded below
    without knowing 98, 97, ...: every unfinalized height goes."""
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, forks = _watch(fake, clock)
    await watch.confirm(clock.now_ms())
    fake.reorg(2)
    clock.advance(1000)
    assert await watch.confirm(clock.now_ms())
    assert forks == [91]


async def test_when_nobody_answers_the_fork_search_gives_up_everything_unfinalized() -> None:
    clock, fake = FakeClock(10_000), FakeChain(100)
    watch, forks = _watch(fake, clock)
    await watch.confirm(clock.now_ms())
    fake.down = True
    from lasso_rpc.shaping.blockrefs import Named

    watch.observe([Named(100, "0x" + "ee" * 32)])
    await watch._walk  # type: ignore[misc]
    assert forks == [91]  # finalized is 90
    clock.advance(1000)
    assert not await watch.confirm(clock.now_ms())  # and nothing is confirmed while down


# -- in-flight dedup -----------------------------------------------------------------------


def _outcome(payload: bytes = b'"0x1"') -> CallOutcome:
    return CallOutcome(True, payload, "a", (), False, 1.0, Decision(("a",), "x", "y"))


async def test_followers_get_the_leaders_outcome_and_their_own_deadline() -> None:
    clock = FakeClock()
    fl = InFlight(clock)
    waiters = fl.begin(b"k")
    assert fl.waiters(b"k") is waiters
    early = asyncio.ensure_future(fl.follow(waiters, deadline_ms=10_000))
    late = asyncio.ensure_future(fl.follow(waiters, deadline_ms=0))  # no time left at all
    await asyncio.sleep(0)
    with pytest.raises(DeadlineExceeded):
        await late
    out = _outcome()
    fl.end(b"k", waiters, out)
    assert await early is out
    assert fl.waiters(b"k") is None and (fl.leaders, fl.followers) == (1, 2)


async def test_a_leader_that_gives_up_sends_its_followers_to_try_again() -> None:
    fl = InFlight(FakeClock())
    waiters = fl.begin(b"k")
    f = asyncio.ensure_future(fl.follow(waiters, deadline_ms=10_000))
    await asyncio.sleep(0)
    fl.end(b"k", waiters, RETRY)
    assert await f is None
    waiters = fl.begin(b"k")
    g = asyncio.ensure_future(fl.follow(waiters, deadline_ms=10_000))
    await asyncio.sleep(0)
    fl.end(b"k", waiters, AllAttemptsFailed("all failed"))
    with pytest.raises(AllAttemptsFailed):
        await g


# -- range splitting -----------------------------------------------------------------------


async def test_split_run_halves_refused_pieces_and_keeps_block_order() -> None:
    answered: list[tuple[int, int]] = []
    refusal = {"error_class": "capability", "error": "HTTP 200: -32005 block range too large"}

    async def piece(a: int, b: int, avoid: frozenset[str]) -> CallOutcome:
        if b - a + 1 > 3:  # this provider takes 3 blocks at most
            raise AllAttemptsFailed("refused", data={"attempts": [refusal]})
        answered.append((a, b))
        return _outcome(orjson.dumps([{"block": n} for n in range(a, b + 1)]))

    outs = await split_run(0, 19, 10, frozenset(), piece, concurrency=2)
    blocks = [x["block"] for o in outs for x in orjson.loads(o.payload)]
    assert blocks == list(range(20))
    assert all(b - a + 1 <= 3 for a, b in answered)


async def test_split_run_raises_other_failures() -> None:
    async def piece(a: int, b: int, avoid: frozenset[str]) -> CallOutcome:
        raise AllAttemptsFailed("down", data={"attempts": [{"error_class": "provider"}]})

    with pytest.raises(AllAttemptsFailed):
        await split_run(0, 9, 5, frozenset(), piece, concurrency=2)
