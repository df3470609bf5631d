"""Several anvil nodes sharing one chain: ``AnvilLockstep`` (see ``providers.anvil`` for a node).

N ``--no-mining`` nodes with one chain id and genesis timestamp; ``mine()`` gossips the pools in
one canonical order (anvil breaks fee ties by arrival order) and seals the next block everywhere
with the same timestamp. Anvil 1.7 then builds byte-identical blocks (same hashes, roots,
receipts); ``mine()`` checks it. ``restart()`` replays history onto a killed node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lasso_rpc.battle.providers.anvil import AnvilError, AnvilNode, AnvilRpcError, LockstepDiverged

__all__ = ["AnvilLockstep", "SealedBlock"]


@dataclass(frozen=True, slots=True)
class SealedBlock:
    """A block ``AnvilLockstep.mine()`` sealed on every node (kept to replay it on a restart)."""

    number: int
    hash: str
    timestamp: int
    tx_hashes: tuple[str, ...]


class AnvilLockstep:
    """N anvil nodes sharing one chain; ``async with AnvilLockstep(2) as chain: chain.mine()``.

    A read can be served by any node and a receipt is found whichever node got the transaction:
    ``send_raw_to_all()`` / ``gossip()`` play the p2p network, ``mine()`` raises
    ``LockstepDiverged`` unless every running node sealed the same block hash.
    """

    def __init__(
        self,
        n: int = 2,
        *,
        chain_id: int = 31337,
        genesis_timestamp: int | None = None,
        block_interval_s: int = 1,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        if n < 1:
            raise ValueError("a lockstep needs at least one node")
        self.genesis_timestamp = genesis_timestamp or int(time.time())
        self.block_interval_s = block_interval_s
        self.nodes = [
            AnvilNode(
                chain_id=chain_id,
                no_mining=True,
                genesis_timestamp=self.genesis_timestamp,
                extra_args=extra_args,
                binary=binary,
                name=f"anvil-{i}",
            )
            for i in range(n)
        ]
        self.history: list[SealedBlock] = []  # blocks 1.. sealed by mine()
        self._raw: dict[str, str] = {}  # tx hash -> raw, for gossip and replay

    def __getitem__(self, i: int) -> AnvilNode:
        return self.nodes[i]

    def __iter__(self) -> Iterator[AnvilNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        up = sum(n.running for n in self.nodes)
        return f"<AnvilLockstep {up}/{len(self.nodes)} running head={len(self.history)}>"

    def running_nodes(self) -> list[AnvilNode]:
        return [n for n in self.nodes if n.running]

    async def start(self) -> AnvilLockstep:
        try:  # a TaskGroup cancels the other starts if one fails: no process is left behind
            async with asyncio.TaskGroup() as tg:
                for node in self.nodes:
                    tg.create_task(node.start())
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        await asyncio.gather(*(n.aclose() for n in self.nodes), return_exceptions=True)

    async def __aenter__(self) -> AnvilLockstep:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send_raw_to_all(self, raw: str) -> str:
        """Relay a signed transaction to every running node (as p2p gossip would); its hash."""
        tx_hash: str | None = None
        for node in self.running_nodes():
            try:
                tx_hash = await node.rpc("eth_sendRawTransaction", [raw])
            except AnvilRpcError as exc:
                if "already" not in exc.message:  # "transaction already imported"
                    raise
        if tx_hash is None:  # every node had it already: a tx hash is keccak256 of the raw bytes
            tx_hash = await self.running_nodes()[0].rpc("web3_sha3", [raw])
        self._raw[tx_hash] = raw
        return tx_hash

    async def gossip(self) -> list[str]:
        """Give every running node the union of all pools, added in one canonical order."""
        nodes = self.running_nodes()
        pools = await asyncio.gather(*(n.rpc("txpool_content") for n in nodes))
        order: dict[str, tuple[str, int]] = {}
        have: list[set[str]] = []
        for node, pool in zip(nodes, pools, strict=True):
            held: set[str] = set()
            for part in ("pending", "queued"):
                for sender, by_nonce in (pool.get(part) or {}).items():
                    for tx in by_nonce.values():
                        order[tx["hash"]] = (sender.lower(), int(tx["nonce"], 16))
                        held.add(tx["hash"])
                        if tx["hash"] not in self._raw:
                            raw = await node.rpc("eth_getRawTransactionByHash", [tx["hash"]])
                            self._raw[tx["hash"]] = raw
            have.append(held)
        canonical = sorted(order, key=order.__getitem__)
        for node, held in zip(nodes, have, strict=True):
            if len(canonical) > 1 or held != set(canonical):
                # anvil orders equal fees by arrival: same arrival order -> same block.
                await node.rpc("anvil_dropAllTransactions")
                for h in canonical:
                    await node.rpc("eth_sendRawTransaction", [self._raw[h]])
        return canonical

    async def mine(self, *, gossip: bool = True) -> dict[str, Any]:
        """Seal the next block on every running node with the same timestamp; that block."""
        if gossip:
            await self.gossip()
        nodes = self.running_nodes()
        if not nodes:
            raise AnvilError("no running node to mine on")
        ts = self.genesis_timestamp + (len(self.history) + 1) * self.block_interval_s
        await asyncio.gather(*(n.rpc("evm_mine", [ts]) for n in nodes))
        blocks = await asyncio.gather(
            *(n.rpc("eth_getBlockByNumber", ["latest", False]) for n in nodes)
        )
        hashes = {n.name: b["hash"] for n, b in zip(nodes, blocks, strict=True)}
        if len(set(hashes.values())) != 1:
            raise LockstepDiverged(f"block {blocks[0]['number']} differs: {hashes}")
        block: dict[str, Any] = blocks[0]
        for h in block["transactions"]:  # mined without gossip: keep the raw for replays
            if h not in self._raw:
                self._raw[h] = await nodes[0].rpc("eth_getRawTransactionByHash", [h])
        self.history.append(
            SealedBlock(int(block["number"], 16), block["hash"], ts, tuple(block["transactions"]))
        )
        return block

    async def restart(self, node: AnvilNode) -> None:
        """Start a stopped node (fresh genesis) and replay the chain so it rejoins in lockstep."""
        await node.start()
        await self.resync(node)

    async def resync(self, node: AnvilNode) -> None:
        """Replay the blocks ``node`` misses, checking every hash, then share the pools."""
        head = await node.block_number()
        if head > len(self.history):
            raise LockstepDiverged(f"{node.name} is ahead of the lockstep ({head})")
        ours = (await node.rpc("eth_getBlockByNumber", [hex(head), False]))["hash"]
        if head and ours != self.history[head - 1].hash:
            raise LockstepDiverged(f"{node.name} has another block {head}")
        await node.rpc("anvil_dropAllTransactions")
        for sealed in self.history[head:]:
            for h in sealed.tx_hashes:
                await node.rpc("eth_sendRawTransaction", [self._raw[h]])
            await node.rpc("evm_mine", [sealed.timestamp])
            got = await node.rpc("eth_getBlockByNumber", ["latest", False])
            if got["hash"] != sealed.hash:
                raise LockstepDiverged(f"{node.name} replayed block {sealed.number} as {got}")
        await self.gossip()
