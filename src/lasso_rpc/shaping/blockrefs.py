"""Which blocks a call refers to (its params) and which blocks an answer names (its result).

Request side, ``request_refs(method, params)``: a ``Refs`` saying whether the answer depends on a
given block number, a block hash, a tag that follows the head (``latest``, ``safe``,
``finalized``), a block range (``eth_getLogs``, ``trace_filter``), or can only be placed from the
answer (lookups by transaction hash); ``NEVER`` for what must never be cached (writes, filters,
subscriptions, ``pending``, node-local state). Answer side, ``answer_blocks(raw)``: every
``(number, hash, parent hash)`` the result names (blocks, transactions, receipts, logs), for the
chain's ``BlockLedger`` and for placing answers of lookups by hash.

Params are parsed only for methods that can be cached (orjson, a microsecond for small params).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import orjson

__all__ = [
    "NEVER",
    "Refs",
    "answer_blocks",
    "block_range",
    "is_never_cached",
    "request_refs",
]

Kind = Literal["never", "number", "hash", "head", "range", "answer", "static", "unknown"]


class Refs(msgspec.Struct, frozen=True):
    """``number``: ``lo`` is the block. ``hash``: ``block_hash``. ``head``: follows the head.
    ``range``: blocks ``lo..hi``. ``answer``: placed by the blocks the answer names.
    ``static``: never changes (``net_version``). ``unknown``: nothing can be told."""

    kind: Kind
    lo: int = 0
    hi: int = 0
    block_hash: str | None = None


NEVER = Refs("never")
_HEAD = Refs("head")
_ANSWER = Refs("answer")
_STATIC = Refs("static")
_UNKNOWN = Refs("unknown")

#: Methods whose answer depends on the block given at this argument (absent: latest).
BLOCK_ARG = {
    "eth_getBlockByNumber": 0,
    "eth_getBlockTransactionCountByNumber": 0,
    "eth_getUncleCountByBlockNumber": 0,
    "eth_getTransactionByBlockNumberAndIndex": 0,
    "eth_getUncleByBlockNumberAndIndex": 0,
    "eth_getBlockReceipts": 0,
    "eth_getRawTransactionByBlockNumberAndIndex": 0,
    "eth_getBalance": 1,
    "eth_getCode": 1,
    "eth_getTransactionCount": 1,
    "eth_call": 1,
    "eth_feeHistory": 1,
    "eth_getStorageAt": 2,
    "eth_getProof": 2,
    "trace_block": 0,
    "trace_replayBlockTransactions": 0,
    "trace_call": 2,
    "debug_traceBlockByNumber": 0,
    "debug_traceCall": 1,
}

#: Lookups by a block hash: the block never changes, but may leave the canonical chain.
BY_BLOCK_HASH = frozenset(
    {
        "eth_getBlockByHash",
        "eth_getBlockTransactionCountByHash",
        "eth_getUncleCountByBlockHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getUncleByBlockHashAndIndex",
        "eth_getRawTransactionByBlockHashAndIndex",
        "debug_traceBlockByHash",
    }
)

#: Lookups by a transaction hash: the answer names its block (or is null while pending).
BY_TX_HASH = frozenset(
    {
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getRawTransactionByHash",
        "debug_traceTransaction",
        "trace_transaction",
        "trace_replayTransaction",
    }
)

#: Follow the head whatever their params.
HEAD_METHODS = frozenset(
    {"eth_blockNumber", "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_blobBaseFee"}
)

STATIC_METHODS = frozenset({"net_version"})

#: Never cached: side effects, per-node state, or an answer that changes without a new block.
_NEVER_METHODS = frozenset(
    {
        "eth_sendRawTransaction",
        "eth_sendTransaction",
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_uninstallFilter",
        "eth_subscribe",
        "eth_unsubscribe",
        "eth_accounts",
        "eth_coinbase",
        "eth_mining",
        "eth_hashrate",
        "eth_syncing",
        "eth_pendingTransactions",
        "net_listening",
        "net_peerCount",
        "web3_clientVersion",
        "eth_chainId",
        # Estimated against the pending state by many nodes (and wallets mean it so).
        "eth_estimateGas",
        "eth_createAccessList",
    }
)
_NEVER_PREFIXES = (
    "eth_send",
    "eth_sign",
    "personal_",
    "admin_",
    "miner_",
    "txpool_",
    "anvil_",
    "evm_",
    "hardhat_",
    "engine_",
    "debug_set",
)
_TAGS = frozenset({"latest", "safe", "finalized"})


def is_never_cached(method: str) -> bool:
    return method in _NEVER_METHODS or method.startswith(_NEVER_PREFIXES)


def request_refs(method: str, params: bytes) -> Refs:
    """What the answer to ``method(params)`` depends on (module docstring)."""
    if method in HEAD_METHODS:
        return _HEAD
    if is_never_cached(method):
        return NEVER
    if method in STATIC_METHODS:
        return _STATIC
    if method == "eth_getLogs" or method == "trace_filter":
        return _range_refs(method, params)
    at = BLOCK_ARG.get(method)
    by_block_hash = method in BY_BLOCK_HASH
    if at is None and not by_block_hash:
        return _ANSWER if method in BY_TX_HASH else _UNKNOWN
    try:
        args = orjson.loads(params)
    except orjson.JSONDecodeError:
        return NEVER
    if not isinstance(args, list):
        return NEVER
    if by_block_hash:
        h = args[0] if args else None
        return Refs("hash", block_hash=h.lower()) if isinstance(h, str) else NEVER
    assert at is not None
    return _block_ref(args[at] if at < len(args) else "latest")


def _block_ref(ref: Any) -> Refs:
    if isinstance(ref, dict):  # EIP-1898
        h = ref.get("blockHash")
        if isinstance(h, str):
            return Refs("hash", block_hash=h.lower())
        ref = ref.get("blockNumber", "latest")
    if ref is None or ref in _TAGS:
        return _HEAD
    if ref == "earliest":
        return Refs("number", 0, 0)
    n = _quantity(ref)
    return NEVER if n is None else Refs("number", n, n)  # "pending" and junk: never


def _range_refs(method: str, params: bytes) -> Refs:
    try:
        args = orjson.loads(params)
    except orjson.JSONDecodeError:
        return NEVER
    if not isinstance(args, list) or not args or not isinstance(args[0], dict):
        return NEVER
    spec = args[0]
    if method == "trace_filter" and ("after" in spec or "count" in spec):
        return NEVER  # paginated: pieces of it are not the pieces of a range
    h = spec.get("blockHash")
    if isinstance(h, str):
        return Refs("hash", block_hash=h.lower())
    lo, hi = spec.get("fromBlock"), spec.get("toBlock")
    if "pending" in (lo, hi):
        return NEVER
    if hi is None or hi in _TAGS:
        return _HEAD
    n_hi = 0 if hi == "earliest" else _quantity(hi)
    n_lo = 0 if lo == "earliest" else _quantity(lo) if lo is not None and lo not in _TAGS else None
    if n_hi is None or n_lo is None:
        return _HEAD if n_hi is not None and lo in _TAGS else NEVER
    return Refs("range", n_lo, n_hi)


def block_range(params: bytes) -> tuple[dict[str, Any], int, int] | None:
    """The filter object of ``eth_getLogs``/``trace_filter`` params and its numeric block
    range, when both ends are numbers (or ``earliest``); else None."""
    try:
        args = orjson.loads(params)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
        return None
    spec = args[0]
    if spec.get("blockHash") is not None or "after" in spec or "count" in spec:
        return None
    lo, hi = spec.get("fromBlock"), spec.get("toBlock")
    n_lo = 0 if lo == "earliest" else _quantity(lo)
    n_hi = 0 if hi == "earliest" else _quantity(hi)
    if n_lo is None or n_hi is None:
        return None
    return spec, n_lo, n_hi


def _quantity(value: Any) -> int | None:
    if isinstance(value, str) and value[:2] in ("0x", "0X") and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


# -- answers ---------------------------------------------------------------------------------


class _Named(msgspec.Struct):
    number: str | None = None
    hash: str | None = None
    parentHash: str | None = None
    blockNumber: str | None = None
    blockHash: str | None = None


_answer = msgspec.json.Decoder(_Named | list[_Named] | None)


class Named(msgspec.Struct, frozen=True, array_like=True):
    number: int
    hash: str
    parent: str | None = None


def answer_blocks(raw: bytes) -> list[Named] | None:
    """The blocks an answer names (a block names itself and its parent; a transaction, receipt
    or log its block). None for ``null``, for a pending transaction (no block yet) and for an
    answer that cannot be read; ``[]`` when it names none (a balance, an empty log list)."""
    try:
        value = _answer.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return [] if raw[:1] not in (b"{", b"[", b"n") else None
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out: list[Named] = []
    for it in items:
        if it.number is not None and it.hash is not None:
            n = _quantity(it.number)
            if n is None:
                return None
            out.append(Named(n, it.hash.lower(), it.parentHash))
        elif it.blockHash is not None and it.blockNumber is not None:
            n = _quantity(it.blockNumber)
            if n is None:
                return None
            out.append(Named(n, it.blockHash.lower()))
    if not isinstance(value, list) and not out and _is_pending(raw):
        return None
    return out


def _is_pending(raw: bytes) -> bool:
    # A pending transaction has "blockHash": null and "blockNumber": null.
    return b'"blockNumber":null' in raw.replace(b" ", b"")
