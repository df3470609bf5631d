"""What a MockProvider answers: the JSON-RPC envelope (single, batch, notification, errors) and
the eth_* methods, as pure functions of (chain, provider head, params).

Errors copy geth's codes and messages, so the router's error classification meets the real thing:
-32602 for bad params, -32000 "header not found" for a block the (lagging) provider lacks,
3 "execution reverted" for calls whose data starts with ``0xdeadbeef``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from lasso_rpc.battle.providers.blocks import AlreadyKnown, LogFilter
from lasso_rpc.battle.providers.chain import SimulatedChain

__all__ = [
    "GAS_PRICE",
    "INVALID",
    "METHODS",
    "REVERT_DATA",
    "Fault",
    "answer",
    "arg",
    "decode",
    "error",
    "error_reply",
    "logs_span",
    "wrong_ids",
]

GAS_PRICE = 2_000_000_000
_REASON = b"mock revert"
#: ABI-encoded ``Error("mock revert")``, as a Solidity ``require`` produces.
REVERT_DATA = "0x08c379a0" + f"{32:064x}" + f"{len(_REASON):064x}" + _REASON.hex().ljust(64, "0")


class Fault(Exception):
    """A JSON-RPC error answer of the mock (never raised outside the battle mocks)."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_rpc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def arg(params: list[Any], i: int) -> Any:
    if i >= len(params):
        raise Fault(-32602, f"missing value for required argument {i}")
    return params[i]


def _quantity(value: object, i: int) -> int:
    if isinstance(value, str) and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise Fault(-32602, f"invalid argument {i}: hex number expected, got {value!r}")


def _data(value: object, i: int, size: int | None = None) -> str:
    if isinstance(value, str) and _is_hex(value, size):
        return value.lower()
    what = f"{size}-byte hex string" if size else "hex string"
    raise Fault(-32602, f"invalid argument {i}: {what} expected, got {value!r}")


def _is_hex(value: str, size: int | None) -> bool:
    if not value.startswith("0x") or len(value) % 2:
        return False
    if size is not None and len(value) != 2 + 2 * size:
        return False
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        return False
    return True


def _resolve(chain: SimulatedChain, head: int, ref: object, i: int) -> int | None:
    """A block tag, hex number or EIP-1898 object as a number (may lie beyond ``head``);
    None for an unknown block hash."""
    if isinstance(ref, dict):
        if "blockHash" in ref:
            block = chain.block_by_hash(_data(ref["blockHash"], i, 32))
            return None if block is None or block.number > head else block.number
        ref = ref.get("blockNumber")
    if ref in ("latest", "pending"):
        return head
    if ref == "earliest":
        return 0
    if ref == "safe":
        return max(0, head - 32)
    if ref == "finalized":
        return max(0, head - 64)
    return _quantity(ref, i)


def _known(chain: SimulatedChain, head: int, ref: object, i: int) -> int | None:
    n = _resolve(chain, head, ref, i)
    return n if n is not None and n <= head else None


def _state_block(chain: SimulatedChain, head: int, params: list[Any], i: int) -> None:
    ref = params[i] if i < len(params) else "latest"
    if _known(chain, head, ref, i) is None:
        raise Fault(-32000, "header not found")


def _full(params: list[Any]) -> bool:
    full = params[1] if len(params) > 1 else False
    if not isinstance(full, bool):
        raise Fault(-32602, "invalid argument 1: boolean expected")
    return full


