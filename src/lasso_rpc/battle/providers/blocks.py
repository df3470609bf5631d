"""The values of the simulated chain: blocks, transactions, logs, log filters, chain events.

Each renders itself in its JSON-RPC form (``to_rpc``); ``digest``/``hex_hash``/``address_of``
derive every hash and address from sha256, so the chain is deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APPROVAL_TOPIC",
    "TRANSFER_TOPIC",
    "AlreadyKnown",
    "Block",
    "ChainEvent",
    "Log",
    "LogFilter",
    "Tx",
    "address_of",
    "digest",
    "hex_hash",
    "pad_topic",
]

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL_TOPIC = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
_ZERO_BLOOM = "0x" + "00" * 256
_EMPTY_UNCLES = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
_GAS_LIMIT = 30_000_000
_BASE_FEE = 1_000_000_000


def digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


def hex_hash(*parts: object) -> str:
    return "0x" + digest(*parts).hex()


def address_of(*parts: object) -> str:
    return "0x" + digest(*parts)[:20].hex()


def pad_topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:]


class AlreadyKnown(Exception):
    """The raw transaction was already accepted (geth answers -32000 "already known")."""


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: str
    block_number: int
    block_hash: str
    transaction_hash: str
    transaction_index: int
    log_index: int

    def to_rpc(self, *, removed: bool = False) -> dict[str, Any]:
        return {
            "address": self.address,
            "topics": list(self.topics),
            "data": self.data,
            "blockNumber": hex(self.block_number),
            "blockHash": self.block_hash,
            "transactionHash": self.transaction_hash,
            "transactionIndex": hex(self.transaction_index),
            "logIndex": hex(self.log_index),
            "removed": removed,
        }


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Address and positional topic filter of ``eth_getLogs`` / ``eth_subscribe("logs")``.

    ``None`` matches anything; a set matches any of its members (all values lower-case).
    """

    addresses: frozenset[str] | None = None
    topics: tuple[frozenset[str] | None, ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> LogFilter:
        """Build from the JSON filter object; ``ValueError`` on a malformed one."""
        raw = spec.get("address")
        addresses = None if raw is None else frozenset(_hex_list(raw, 20, "address"))
        raw_topics = spec.get("topics") or []
        if not isinstance(raw_topics, list) or len(raw_topics) > 4:
            raise ValueError("topics must be a list of at most 4 entries")
        topics = tuple(
            None if t is None else frozenset(_hex_list(t, 32, "topic")) for t in raw_topics
        )
        return cls(addresses, topics)

    def matches(self, log: Log) -> bool:
        if self.addresses is not None and log.address not in self.addresses:
            return False
        for i, wanted in enumerate(self.topics):
            if wanted is None:
                continue
            if i >= len(log.topics) or log.topics[i] not in wanted:
                return False
        return True


def _hex_list(value: object, size: int, what: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, str) or len(v) != 2 + 2 * size or not v.startswith("0x"):
            raise ValueError(f"invalid {what} {v!r}")
        try:
            int(v, 16)
        except ValueError:
            raise ValueError(f"invalid {what} {v!r}") from None
        out.append(v.lower())
    return out


@dataclass(frozen=True, slots=True)
class Tx:
    hash: str
    sender: str
    to: str
    nonce: int
    input: str
    #: The raw bytes as sent to ``eth_sendRawTransaction``; None for synthetic transactions.
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    txs: tuple[Tx, ...]
    logs: tuple[Log, ...]

    def header_rpc(self) -> dict[str, Any]:
        """The header fields, as sent in ``newHeads`` notifications."""
        return {
            "number": hex(self.number),
            "hash": self.hash,
            "parentHash": self.parent_hash,
            "nonce": "0x0000000000000000",
            "sha3Uncles": _EMPTY_UNCLES,
            "logsBloom": _ZERO_BLOOM,
            "transactionsRoot": hex_hash("txroot", self.hash),
            "stateRoot": hex_hash("state", self.hash),
            "receiptsRoot": hex_hash("receipts", self.hash),
            "miner": address_of("miner", self.number % 7),
            "difficulty": "0x0",
            "extraData": "0x",
            "gasLimit": hex(_GAS_LIMIT),
            "gasUsed": hex(21_000 * len(self.txs)),
            "timestamp": hex(self.timestamp),
            "baseFeePerGas": hex(_BASE_FEE),
            "mixHash": hex_hash("mix", self.hash),
        }

    def to_rpc(self, full_txs: bool = False) -> dict[str, Any]:
        out = self.header_rpc()
        out["size"] = hex(600 + 120 * len(self.txs))
        out["totalDifficulty"] = "0x0"
        out["uncles"] = []
        out["transactions"] = (
            [self.tx_rpc(i) for i in range(len(self.txs))]
            if full_txs
            else [t.hash for t in self.txs]
        )
        return out

    def tx_rpc(self, index: int) -> dict[str, Any]:
        tx = self.txs[index]
        return {
            "hash": tx.hash,
            "blockHash": self.hash,
            "blockNumber": hex(self.number),
            "transactionIndex": hex(index),
            "from": tx.sender,
            "to": tx.to,
            "nonce": hex(tx.nonce),
            "value": "0x0",
            "gas": hex(100_000),
            "gasPrice": hex(_BASE_FEE),
            "input": tx.input,
            "type": "0x0",
        }

    def receipt_rpc(self, index: int) -> dict[str, Any]:
        tx = self.txs[index]
        return {
            "transactionHash": tx.hash,
            "transactionIndex": hex(index),
            "blockHash": self.hash,
            "blockNumber": hex(self.number),
            "from": tx.sender,
            "to": tx.to,
            "cumulativeGasUsed": hex(21_000 * (index + 1)),
            "gasUsed": hex(21_000),
            "effectiveGasPrice": hex(_BASE_FEE),
            "contractAddress": None,
            "logs": [lg.to_rpc() for lg in self.logs if lg.transaction_index == index],
            "logsBloom": _ZERO_BLOOM,
            "status": "0x1",
            "type": "0x0",
        }


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """A new canonical block; ``replaced`` is the block a reorg took out at the same number."""

    block: Block
    replaced: Block | None = None
