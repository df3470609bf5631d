"""A deterministic simulated chain, shared by every MockProvider of a fleet.

Block hashes are sha256 of (chain id, number, parent hash, reorg salt, included tx hashes), so
every provider serving the chain answers the same hash for the same number, and ``reorg(depth)``
gives new hashes at the same numbers. Logs, balances and nonces are derived from the same
digests: two runs with the same clock produce the same chain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from lasso_rpc.battle.providers.blocks import (
    APPROVAL_TOPIC,
    TRANSFER_TOPIC,
    AlreadyKnown,
    Block,
    ChainEvent,
    Log,
    LogFilter,
    Tx,
    address_of,
    digest,
    hex_hash,
    pad_topic,
)
from lasso_rpc.clock import SYSTEM_CLOCK, Clock

__all__ = ["ChainListener", "SimulatedChain"]

_log = logging.getLogger(__name__)

ChainListener = Callable[[ChainEvent], None]
_EVERY_LOG = LogFilter()


class SimulatedChain:
    """Blocks, logs, balances and accepted transactions of one simulated chain.

    Blocks come from ``mine()`` (tests) or ``produce()`` (a task the fleet owns). Only the last
    ``max_history`` blocks are kept; older ones are answered as unknown.
    """

    def __init__(
        self,
        chain_id: int = 1,
        *,
        block_time_ms: int = 1000,
        logs_per_block: int = 3,
        initial_blocks: int = 128,
        max_history: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_history < 1 or initial_blocks < 0 or logs_per_block < 0:
            raise ValueError("max_history >= 1, initial_blocks >= 0, logs_per_block >= 0")
        self.chain_id = chain_id
        self.block_time_ms = block_time_ms
        self.logs_per_block = logs_per_block
        self.max_history = max_history
        self._clock = clock
        self._salt = 0  # bumped by each reorg so replaced blocks get new hashes
        self._blocks: dict[int, Block] = {}  # insertion order = number order
        self._by_hash: dict[str, Block] = {}
        self._tx_block: dict[str, int] = {}  # tx hash -> number of the block including it
        self._pending: list[Tx] = []
        self._listeners: list[ChainListener] = []
        self._contracts = tuple(address_of("contract", chain_id, k) for k in range(4))
        self._append(self._build(0, "0x" + "00" * 32, int(clock.wall_s()) - initial_blocks, ()))
        for _ in range(initial_blocks):
            self._append(self._next_block((), timestamp=self.head.timestamp + 1))

    # -- reading ---------------------------------------------------------------------------

    @property
    def head(self) -> Block:
        return self._blocks[self.head_number]

    @property
    def head_number(self) -> int:
        return next(reversed(self._blocks))

    @property
    def oldest_number(self) -> int:
        return next(iter(self._blocks))

    @property
    def contracts(self) -> tuple[str, ...]:
        """Addresses that emit the synthetic logs."""
        return self._contracts

    def block(self, number: int) -> Block | None:
        return self._blocks.get(number)

    def block_by_hash(self, block_hash: str) -> Block | None:
        return self._by_hash.get(block_hash.lower())

    def logs(self, from_block: int, to_block: int, flt: LogFilter = _EVERY_LOG) -> list[Log]:
        lo, hi = max(from_block, self.oldest_number), min(to_block, self.head_number)
        blocks = self._blocks
        return [lg for n in range(lo, hi + 1) for lg in blocks[n].logs if flt.matches(lg)]

    def balance(self, address: str) -> int:
        return int.from_bytes(digest("balance", self.chain_id, address.lower())[:9], "big")

    def nonce(self, address: str) -> int:
        return digest("nonce", self.chain_id, address.lower())[0]

    def find_tx(self, tx_hash: str) -> tuple[Block, int] | None:
        """The block including a transaction and its index, or None (unknown or pending)."""
        number = self._tx_block.get(tx_hash.lower())
        block = None if number is None else self._blocks.get(number)
        if block is None:
            return None
        index = next(i for i, t in enumerate(block.txs) if t.hash == tx_hash.lower())
        return block, index

    # -- changing --------------------------------------------------------------------------

    def send_raw_transaction(self, raw: str) -> str:
        """Accept a raw transaction into the pool (included by the next block); its hash."""
        tx_hash = hex_hash("rawtx", raw.lower())
        if tx_hash in self._tx_block or any(t.hash == tx_hash for t in self._pending):
            raise AlreadyKnown(tx_hash)
        sender = address_of("sender", raw.lower())
        tx = Tx(tx_hash, sender, address_of("to", raw.lower()), self.nonce(sender), "0x", raw)
        self._pending.append(tx)
        return tx_hash

    def mine(self, n: int = 1) -> Block:
        """Append ``n`` blocks (pending transactions go into the first); the new head."""
        for _ in range(n):
            block = self._next_block(self._pending_take())
            self._append(block)
            self._notify(ChainEvent(block))
        return self.head

    def reorg(self, depth: int) -> tuple[Block, ...]:
        """Replace the last ``depth`` blocks with new ones at the same numbers."""
        if not 1 <= depth <= len(self._blocks):
            raise ValueError(f"reorg depth must be 1..{len(self._blocks)}")
        self._salt += 1
        old = [self._blocks[n] for n in range(self.head_number - depth + 1, self.head_number + 1)]
        parent_hash = old[0].parent_hash
        new: list[Block] = []
        for prev in old:
            block = self._build(prev.number, parent_hash, prev.timestamp, _own_txs(prev))
            del self._by_hash[prev.hash]
            self._blocks[block.number] = block
            self._by_hash[block.hash] = block
            parent_hash = block.hash
            new.append(block)
        for prev, block in zip(old, new, strict=True):
            self._notify(ChainEvent(block, replaced=prev))
        return tuple(new)

    def add_listener(self, listener: ChainListener) -> Callable[[], None]:
        """Call ``listener`` for each new canonical block; returns the function removing it."""
        self._listeners.append(listener)
        return lambda: self.remove_listener(listener)

    def remove_listener(self, listener: ChainListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def produce(self) -> None:
        """Mine one block every ``block_time_ms`` until cancelled (the fleet owns this task)."""
        if self.block_time_ms <= 0:
            return
        loop = asyncio.get_running_loop()
        interval = self.block_time_ms / 1000.0
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.mine()
            due += interval  # scheduled from the start, so a slow loop does not stretch blocks

    # -- internals -------------------------------------------------------------------------

    def _pending_take(self) -> tuple[Tx, ...]:
        txs, self._pending = tuple(self._pending), []
        return txs

    def _next_block(self, own_txs: tuple[Tx, ...], timestamp: int | None = None) -> Block:
        head = self.head
        if timestamp is None:  # strictly increasing, as consensus requires
            timestamp = max(head.timestamp + 1, int(self._clock.wall_s()))
        return self._build(head.number + 1, head.hash, timestamp, own_txs)

    def _build(self, number: int, parent: str, timestamp: int, own_txs: tuple[Tx, ...]) -> Block:
        block_hash = hex_hash(self.chain_id, number, parent, self._salt, *(t.hash for t in own_txs))
        txs: list[Tx] = []
        logs: list[Log] = []
        for i in range(self.logs_per_block if number > 0 else 0):
            contract = self._contracts[(number + i) % len(self._contracts)]
            sender, to = address_of("from", number, i), address_of("to", number, i)
            tx = Tx(hex_hash("tx", block_hash, i), sender, contract, i, "0xa9059cbb")
            topic0 = APPROVAL_TOPIC if (number + i) % 3 == 0 else TRANSFER_TOPIC
            data = "0x" + digest("amount", self.chain_id, number, i).hex()
            topics = (topic0, pad_topic(sender), pad_topic(to))
            logs.append(Log(contract, topics, data, number, block_hash, tx.hash, i, i))
            txs.append(tx)
        txs.extend(own_txs)
        return Block(number, block_hash, parent, timestamp, tuple(txs), tuple(logs))

    def _append(self, block: Block) -> None:
        self._blocks[block.number] = block
        self._by_hash[block.hash] = block
        for tx in _own_txs(block):
            self._tx_block[tx.hash] = block.number
        while len(self._blocks) > self.max_history:
            old = self._blocks.pop(next(iter(self._blocks)))
            del self._by_hash[old.hash]
            for tx in _own_txs(old):
                self._tx_block.pop(tx.hash, None)

    def _notify(self, event: ChainEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one broken subscriber must not stop block production
                _log.exception("chain listener %r failed", listener)

    def __repr__(self) -> str:
        return (
            f"SimulatedChain(chain_id={self.chain_id}, head={self.head_number}, "
            f"oldest={self.oldest_number}, block_time_ms={self.block_time_ms}, "
            f"pending={len(self._pending)}, reorgs={self._salt})"
        )


def _own_txs(block: Block) -> tuple[Tx, ...]:
    """The accepted (raw) transactions of a block, without the synthetic ones."""
    return tuple(t for t in block.txs if t.raw is not None)
