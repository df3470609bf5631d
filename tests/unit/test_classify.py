"""Classification of real upstream answers, HTTP statuses, exceptions and method facts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from lasso_rpc.errors import (
    ConnectError,
    ConnectionLost,
    MalformedResponse,
    ResponseTooLarge,
    TransportError,
    UpstreamFault,
    UpstreamTimeout,
)
from lasso_rpc.resilience.classify import (
    ErrorClass,
    RpcErrorInfo,
    classify_exception,
    classify_response,
    is_already_known,
    is_method_unsupported,
)
from lasso_rpc.resilience.methods import is_head_sensitive, is_write_method
from tests.unit.error_bodies import BODIES, Body

C = ErrorClass.CLIENT
P = ErrorClass.PROVIDER
R = ErrorClass.RATE_LIMITED
CAP = ErrorClass.CAPABILITY
LAG = ErrorClass.LAGGING


def _classify(
    status: int,
    code: int,
    message: str,
    method: str = "eth_call",
    overrides: Mapping[str, str] | None = None,
) -> ErrorClass | None:
    error = RpcErrorInfo(code, message)
    return classify_response(status=status, error=error, method=method, overrides=overrides)


def _row_id(body: Body) -> str:
    return f"{body.source}: {body.message[:40]}"


# -- the table of real bodies ------------------------------------------------------------------


def test_the_table_covers_every_class_and_many_sources() -> None:
    assert len(BODIES) >= 40
    assert {b.expected for b in BODIES} == set(ErrorClass)
    sources = " ".join(b.source for b in BODIES).lower()
    for client in (
        "geth",
        "erigon",
        "nethermind",
        "besu",
        "reth",
        "anvil",
        "infura",
        "alchemy",
        "quicknode",
        "ankr",
        "cloudflare",
        "llamarpc",
        "chainstack",
        "publicnode",
        "blast",
    ):
        assert client in sources, client


@pytest.mark.parametrize("body", BODIES, ids=_row_id)
def test_real_error_body_gets_its_class(body: Body) -> None:
    error = RpcErrorInfo(body.code, body.message, body.data)
    got = classify_response(status=body.status, error=error, method=body.method)
    assert got is body.expected


@pytest.mark.parametrize("body", BODIES, ids=_row_id)
def test_already_known_is_recognised_only_where_it_is(body: Body) -> None:
    assert is_already_known(RpcErrorInfo(body.code, body.message, body.data)) is body.already_known


# -- HTTP status without a JSON-RPC error ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (204, None),
        (429, R),
        (413, CAP),
        (400, P),
        (401, P),
        (403, P),
        (404, P),
        (405, P),
        (301, P),
        (500, P),
        (502, P),
        (503, P),
        (504, P),
    ],
)
def test_status_without_error_body(status: int, expected: ErrorClass | None) -> None:
    assert classify_response(status=status, error=None, method="eth_call") is expected


def test_429_is_rate_limited_whatever_the_body_says() -> None:
    assert _classify(429, 3, "execution reverted") is R
    assert _classify(429, -32601, "method not found") is R


def test_5xx_trusts_only_a_recognised_message() -> None:
    # A bare code under a 5xx proves nothing: fail over rather than blame the client.
    assert _classify(500, -32602, "oops") is P
    assert _classify(502, -32601, "bad things") is P
    assert _classify(500, -32000, "nonce too low") is C
    assert _classify(503, -32000, "header not found") is LAG
    assert _classify(500, -32000, "rate limit exceeded") is R


def test_auth_statuses_stay_provider_unless_the_body_names_a_limit_or_a_method() -> None:
    assert _classify(403, -32000, "nonce too low") is P
    assert _classify(401, -32001, "header not found") is P
    assert (
        _classify(403, -32000, "Your app has exceeded its compute units per second capacity") is R
    )
    assert _classify(403, -32601, "rpc method is not whitelisted") is CAP


def test_400_lets_the_body_decide() -> None:
    assert _classify(400, -32602, "whatever the node says") is C
    assert _classify(422, -32000, "insufficient funds for gas * price + value") is C


# -- codes, when no message rule fires ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (3, C),
        (-32700, P),
        (-32600, P),
        (-32601, CAP),
        (-32602, C),
        (-32603, P),
        (-32000, P),
        (-32001, LAG),
        (-32002, P),
        (-32003, C),
        (-32004, CAP),
        (-32005, R),
        (-32604, CAP),
        (-39001, LAG),
        (4444, CAP),
        (429, R),
        (-32099, P),
        (12345, P),
    ],
)
def test_code_decides_when_the_message_says_nothing(code: int, expected: ErrorClass) -> None:
    assert _classify(200, code, "zzz") is expected


# -- message rules and their order -------------------------------------------------------------


def test_a_revert_reason_that_mentions_a_limit_is_still_the_clients_fault() -> None:
    assert _classify(200, 3, "execution reverted: rate limit exceeded for this vault") is C
    assert _classify(200, -32000, "execution reverted: too many requests") is C


def test_message_wins_over_a_colliding_code() -> None:
    assert _classify(200, -32005, "Transaction gas limit exceeds block gas limit") is C
    assert _classify(200, -32003, "response too large") is CAP
    assert _classify(200, -32001, "Nonce too low") is C
    assert _classify(200, -32001, "Unauthorized") is P


def test_reason_carried_in_data_is_read() -> None:
    error = RpcErrorInfo(-32000, "Server error", "header not found")
    assert classify_response(status=200, error=error, method="eth_call") is LAG
    error = RpcErrorInfo(-32602, "invalid request", {"reason": "project ID not provided"})
    assert classify_response(status=200, error=error, method="eth_call") is P


def test_node_timeouts_are_capability_only_for_heavy_methods() -> None:
    assert _classify(200, -32000, "execution aborted (timeout = 5s)", "eth_call") is P
    assert _classify(200, -32000, "execution aborted (timeout = 5s)", "trace_call") is CAP
    assert _classify(200, -32002, "request timed out", "eth_getLogs") is CAP


def test_invalid_range_is_the_clients_but_too_wide_a_range_is_capability() -> None:
    assert _classify(200, -32602, "invalid block range", "eth_getLogs") is C
    assert _classify(200, -32000, "block range is too wide", "eth_getLogs") is CAP


def test_method_names_holding_blob_are_not_mistaken_for_blob_tx_errors() -> None:
    assert (
        _classify(200, -32601, "the method eth_blobBaseFee does not exist/is not available") is CAP
    )


# -- overrides ---------------------------------------------------------------------------------


def test_code_override() -> None:
    overrides = {"-32000": "capability"}
    assert _classify(200, -32000, "zzz", overrides=overrides) is CAP
    assert _classify(200, -32001, "zzz", overrides=overrides) is LAG


def test_message_override_is_case_insensitive_and_beats_the_code_override() -> None:
    overrides = {"msg:Limit Exceeded": "capability", "-32005": "provider"}
    assert _classify(200, -32005, "limit exceeded", "eth_getLogs", overrides=overrides) is CAP
    assert _classify(200, -32005, "something else", overrides=overrides) is P


def test_overrides_come_before_status_and_message_rules() -> None:
    assert _classify(429, -32000, "zzz", overrides={"-32000": "client"}) is C
    assert _classify(200, -32000, "header not found", overrides={"msg:header": "provider"}) is P


def test_override_does_not_apply_without_an_error_body() -> None:
    assert classify_response(status=500, error=None, method="x", overrides={"500": "client"}) is P


def test_unknown_override_class_is_an_error() -> None:
    with pytest.raises(ValueError):
        _classify(200, -32000, "zzz", overrides={"-32000": "sometimes"})


# -- exceptions, values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ConnectError("refused"),
        ConnectionLost("reset"),
        UpstreamTimeout("10s"),
        ResponseTooLarge("65 MiB"),
        MalformedResponse("not JSON"),
        TransportError("other"),
    ],
)
def test_transport_errors_are_provider(exc: TransportError) -> None:
    assert classify_exception(exc) is P


def test_upstream_fault_carries_its_class() -> None:
    assert classify_exception(UpstreamFault("429", error_class="rate_limited", status=429)) is R
    assert classify_exception(UpstreamFault("lag", error_class="lagging")) is LAG
    assert classify_exception(UpstreamFault("??", error_class="bogus")) is P


def test_foreign_exception_counts_as_provider() -> None:
    assert classify_exception(OSError("boom")) is P


def test_error_class_values_and_failover() -> None:
    assert [c.value for c in ErrorClass] == [
        "client",
        "provider",
        "rate_limited",
        "capability",
        "lagging",
    ]
    assert ErrorClass("rate_limited") is R
    assert not C.fails_over
    assert all(c.fails_over for c in ErrorClass if c is not C)


def test_rpc_error_info_is_frozen() -> None:
    error = RpcErrorInfo(-32000, "x")
    assert error.data is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        error.code = 1  # type: ignore[misc]


def test_already_known_lookalikes() -> None:
    assert is_already_known(None) is False
    assert not is_already_known(RpcErrorInfo(-32000, "unknown transaction type"))
    assert not is_already_known(RpcErrorInfo(-32000, "replacement transaction underpriced"))
    assert is_already_known(
        RpcErrorInfo(
            -32000, "known transaction. transaction with hash 0xab is already in the system"
        )
    )
    assert is_already_known(
        RpcErrorInfo(-32010, "Transaction with the same hash was already imported.")
    )


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (-32601, "the method trace_block does not exist/is not available", True),
        (-32601, "rpc method is not whitelisted", True),
        (-32604, "Method not enabled", True),
        (-32004, "zzz", True),
        (-32600, "debug_traceTransaction is not available on the Free tier - upgrade", True),
        (-32600, "Unsupported method: bor_getAuthor. See available methods", True),
        # Capability, but about this request, not the method: never remembered.
        (
            -32600,
            "Under the Free tier plan, you can make eth_getLogs requests with up to a 10"
            " block range.",
            False,
        ),
        (-32005, "query returned more than 10000 results", False),
        (-32614, "eth_getLogs is limited to a 10,000 range", False),
        (-32000, "missing trie node abc (path )", False),
        (4444, "pruned history unavailable", False),
        (-32000, "execution reverted", False),
        (-32000, "header not found", False),
        (-32004, "Upfront cost exceeds account balance", False),
        (-32000, "execution aborted (timeout = 5s)", False),
    ],
)
def test_is_method_unsupported(code: int, message: str, expected: bool) -> None:
    assert is_method_unsupported(RpcErrorInfo(code, message)) is expected
    assert is_method_unsupported(None) is False


def test_every_remembered_unsupported_method_is_capability() -> None:
    for body in BODIES:
        error = RpcErrorInfo(body.code, body.message, body.data)
        if is_method_unsupported(error):
            assert body.expected is CAP, body


# -- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("eth_sendRawTransaction", True),
        ("eth_sendrawtransaction", True),
        ("ETH_SENDRAWTRANSACTION", True),
        ("eth_sendRawTransactionConditional", True),
        ("eth_sendRawTransactionSync", True),
        ("eth_sendBundle", True),
        ("eth_sendPrivateTransaction", True),
        ("eth_sendUserOperation", True),
        ("eth_sendTransaction", True),
        ("eth_call", False),
        ("eth_estimateGas", False),
        ("eth_getTransactionReceipt", False),
        ("eth_callBundle", False),
    ],
)
def test_is_write_method(method: str, expected: bool) -> None:
    assert is_write_method(method) is expected


ADDR = '"0x71c7656ec7ab88b098defb751b7401b5f6d8976f"'
TX = '{"to":' + ADDR + ',"data":"0xa9059cbb0000,[]{}"}'


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("eth_blockNumber", "[]", True),
        ("eth_gasPrice", "", True),
        ("eth_maxPriorityFeePerGas", "[]", True),
        ("eth_feeHistory", '["0x5","0x10",[25,75]]', True),
        ("eth_estimateGas", f"[{TX}]", True),
        ("eth_getBlockByNumber", '["latest",false]', True),
        ("eth_getBlockByNumber", '["pending", true]', True),
        ("eth_getBlockByNumber", '["safe",false]', True),
        ("eth_getBlockByNumber", '["finalized",false]', True),
        ("eth_getBlockByNumber", '["0x10",false]', False),
        ("eth_getBlockByNumber", '["earliest",false]', False),
        ("eth_getBlockReceipts", '["latest"]', True),
        ("eth_getBlockReceipts", '["0x1312d00"]', False),
        ("eth_call", f'[{TX},"latest"]', True),
        ("eth_call", f'[{TX}, "pending"]', True),
        ("eth_call", f"[{TX}]", True),
        ("eth_call", f'[{TX},"0x10"]', False),
        ("eth_call", f'[{TX},{{"blockHash":"0xabc"}}]', False),
        ("eth_call", f'[{TX},{{"blockNumber":"latest"}}]', True),
        ("eth_call", f'[{TX},"0x10",{{{ADDR}:{{"balance":"0x1"}}}}]', False),
        ("eth_getBalance", f"[{ADDR}]", True),
        ("eth_getBalance", f'[ {ADDR} , "latest" ]', True),
        ("eth_getBalance", f'[{ADDR},"0x10"]', False),
        ("eth_getCode", f'[{ADDR},"0x10"]', False),
        ("eth_getTransactionCount", f'[{ADDR},"pending"]', True),
        ("eth_getTransactionCount", f"[{ADDR}]", True),
        ("eth_getStorageAt", f'[{ADDR},"0x0"]', True),
        ("eth_getStorageAt", f'[{ADDR},"0x0","0x10"]', False),
        ("eth_getProof", f'[{ADDR},["0x0","0x1"]]', True),
        ("eth_getProof", f'[{ADDR},["0x0","0x1"],"0x10"]', False),
        ("eth_getLogs", '[{"fromBlock":"0x1","toBlock":"latest"}]', True),
        ("eth_getLogs", '[{"fromBlock":"0x1"}]', True),
        ("eth_getLogs", "[{}]", True),
        ("eth_getLogs", '[{"fromBlock":"0x1","toBlock":"0x10"}]', False),
        ("eth_getLogs", '[{"blockHash":"0xabc"}]', False),
        ("eth_getTransactionReceipt", '["0xabc"]', False),
        ("eth_getTransactionByHash", '["0xabc"]', False),
        ("eth_chainId", "[]", False),
    ],
)
def test_is_head_sensitive(method: str, params: str, expected: bool) -> None:
    assert is_head_sensitive(method, params.encode()) is expected
