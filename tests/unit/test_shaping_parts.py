"""The pure parts of request shaping: block references, the block ledger, range planning,
array merging. (The network parts: test_shaping_headwatch.py; end to end: the integration
tests.)"""

from __future__ import annotations

import pytest

from lasso_rpc.errors import AllAttemptsFailed
from lasso_rpc.shaping.blockrefs import (
    NEVER,
    Named,
    answer_blocks,
    block_range,
    request_refs,
)
from lasso_rpc.shaping.cache import cache_key
from lasso_rpc.shaping.ledger import BlockLedger
from lasso_rpc.shaping.logsplit import is_range_refusal, merge_arrays, plan_range

# -- what a call refers to -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "kind", "lo", "hi"),
    [
        ("eth_getBlockByNumber", b'["0x10",false]', "number", 16, 16),
        ("eth_getBlockByNumber", b'["latest",false]', "head", 0, 0),
        ("eth_getBlockByNumber", b'["finalized",true]', "head", 0, 0),
        ("eth_getBlockByNumber", b'["earliest",false]', "number", 0, 0),
        ("eth_getBalance", b'["0xab"]', "head", 0, 0),  # no block argument: latest
        ("eth_getBalance", b'["0xab","0x5"]', "number", 5, 5),
        ("eth_call", b'[{"to":"0x1"},{"blockNumber":"0x7"}]', "number", 7, 7),
        ("eth_getStorageAt", b'["0xab","0x0","0x9"]', "number", 9, 9),
        ("eth_getLogs", b'[{"fromBlock":"0x1","toBlock":"0x5"}]', "range", 1, 5),
        ("eth_getLogs", b'[{"fromBlock":"0x1"}]', "head", 0, 0),
        ("eth_getLogs", b'[{"fromBlock":"latest","toBlock":"latest"}]', "head", 0, 0),
        ("eth_blockNumber", b"[]", "head", 0, 0),
        ("eth_gasPrice", b"[]", "head", 0, 0),
        ("eth_getTransactionReceipt", b'["0xaa"]', "answer", 0, 0),
        ("net_version", b"[]", "static", 0, 0),
        ("my_customMethod", b"[]", "unknown", 0, 0),
    ],
)
def test_request_refs(method: str, params: bytes, kind: str, lo: int, hi: int) -> None:
    r = request_refs(method, params)
    assert (r.kind, r.lo, r.hi) == (kind, lo, hi)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("eth_getTransactionCount", b'["0xab","pending"]'),
        ("eth_getBlockByNumber", b'["pending",false]'),
        ("eth_getLogs", b'[{"fromBlock":"0x1","toBlock":"pending"}]'),
        ("eth_sendRawTransaction", b'["0x00"]'),
        ("eth_getFilterChanges", b'["0x1"]'),
        ("eth_newFilter", b"[{}]"),
        ("eth_subscribe", b'["newHeads"]'),
        ("eth_syncing", b"[]"),
        ("eth_estimateGas", b'[{"to":"0x1"}]'),
        ("txpool_content", b"[]"),
        ("trace_filter", b'[{"fromBlock":"0x1","toBlock":"0x2","after":5}]'),
        ("eth_getBlockByNumber", b"not json"),
    ],
)
def test_never_cached(method: str, params: bytes) -> None:
    assert request_refs(method, params) is NEVER


def test_block_hash_references() -> None:
    r = request_refs("eth_getBlockByHash", b'["0xAB",false]')
    assert (r.kind, r.block_hash) == ("hash", "0xab")
    r = request_refs("eth_call", b'[{},{"blockHash":"0xCD"}]')
    assert (r.kind, r.block_hash) == ("hash", "0xcd")


def test_answer_blocks_names_blocks_transactions_receipts_and_logs() -> None:
    block = b'{"number":"0x10","hash":"0xAA","parentHash":"0xbb","transactions":["0x1"]}'
    assert answer_blocks(block) == [Named(16, "0xaa", "0xbb")]
    receipt = b'{"transactionHash":"0x1","blockNumber":"0x3","blockHash":"0xcc","logs":[]}'
    assert answer_blocks(receipt) == [Named(3, "0xcc")]
    logs = b'[{"blockNumber":"0x3","blockHash":"0xcc"},{"blockNumber":"0x4","blockHash":"0xdd"}]'
    assert answer_blocks(logs) == [Named(3, "0xcc"), Named(4, "0xdd")]
    assert answer_blocks(b'"0x5"') == []  # a balance names no block
    assert answer_blocks(b"[]") == []
    assert answer_blocks(b"null") is None
    pending = b'{"hash":"0x1","blockHash":null,"blockNumber":null}'
    assert answer_blocks(pending) is None  # no block yet: never cached