def _get_block_by_number(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    n = _known(chain, head, arg(params, 0), 0)
    block = None if n is None else chain.block(n)
    return None if block is None else block.to_rpc(_full(params))


def _get_block_by_hash(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    block = chain.block_by_hash(_data(arg(params, 0), 0, 32))
    return None if block is None or block.number > head else block.to_rpc(_full(params))


def _get_balance(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    address = _data(arg(params, 0), 0, 20)
    _state_block(chain, head, params, 1)
    return hex(chain.balance(address))


def _get_tx_count(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    address = _data(arg(params, 0), 0, 20)
    _state_block(chain, head, params, 1)
    return hex(chain.nonce(address))


def _get_code(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    address = _data(arg(params, 0), 0, 20)
    _state_block(chain, head, params, 1)
    return "0x6080604052348015600f57600080fd5b50" if address in chain.contracts else "0x"


def _call_object(params: list[Any]) -> tuple[dict[str, Any], str]:
    call = arg(params, 0)
    if not isinstance(call, dict):
        raise Fault(-32602, "invalid argument 0: transaction object expected")
    data = _data(call.get("input") or call.get("data") or "0x", 0)
    if data.startswith("0xdeadbeef"):
        raise Fault(3, "execution reverted", REVERT_DATA)
    return call, data


def _call(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    call, _ = _call_object(params)
    _state_block(chain, head, params, 1)
    # Same call -> same answer on every provider, whatever its head.
    return "0x" + hashlib.sha256(orjson.dumps(call, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _estimate_gas(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    _, data = _call_object(params)
    return hex(21_000 + 16 * (len(data) - 2) // 2)


def _get_logs(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    spec = arg(params, 0)
    if not isinstance(spec, dict):
        raise Fault(-32602, "invalid argument 0: filter object expected")
    try:
        flt = LogFilter.parse(spec)
    except ValueError as exc:
        raise Fault(-32602, f"invalid argument 0: {exc}") from None
    if spec.get("blockHash") is not None:
        if spec.get("fromBlock") is not None or spec.get("toBlock") is not None:
            raise Fault(
                -32602, "invalid argument 0: cannot specify both BlockHash and FromBlock/ToBlock"
            )
        block = chain.block_by_hash(_data(spec["blockHash"], 0, 32))
        if block is None or block.number > head:
            raise Fault(-32000, "unknown block")
        return [lg.to_rpc() for lg in block.logs if flt.matches(lg)]
    lo = _resolve(chain, head, spec.get("fromBlock") or "latest", 0)
    hi = _resolve(chain, head, spec.get("toBlock") or "latest", 0)
    assert lo is not None and hi is not None  # only block hashes resolve to None
    if lo > hi:
        raise Fault(-32602, "invalid block range params")
    # Like a real lagging node: silently answers only up to the head it has.
    return [lg.to_rpc() for lg in chain.logs(lo, min(hi, head), flt)]


def logs_span(chain: SimulatedChain, head: int, params: list[Any]) -> int | None:
    """Blocks an ``eth_getLogs`` range covers (None: by block hash, or not a range)."""
    spec = params[0] if params else None
    if not isinstance(spec, dict) or spec.get("blockHash") is not None:
        return None
    try:
        lo = _resolve(chain, head, spec.get("fromBlock") or "latest", 0)
        hi = _resolve(chain, head, spec.get("toBlock") or "latest", 0)
    except Fault:
        return None
    return None if lo is None or hi is None else hi - lo + 1


def _send_raw(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    raw = _data(arg(params, 0), 0)
    if raw == "0x":
        raise Fault(-32602, "invalid argument 0: empty transaction")
    try:
        return chain.send_raw_transaction(raw)
    except AlreadyKnown:
        raise Fault(-32000, "already known") from None


def _get_receipt(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    found = chain.find_tx(_data(arg(params, 0), 0, 32))
    if found is None or found[0].number > head:
        return None
    return found[0].receipt_rpc(found[1])


def _get_tx(chain: SimulatedChain, head: int, params: list[Any]) -> object:
    found = chain.find_tx(_data(arg(params, 0), 0, 32))
    if found is None or found[0].number > head:
        return None
    return found[0].tx_rpc(found[1])


Method = Callable[[SimulatedChain, int, list[Any]], object]

METHODS: dict[str, Method] = {
    "eth_blockNumber": lambda chain, head, params: hex(head),
    "eth_chainId": lambda chain, head, params: hex(chain.chain_id),
    "net_version": lambda chain, head, params: str(chain.chain_id),
    "eth_syncing": lambda chain, head, params: False,
    "eth_gasPrice": lambda chain, head, params: hex(GAS_PRICE),
    "eth_maxPriorityFeePerGas": lambda chain, head, params: hex(GAS_PRICE // 2),
    "eth_getBlockByNumber": _get_block_by_number,
    "eth_getBlockByHash": _get_block_by_hash,
    "eth_getBalance": _get_balance,
    "eth_getTransactionCount": _get_tx_count,
    "eth_getCode": _get_code,
    "eth_call": _call,
    "eth_estimateGas": _estimate_gas,
    "eth_getLogs": _get_logs,
    "eth_sendRawTransaction": _send_raw,
    "eth_getTransactionReceipt": _get_receipt,
    "eth_getTransactionByHash": _get_tx,
}


# -- the JSON-RPC 2.0 envelope -------------------------------------------------------------

INVALID = object()
"""What ``decode`` returns for a body that is not JSON."""

Call = Callable[[str, list[Any]], object]


def decode(body: str | bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return INVALID


def error(rid: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def answer(payload: object, call: Call) -> object | None:
    """The reply to a decoded request or batch; None when it held only notifications."""
    if payload is INVALID:
        return error(None, -32700, "parse error")
    if isinstance(payload, list):
        if not payload:
            return error(None, -32600, "empty batch")
        replies = [r for r in (_reply(item, call) for item in payload) if r is not None]
        return replies or None
    return _reply(payload, call)


def _reply(item: object, call: Call) -> dict[str, Any] | None:
    if not isinstance(item, dict) or not isinstance(item.get("method"), str):
        return error(item.get("id") if isinstance(item, dict) else None, -32600, "invalid request")
    params = item.get("params")
    try:
        if params is None:
            params = []
        elif not isinstance(params, list):
            raise Fault(-32602, "non-array args")
        result = call(item["method"], params)
    except Fault as fault:
        reply = {"jsonrpc": "2.0", "id": item.get("id"), "error": fault.to_rpc()}
    else:
        reply = {"jsonrpc": "2.0", "id": item.get("id"), "result": result}
    return reply if "id" in item else None


def error_reply(payload: object, code: int, message: str) -> object:
    """The same error for every call of a request (a batch gets one per item)."""
    items = payload if isinstance(payload, list) and payload else [payload]
    replies = [error(it.get("id") if isinstance(it, dict) else None, code, message) for it in items]
    return replies if isinstance(payload, list) and payload else replies[0]


def wrong_ids(reply: object) -> object:
    """The same reply with ids the client never sent."""
    if isinstance(reply, list):
        return [wrong_ids(r) for r in reply]
    assert isinstance(reply, dict)
    rid = reply.get("id")
    if isinstance(rid, int):
        wrong: object = rid + 1_000_000
    elif isinstance(rid, str):
        wrong = rid + "-wrong"
    else:
        wrong = 1_000_000
    return {**reply, "id": wrong}
