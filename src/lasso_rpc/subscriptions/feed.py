"""One multiplexed upstream subscription: provider choice, failover, back-fill, order, dedupe.

A ``Feed`` is one task that owns everything a (chain, kind, filter) subscription delivers, so
ordering is simply the order of its own ``deliver`` calls. The loop:

1. subscribe on the best candidate (``candidates()`` ranks them; the one just lost goes last);
2. catch up: back-fill over HTTP from the last delivered block + 1 up to the provider's head (at
   most ``max_backfill_blocks``; an older remainder is a reported gap), while live items queue
   up in the stream's backlog. After a failover; and on a new feed's first subscription, from
   its start (``start_after``: the router's head when its first client was confirmed), since
   blocks mined while the upstream subscription was on its way are owed to that client too;
3. pump live items through the ledgers (``ledger.py``): duplicates dropped, a jump in block
   numbers back-filled before the block that revealed it, a reorg delivered as the new block with
   the same number, a fork noticed by parent hash repaired back to the common ancestor;
4. on a lost connection, an upstream error, a stale stream (no head for
   ``max(stale_min_ms, stale_factor * block_time_ms)``) or the provider becoming ineligible
   (cordoned, breaker open, lagging): go to 1 with the next provider.

Every move is a ``subscription.failover`` event (from, to, backfilled, gap). Reorgs are marked in
the same catalogue: a ``subscription.failover`` with ``reorg=True`` and ``from == to`` (the
serving provider); an in-stream gap that back-fill could not close is one with ``gap=True``.
For logs, dedupe is by ``(blockHash, logIndex, removed)`` and removed logs (a reorg) are passed on
as the provider sent them; the covered range advances with the stream's head watermark.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from lasso_rpc.clock import Clock
from lasso_rpc.errors import LassoError, TransportError, UpstreamFault
from lasso_rpc.observability.events import Event, SubscriptionFailover
from lasso_rpc.subscriptions.frames import FeedSpec, Head, LogEntry
from lasso_rpc.subscriptions.ledger import HeadLedger, LogLedger, Verdict
from lasso_rpc.subscriptions.options import SubscriptionOptions
from lasso_rpc.subscriptions.seams import Backfill, UpstreamSource, UpstreamStream

__all__ = ["Feed", "FeedInfo"]

log = logging.getLogger("lasso_rpc.subscriptions")
_MAX_REORG_DEPTH = 64
_BURST = 16  # items delivered back to back before the feed yields to the client writers


@dataclass(frozen=True, slots=True)
class FeedInfo:
    key: str
    chain: str
    provider: str | None
    state: str  # starting | live | failing_over | reconnecting
    clients: int
    last_number: int | None
    delivered: int
    backfilled: int
    duplicates: int
    gaps: int
    reorgs: int
    failovers: int


class _Lost(Exception):
    pass


class Feed:
    def __init__(
        self,
        *,
        label: str,
        chain: str,
        spec: FeedSpec,
        source: UpstreamSource,
        backfill: Backfill,
        candidates: Callable[[], list[str]],
        deliver: Callable[[bytes], None],
        publish: Callable[[Event], None],
        on_head: Callable[[str, int], None] | None = None,
        options: SubscriptionOptions,
        block_time_ms: int,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.label = label
        self.chain = chain
        self.spec = spec
        self._source = source
        self._backfill = backfill
        self._candidates = candidates
        self._sink = deliver
        self._publish = publish
        self._on_head = on_head
        self._opts = options
        self._block_time_ms = block_time_ms
        self._clock = clock
        self._rng = rng
        self._heads = HeadLedger()
        self._logs = LogLedger(options.dedupe_window)
        self._last_removed: str | None = None
        self.provider: str | None = None
        self.state = "starting"
        self.live = asyncio.Event()
        self.delivered = self.backfilled = self.duplicates = 0
        self.gaps = self.reorgs = self.failovers = 0

    def start_after(self, number: int) -> None:
        """A client was confirmed while the router's head was ``number``, so it is owed every
        block after it: a feed that has delivered nothing yet starts there (its first catch-up
        back-fills from ``number + 1``); once it has a start, a no-op (manager.py says why)."""
        if self.spec.kind == "newHeads":
            self._heads.start_after(number)
        else:
            self._logs.start_after(number)

    def info(self, clients: int) -> FeedInfo:
        last = self._heads.last if self.spec.kind == "newHeads" else self._logs.covered
        return FeedInfo(
            self.label, self.chain, self.provider, self.state, clients, last, self.delivered,
            self.backfilled, self.duplicates, self.gaps, self.reorgs, self.failovers,
        )  # fmt: skip

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        lost_from: str | None = None
        rounds = 0
        while True:
            stream = None
            for pid in self._order(lost_from):
                stream = await self._open(pid)
                if stream is not None:
                    break
            if stream is None:
                rounds += 1
                self.state = "reconnecting"
                await asyncio.sleep(self._backoff_s(rounds))
                continue
            rounds = 0
            try:
                await self._serve(stream, lost_from)
            except (_Lost, LassoError) as exc:
                log.warning("%s %s: leaving %s: %s", self.chain, self.label, stream.provider, exc)
            except Exception:
                log.exception("%s %s: feed failed on %s", self.chain, self.label, stream.provider)
                await asyncio.sleep(self._backoff_s(1))
            finally:
                stream.close()
            lost_from = stream.provider
            self.state = "failing_over"
            self.live.clear()

    def _order(self, lost_from: str | None) -> list[str]:
        order = self._candidates()
        if lost_from in order and len(order) > 1:
            order.remove(lost_from)
            order.append(lost_from)
        return order

    async def _open(self, pid: str) -> UpstreamStream | None:
        try:
            return await self._source.open(pid, self.spec)
        except (TransportError, UpstreamFault) as exc:
            log.info("%s %s: cannot subscribe on %s: %s", self.chain, self.label, pid, exc)
            return None

    def _backoff_s(self, rounds: int) -> float:
        o = self._opts
        ceiling = min(o.reconnect_max_ms, o.reconnect_base_ms * 2.0 ** min(rounds - 1, 16))
        return ceiling * self._rng.uniform(0.5, 1.0) / 1000.0

    async def _serve(self, stream: UpstreamStream, lost_from: str | None) -> None:
        pid = stream.provider
        self.provider = pid
        backfilled, gap = await self._catch_up(pid)  # nothing to do for a feed with no start
        if lost_from is not None:
            self.failovers += 1
            self._event(lost_from, pid, backfilled, gap)
            log.info(
                "%s %s: moved %s -> %s, back-filled %d%s",
                self.chain, self.label, lost_from, pid, backfilled, " (gap left)" if gap else "",
            )  # fmt: skip
        elif gap:  # the first catch-up could not reach back to the start: not silently
            self._event(pid, pid, backfilled, True)
        self.state = "live"
        self.live.set()
        await self._pump(stream)

    async def _pump(self, stream: UpstreamStream) -> None:
        pid = stream.provider
        stale_s = self._opts.stale_ms(self._block_time_ms) / 1000.0
        tick = min(1.0, stale_s / 3.0)
        loop = asyncio.get_running_loop()
        seen = loop.time()
        heads = self.spec.kind == "newHeads"
        burst = 0
        while True:
            burst += 1
            if burst % _BURST == 0:
                await asyncio.sleep(0)  # let client writers drain a burst before it grows more
            item = None
            try:
                async with asyncio.timeout(tick):
                    item = await stream.next()
            except TimeoutError:
                pass
            now = loop.time()
            if isinstance(item, LogEntry):
                self._accept_log(item)
                continue
            if item is not None:
                seen = now
                if heads:
                    await self._accept_head(item, pid, may_fill=True)
                else:
                    self._logs.advance(item.number - 1)
                    if self._on_head is not None:
                        self._on_head(pid, item.number)
            elif now - seen > stale_s:
                raise _Lost(f"stale: no head for {now - seen:.1f}s")
            order = self._candidates()
            if order and pid not in order:
                raise _Lost("no longer eligible (cordoned, breaker open or lagging)")

    # -- heads -------------------------------------------------------------------------------

    async def _catch_up(self, pid: str) -> tuple[int, bool]:
        """Back-fill what is owed since the last delivered block (or the feed's start) up to
        ``pid``'s head; (items delivered, gap left?)."""
        if self.spec.kind == "logs":
            return await self._catch_up_logs(pid)
        last = self._heads.last
        if last is None:
            return 0, False
        target = await self._backfill.head(pid)
        if target is None or target <= last:
            return 0, False
        gaps = self.gaps
        n = await self._fill(last + 1, target, pid)
        return n, self.gaps > gaps

    async def _fill(self, lo: int, hi: int, pid: str) -> int:
        """Deliver blocks ``lo..hi`` read over HTTP (only the newest ``max_backfill_blocks``)."""
        lo = max(lo, hi - self._opts.max_backfill_blocks + 1)
        n = 0
        for head in await self._backfill.blocks(lo, hi, pid):
            if head is None:
                break  # not known yet: the live stream (or the next fill) brings it
            n += await self._accept_head(head, pid, may_fill=False)
            await asyncio.sleep(0)  # a back-fill is a burst: let client writers drain it
        self.backfilled += n
        return n

    async def _accept_head(self, head: Head, pid: str, *, may_fill: bool) -> int:
        """Deliver ``head`` in order (filling or repairing first); how many blocks went out."""
        v = self._heads.verdict(head)
        if v is Verdict.DUPLICATE:
            self.duplicates += 1
            return 0
        if v is Verdict.STALE:
            return 0
        if v is Verdict.REORG:
            self._deliver(head, pid)
            self.reorgs += 1
            self._event(pid, pid, 0, False, reorg=True)
            log.info("%s %s: reorg at %d via %s", self.chain, self.label, head.number, pid)
            return 1
        gaps, n = self.gaps, 0
        if v is Verdict.GAP and may_fill:
            last = self._heads.last
            assert last is not None
            n = await self._fill(last + 1, head.number - 1, pid)
            v = self._heads.verdict(head)
        if v is Verdict.GAP:
            last = self._heads.last
            assert last is not None
            self.gaps += head.number - last - 1
            log.warning(
                "%s %s: gap %d..%d could not be back-filled",
                self.chain, self.label, last + 1, head.number - 1,
            )  # fmt: skip
        elif v is Verdict.FORK:
            n += await self._repair(head, pid)
        elif v in (Verdict.DUPLICATE, Verdict.STALE, Verdict.REORG):
            return n  # the fill brought this very block, or the provider changed its mind
        self._deliver(head, pid)
        if may_fill and self.gaps > gaps:
            self._event(pid, pid, n, True)
        return n + 1

    async def _repair(self, head: Head, pid: str) -> int:
        """Our tip is not ``head``'s parent: deliver the new canonical blocks back to the fork."""
        replaced: list[Head] = []
        expect = head.parent_hash
        n = head.number - 1
        low = self._heads.low if self._heads.low is not None else n
        while n >= low and len(replaced) < _MAX_REORG_DEPTH:
            if self._heads.hash_at(n) == expect:
                break
            got = (await self._backfill.blocks(n, n, pid))[0]
            if got is None or got.hash != expect:
                return 0  # the provider cannot show the fork: deliver ``head`` as it is
            replaced.append(got)
            expect, n = got.parent_hash, n - 1
        else:
            return 0
        for block in reversed(replaced):
            self._deliver(block, pid)
        self.reorgs += len(replaced)
        self._event(pid, pid, len(replaced), False, reorg=True)
        log.info("%s %s: reorg of depth %d repaired", self.chain, self.label, len(replaced))
        return len(replaced)

    def _deliver(self, head: Head, pid: str) -> None:
        self._heads.record(head)
        self.delivered += 1
        if self._on_head is not None:
            self._on_head(pid, head.number)
        self._sink(head.raw)

    # -- logs --------------------------------------------------------------------------------

    def _accept_log(self, lg: LogEntry) -> int:
        if not self._logs.owed(lg):
            return 0  # at or before the feed's start: after logs back-filled above it
        if not self._logs.first_time(lg):
            self.duplicates += 1
            return 0
        self.delivered += 1
        self._logs.advance(lg.block_number - 1)
        self._sink(lg.raw)
        if lg.removed and lg.block_hash != self._last_removed:
            self._last_removed = lg.block_hash
            self.reorgs += 1
            pid = self.provider
            self._event(pid, pid, 0, False, reorg=True)
        return 1

    async def _catch_up_logs(self, pid: str) -> tuple[int, bool]:
        covered = self._logs.covered
        if covered is None:
            return 0, False
        target = await self._backfill.head(pid)
        if target is None or target <= covered:
            return 0, False
        lo = max(covered + 1, target - self._opts.max_backfill_blocks + 1)
        gap = lo > covered + 1
        self.gaps += lo - covered - 1
        assert self.spec.filter is not None
        logs = await self._backfill.logs(self.spec.filter, lo, target, pid)
        if logs is None:
            self.gaps += target - lo + 1
            log.warning("%s %s: logs %d..%d not back-filled", self.chain, self.label, lo, target)
            return 0, True
        n = 0
        for i, entry in enumerate(logs, 1):
            n += self._accept_log(entry)
            if i % _BURST == 0:
                await asyncio.sleep(0)
        self._logs.advance(target)
        self.backfilled += n
        return n, gap

    def _event(
        self, src: str | None, dst: str | None, backfilled: int, gap: bool, *, reorg: bool = False
    ) -> None:
        self._publish(
            SubscriptionFailover(
                ts=self._clock.wall_s(),
                chain=self.chain,
                subscription=self.label,
                from_provider=src,
                to_provider=dst,
                backfilled=backfilled,
                gap=gap,
                reorg=reorg,
            )
        )

    def __repr__(self) -> str:
        return (
            f"Feed({self.chain} {self.label} on {self.provider} {self.state} "
            f"delivered={self.delivered} backfilled={self.backfilled} gaps={self.gaps} "
            f"reorgs={self.reorgs} failovers={self.failovers})"
        )
