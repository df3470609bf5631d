"""Two facts about a call that steer resilience: is it a write, and does it need the chain head.

``is_write_method``: methods that broadcast something. They are sent once and never resent to
another provider after they may have reached one (a duplicate broadcast is worse than an error).
The match ignores case, because some nodes do, and a guard against resending must not be
escapable by the casing a client chose.

``is_head_sensitive``: the answer depends on the provider's latest block, so a lagging provider
gives a stale (not wrong-looking) answer. True for

- ``eth_blockNumber``, ``eth_gasPrice``, ``eth_maxPriorityFeePerGas``, ``eth_feeHistory``,
  ``eth_estimateGas``, ``eth_blobBaseFee``: always;
- any call whose params hold a quoted ``"latest"``, ``"pending"``, ``"safe"`` or
  ``"finalized"`` (``eth_getBlockByNumber("latest")``, ``eth_call(tx, "pending")``,
  ``eth_getLogs({"toBlock": "finalized"})``, EIP-1898 ``{"blockNumber": "latest"}``). Safe and
  finalized count too: a lagging node's view of them lags as well;
- state reads (``eth_call``, ``eth_getBalance``, ``eth_getCode``, ``eth_getStorageAt``,
  ``eth_getTransactionCount``, ``eth_getProof``, ``eth_createAccessList``) without a block
  argument, which nodes read as ``latest``;
- ``eth_getLogs`` without ``toBlock`` and without ``blockHash`` (``toBlock`` defaults to latest).

The check works on the raw params bytes without parsing them: block tags are the only quoted
words these params can hold (everything else is hex), and string contents are blanked before
counting top-level arguments so that brackets or commas inside strings cannot mislead it.
"""

from __future__ import annotations

import re

__all__ = ["WRITE_METHODS", "is_head_sensitive", "is_write_method"]

WRITE_METHODS = frozenset(
    {
        "eth_sendRawTransaction",
        "eth_sendRawTransactionConditional",
        "eth_sendRawTransactionSync",
        "eth_sendTransaction",
        "eth_sendPrivateTransaction",
        "eth_sendPrivateRawTransaction",
        "eth_cancelPrivateTransaction",
        "eth_sendBundle",
        "eth_cancelBundle",
        "mev_sendBundle",
        "eth_sendUserOperation",
        "eth_submitWork",
        "eth_submitHashrate",
        "personal_sendTransaction",
    }
)
_WRITE_LOWER = frozenset(m.lower() for m in WRITE_METHODS)

_ALWAYS = frozenset(
    {
        "eth_blockNumber",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_estimateGas",
        "eth_blobBaseFee",
    }
)

#: State reads whose block argument is optional (defaulting to latest), by its position.
_BLOCK_ARG_AT = {
    "eth_call": 1,
    "eth_getBalance": 1,
    "eth_getCode": 1,
    "eth_getTransactionCount": 1,
    "eth_createAccessList": 1,
    "eth_getStorageAt": 2,
    "eth_getProof": 2,
}

_HEAD_TAGS = (b'"latest"', b'"pending"', b'"safe"', b'"finalized"')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_BLANK = frozenset(b" \t\r\n")
_COMMA = ord(",")


def is_write_method(method: str) -> bool:
    return method.lower() in _WRITE_LOWER


def is_head_sensitive(method: str, params_raw: bytes) -> bool:
    if method in _ALWAYS:
        return True
    if any(tag in params_raw for tag in _HEAD_TAGS):
        return True
    if method == "eth_getLogs":
        return b'"blockHash"' not in params_raw and b'"toBlock"' not in params_raw
    at = _BLOCK_ARG_AT.get(method)
    return at is not None and _arg_count(params_raw) <= at


def _arg_count(params_raw: bytes) -> int:
    """Number of top-level arguments in a params array (0 when absent or not an array)."""
    body = _STRING.sub(b'""', params_raw).strip()
    if not body.startswith(b"["):
        return 0
    depth, commas, seen = 0, 0, False
    for ch in body[1:-1]:
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif ch == _COMMA and depth == 0:
            commas += 1
        if ch not in _BLANK:
            seen = True
    return commas + 1 if seen else 0