def test_block_range_reads_numeric_ranges_only() -> None:
    spec, lo, hi = block_range(b'[{"fromBlock":"0x10","toBlock":"0x20","address":"0x1"}]') or (
        {},
        0,
        0,
    )
    assert (lo, hi, spec["address"]) == (16, 32, "0x1")
    assert block_range(b'[{"fromBlock":"0x10","toBlock":"latest"}]') is None
    assert block_range(b'[{"blockHash":"0xab"}]') is None


def test_cache_keys_ignore_json_spacing_only() -> None:
    a = cache_key("eth_getBalance", b'["0xab","0x5"]')
    assert a == cache_key("eth_getBalance", b'[ "0xab" , "0x5" ]')
    assert a != cache_key("eth_getBalance", b'["0xab","0x6"]')
    assert a != cache_key("eth_getCode", b'["0xab","0x5"]')


# -- the ledger ----------------------------------------------------------------------------


def test_ledger_sees_a_changed_hash_and_a_wrong_parent() -> None:
    led = BlockLedger(finality_depth=10)
    assert led.observe(100, "0xA1", "0xa0") is None
    assert led.head == 100 and led.hashes[99] == "0xa0"
    assert led.observe(101, "0xa2", "0xa1") is None
    assert led.observe(101, "0xa2") is None  # the same again: fine
    assert led.observe(101, "0xb2") == 101  # another hash at a known height
    assert led.observe(102, "0xb3", "0xb2") == 101  # a parent we did not know there
    assert led.hashes[101] == "0xa2"  # nothing overwritten before the fork is known


def test_ledger_reorg_log_tells_which_entries_are_stale() -> None:
    led = BlockLedger(finality_depth=10)
    for n in range(90, 101):
        led.observe(n, f"0x{n:x}")
    seq0 = led.seq
    assert not led.stale(seq0, 100)
    led.reorg(98)
    assert led.head == 97 and 98 not in led.hashes and 97 in led.hashes
    assert led.stale(seq0, 98) and led.stale(seq0, 99)
    assert not led.stale(seq0, 97)  # below the fork: untouched
    assert not led.stale(led.seq, 99)  # made after the reorg


def test_ledger_finality_from_the_tag_or_the_depth() -> None:
    led = BlockLedger(finality_depth=10)
    assert led.finalized is None and not led.is_final(0)
    led.observe(100, "0x1")
    assert led.finalized == 90 and led.is_final(90) and not led.is_final(91)
    led.set_finalized(95)
    assert led.finalized == 95
    led.set_finalized(93)  # never back
    assert led.finalized == 95
    led.set_finalized(None)  # the tag is not answered: the depth again
    assert led.finalized == 90


def test_ledger_keeps_a_bounded_number_of_blocks() -> None:
    led = BlockLedger(finality_depth=10, keep_blocks=100)
    for n in range(1000):
        led.observe(n, f"0x{n:x}")
    assert len(led.hashes) == 100 and min(led.hashes) == 900
    assert len(led.numbers) == 100


# -- log ranges ----------------------------------------------------------------------------


def test_plan_range() -> None:
    # Someone without a limit takes it whole; the limited ones that would refuse are avoided.
    p = plan_range(5000, {"a": 1000, "b": None, "c": 10_000})
    assert (p.chunk, p.avoid) == (None, frozenset({"a"}))
    # Everybody limited, the range longer than all: pieces of the largest limit.
    p = plan_range(5000, {"a": 1000, "c": 2000})
    assert (p.chunk, p.avoid) == (2000, frozenset({"a"}))
    # Short enough for everyone.
    p = plan_range(100, {"a": 1000, "c": 2000})
    assert (p.chunk, p.avoid) == (None, frozenset())


def test_merge_arrays_in_order_without_decoding() -> None:
    assert merge_arrays([b'[{"a":1},{"a":2}]', b"[]", b' [ {"a":3} ] ']) == (
        b'[{"a":1},{"a":2},{"a":3}]'
    )
    assert merge_arrays([b"[]", b"[]"]) == b"[]"


def test_range_refusal_reads_the_attempts() -> None:
    too_big = {
        "error_class": "capability",
        "error": "HTTP 200: -32005 query returned more than 10000 results",
    }
    other = {"error_class": "provider", "error": "HTTP 502"}
    assert is_range_refusal(AllAttemptsFailed("x", data={"attempts": [too_big, too_big]}))
    assert is_range_refusal(AllAttemptsFailed("x", data={"attempts": [too_big, other]}))
    unsupported = {"error_class": "capability", "error": "HTTP 200: -32601 method not found"}
    assert not is_range_refusal(AllAttemptsFailed("x", data={"attempts": [unsupported]}))
    assert not is_range_refusal(AllAttemptsFailed("x", data={"attempts": [other]}))
