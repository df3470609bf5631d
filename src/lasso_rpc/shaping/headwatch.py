"""``HeadWatch``: keeps one chain's ``BlockLedger`` true to the chain, over the network.

- ``confirm``: an unfinalized or realtime cache hit is served only once the head (number and
  hash) was confirmed upstream recently enough (``cache.head_check_ms``); otherwise it waits for
  one check shared by every hit (``eth_getBlockByNumber("latest")`` to the chain's best
  provider; also the `finalized` block, at most once per block time).
- ``observe``: blocks seen elsewhere (the head tracker's polls, answers passing through the
  cache) are recorded; a conflict starts a ``walk``.
- ``walk``: from the conflicting height down, the canonical blocks are fetched until one agrees
  with the ledger; everything above it is the reorg. The ledger is told (``reorg``) and the
  owner's ``on_reorg(fork)`` evicts the cache; while walking, the ledger says ``walking`` and
  nothing unfinalized is served. When the network fails the walk, the fork is taken at the
  lowest unfinalized height (everything unfinalized goes).

Every task it starts is its own and is cancelled by ``aclose``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import msgspec

from lasso_rpc.clock import Clock
from lasso_rpc.errors import TransportError
from lasso_rpc.jsonrpc.codec import decode_upstream
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.shaping.blockrefs import Named, answer_blocks
from lasso_rpc.shaping.ledger import BlockLedger
from lasso_rpc.upstream.chain import ChainRuntime
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["HeadWatch"]

_MAX_WALK = 128
_WALK_BATCH = 8
_CHECK_TIMEOUT_S = 3.0


def _block_request(tag: str) -> bytes:
    return b'{"jsonrpc":"2.0","id":0,"method":"eth_getBlockByNumber","params":["%s",false]}' % (
        tag.encode()
    )


class HeadWatch:
    def __init__(
        self,
        chain: ChainRuntime,
        ledger: BlockLedger,
        *,
        check_ms: int,
        clock: Clock,
        on_reorg: Callable[[int], Awaitable[None]],
    ) -> None:
        self._chain = chain
        self.ledger = ledger
        block_ms = chain.config.block_time_ms
        self.check_ms = min(check_ms, max(1, block_ms // 2)) if check_ms > 0 else 0
        self._finalized_every_ms = float(max(1000, block_ms))
        self._finalized_at = float("-inf")
        self._clock = clock
        self._on_reorg = on_reorg
        self._check: asyncio.Task[object] | None = None
        self._check_started = float("-inf")
        self._walk: asyncio.Task[object] | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self.checks = 0
        self.reorgs = 0

    # -- confirmation ----------------------------------------------------------------------

    def fresh(self, arrived_ms: float) -> bool:
        """The head is confirmed recently enough for a request that arrived at ``arrived_ms``."""
        ledger = self.ledger
        if ledger.walking:
            return False
        if self.check_ms == 0:
            return ledger.confirmed_ms >= arrived_ms
        return ledger.confirmed_ms >= self._clock.now_ms() - self.check_ms

    async def confirm(self, arrived_ms: float) -> bool:
        """Wait until ``fresh(arrived_ms)``, checking the head if needed (one check shared by
        every caller); False when the head could not be confirmed."""
        if self.fresh(arrived_ms):
            return True
        task = self._check
        stale_check = self._check_started < arrived_ms
        if task is not None and not task.done() and stale_check and self.check_ms == 0:
            # A check sent before we arrived cannot confirm for us: wait it out, send another.
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
            task = self._check
        if task is None or task.done() or (self.check_ms == 0 and self._check_started < arrived_ms):
            # Its start is now, before it runs: callers arriving later know to start another.
            self._check_started = self._clock.now_ms()
            task = self._check = self._spawn(self._check_head(self._check_started))
        try:
            if not await asyncio.shield(task):
                return False
        except Exception:
            return False
        return self.fresh(arrived_ms)  # False while a fork search runs: the caller misses

    async def _check_head(self, started: float) -> bool:
        self.checks += 1
        for p in self._providers():
            try:
                top = await self._fetch(p, "latest")
            except _Unusable:
                continue
            if top is None:
                continue
            ledger = self.ledger
            prev = ledger.head
            had_parent = top.number - 1 in ledger.hashes
            conflict = ledger.observe(top.number, top.hash, top.parent)
            if conflict is None and prev is not None and top.number > prev + 1 and not had_parent:
                # Blocks were mined since the last look: is the block we knew still there?
                old = ledger.hashes.get(prev)
                mid = await self._fetch(p, hex(prev))
                if mid is not None and old is not None:
                    conflict = ledger.observe(mid.number, mid.hash, mid.parent)
            elif conflict is None and prev is not None and top.number < prev:
                # Behind what we knew: a lagging answer, or a chain that got shorter.
                mid = await self._fetch(p, hex(prev))
                if mid is None:
                    await self._shortened(top.number + 1)
                else:
                    conflict = ledger.observe(mid.number, mid.hash, mid.parent)
            if conflict is not None:
                self.start_walk(conflict)
            walk = self._walk
            if walk is not None and not walk.done():
                await asyncio.shield(walk)
            if self._finalized_due():
                await self._refresh_finalized(p)
            if not ledger.walking:
                ledger.confirmed_ms = max(ledger.confirmed_ms, started)
            return True
        return False

    def _finalized_due(self) -> bool:
        return self._clock.now_ms() - self._finalized_at >= self._finalized_every_ms

    async def _refresh_finalized(self, p: ProviderRuntime | None) -> None:
        """The providers' `finalized` block (``p``, else the best provider)."""
        try:
            if p is None:
                providers = self._providers()
                if not providers:
                    return
                p = providers[0]
            fin = await self._fetch(p, "finalized")
        except _Unusable:
            return
        head = self.ledger.head
        self._finalized_at = self._clock.now_ms()
        known = fin is not None and head is not None and fin.number <= head
        self.ledger.set_finalized(fin.number if known and fin is not None else None)

    # -- observations and walks ------------------------------------------------------------

    def observe(self, blocks: list[Named], *, confirms: bool = False) -> bool:
        """Record blocks seen elsewhere; False when they conflict with the ledger (a walk has
        started). ``confirms``: the first block is a provider's head, fresh from the network."""
        ledger = self.ledger
        prev = ledger.head
        for b in blocks:
            conflict = ledger.observe(b.number, b.hash, b.parent)
            if conflict is not None:
                self.start_walk(conflict)
                return False
        if confirms and self._finalized_due():
            self._finalized_at = self._clock.now_ms()  # one refresh at a time
            self._spawn(self._refresh_finalized(None))
        if confirms and blocks and not ledger.walking:
            # Only a head at or one past the known one says nothing was replaced in between.
            top = blocks[0].number
            if prev is None or prev <= top <= prev + 1:
                ledger.confirmed_ms = max(ledger.confirmed_ms, self._clock.now_ms())
        return True

    async def _shortened(self, fork: int) -> None:
        """The chain no longer has the blocks from ``fork`` up (e.g. a node rolled back)."""
        self.ledger.reorg(fork)
        self.reorgs += 1
        await self._on_reorg(fork)

    def start_walk(self, height: int) -> None:
        if self._walk is not None and not self._walk.done():
            return  # one at a time; the next check sees what this one misses
        self.ledger.start_walk()
        self._walk = self._spawn(self._walk_from(height))

    async def _walk_from(self, height: int) -> None:
        ledger = self.ledger
        ledger.start_walk()
        fork: int | None = None
        canonical: list[Named] = []
        try:
            for provider in self._providers():
                try:
                    fork, canonical = await self._search(provider, height)
                    break
                except _Unusable:
                    continue
        except asyncio.CancelledError:
            ledger.walking = False
            raise
        if fork is None:  # nobody answered: give up everything unfinalized
            fin = ledger.finalized
            fork = 0 if fin is None else fin + 1
        if fork > height:  # the ledger was right: the conflicting block was on a side fork
            ledger.walking = False
            return
        ledger.reorg(fork)
        for b in reversed(canonical):
            ledger.observe(b.number, b.hash, b.parent)
        self.reorgs += 1
        await self._on_reorg(fork)

    async def _search(self, p: ProviderRuntime, height: int) -> tuple[int, list[Named]]:
        """(fork point, canonical blocks fetched from it up), walking down from ``height``."""
        ledger = self.ledger
        top = await self._fetch(p, hex(height))
        if top is None:
            raise _Unusable
        if ledger.hashes.get(height) == top.hash:
            return height + 1, []
        fork, block, canonical = height, top, [top]
        ahead: dict[int, Named | None] = {}
        for _ in range(_MAX_WALK):
            below = fork - 1
            if below < 0 or ledger.is_final(below):
                return fork, canonical
            known = ledger.hashes.get(below)
            if known is not None and known == (block.parent or "").lower():
                return fork, canonical
            if below not in ahead:  # the next few heights down, fetched at once
                heights = range(below, max(below - _WALK_BATCH, -1), -1)
                got = await asyncio.gather(*(self._fetch(p, hex(h)) for h in heights))
                ahead = dict(zip(heights, got, strict=True))
            nxt = ahead[below]
            if nxt is None:
                raise _Unusable
            if known is not None and known == nxt.hash:
                return fork, canonical
            fork, block = below, nxt
            canonical.append(nxt)
        fin = ledger.finalized
        return (0 if fin is None else fin + 1), canonical

    # -- plumbing --------------------------------------------------------------------------

    def _providers(self) -> list[ProviderRuntime]:
        chain = self._chain
        req = RouteRequest(chain.routing.default_strategy)
        order = chain.decide(req, "eth_getBlockByNumber", True).order
        return [chain.providers[pid] for pid in order[:3]]

    async def _fetch(self, p: ProviderRuntime, tag: str) -> Named | None:
        """The block ``tag`` (a tag or hex number) from ``p``; None when it has none."""
        try:
            resp = await p.transport.post(_block_request(tag), timeout_s=_CHECK_TIMEOUT_S)
            reply = decode_upstream(resp.body)
        except (TransportError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Unusable from exc
        if resp.status != 200 or not isinstance(reply.result, msgspec.Raw):
            raise _Unusable
        blocks = answer_blocks(bytes(reply.result))
        return blocks[0] if blocks else None

    def _spawn(self, coro: Awaitable[object]) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    def __repr__(self) -> str:
        return (
            f"HeadWatch({self._chain.name} check_ms={self.check_ms} checks={self.checks}"
            f" reorgs={self.reorgs} {self.ledger!r})"
        )


class _Unusable(Exception):
    """A provider could not answer a head check (network, error, malformed)."""
