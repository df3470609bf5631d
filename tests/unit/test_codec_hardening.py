"""Deep, huge and malformed JSON bodies get the right JSON-RPC error with memory bounded by the body
(issue 16): nesting limit, huge batches, long numbers, invalid UTF-8, lone surrogates, 1e999."""

from __future__ import annotations

import json
import random
import tracemalloc
from typing import Any

import pytest

from lasso_rpc.errors import InvalidRequest, ParseError
from lasso_rpc.jsonrpc import Call, decode_body
from lasso_rpc.jsonrpc.shape import MalformedJson, is_utf8, nesting_depth, within_depth

CALL = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


def call_with_params(params: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":7,"method":"eth_call","params":' + params + b"}"


def test_the_issue_body_is_an_invalid_request_not_an_internal_error() -> None:
    with pytest.raises(InvalidRequest) as err:
        decode_body(b"[" * 20_000 + b"]" * 20_000)
    assert "nested deeper than 64" in err.value.message
    assert err.value.data == {"max_depth": 64}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20_000,  # never closed
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        b'{"a\\n":' * 20_000 + b"1" + b"}" * 20_000,  # escapes in the keys
        call_with_params(b"[" * 5000 + b"]" * 5000),
        b"[" + CALL + b"," + b"[" * 3000 + b"]" * 3000 + b"]",
    ],
)
def test_deep_bodies_are_refused_whatever_their_shape(body: bytes) -> None:
    with pytest.raises((InvalidRequest, ParseError)):
        decode_body(body)


def test_the_nesting_limit_is_exact_and_configurable() -> None:
    # The body's object is level 1, params level 2: 62 more arrays make 64 levels.
    ok = call_with_params(b"[" * 63 + b"]" * 63)
    assert isinstance(decode_body(ok), Call)
    with pytest.raises(InvalidRequest):
        decode_body(call_with_params(b"[" * 64 + b"]" * 64))
    with pytest.raises(InvalidRequest):
        decode_body(ok, max_depth=10)
    # Inside a batch the batch is one more level; one item too deep refuses the whole body
    # (the same answer msgspec's own recursion limit would force, whatever the stack).
    items = decode_body(b"[" + ok + b"," + CALL + b"]", max_depth=65)
    assert isinstance(items, list) and all(isinstance(i, Call) for i in items)
    with pytest.raises(InvalidRequest):
        decode_body(b"[" + ok + b"," + CALL + b"]", max_depth=64)


def test_brackets_inside_strings_are_not_nesting() -> None:
    body = call_with_params(b'["' + b"[{" * 500 + b'\\"]"]')
    assert isinstance(decode_body(body), Call)


def test_a_huge_batch_is_refused_before_it_is_built() -> None:
    body = b"[" + b",".join([CALL] * 100_000) + b"]"
    tracemalloc.start()
    try:
        with pytest.raises(InvalidRequest) as err:
            decode_body(body, max_batch=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.message == "batch exceeds the limit of 50 calls"
    assert peak < len(body) // 4  # not a list of 100,000 items (a 6 MB list at least)


def test_a_batch_of_tiny_items_costs_no_more_than_its_body() -> None:
    body = b"[" + b",".join([b"1"] * 1_000_000) + b"]"
    tracemalloc.start()
    try:
        with pytest.raises(InvalidRequest):
            decode_body(body, max_batch=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(body)


def test_a_batch_at_its_limit_is_decoded_whole() -> None:
    items = decode_body(b"[" + b",".join([CALL] * 50) + b"]", max_batch=50)
    assert isinstance(items, list) and len(items) == 50
    with pytest.raises(InvalidRequest):
        decode_body(b"[" + b",".join([CALL] * 51) + b"]", max_batch=50)
    with pytest.raises(ParseError):
        decode_body(b"[" + CALL + b",]", max_batch=50)
    with pytest.raises(InvalidRequest):
        decode_body(b"[]", max_batch=50)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"\xff"}', ParseError),
        (call_with_params(b'["\xc0\xaf"]'), ParseError),  # overlong '/'
        (call_with_params(b'["\xed\xa0\x80"]'), ParseError),  # a surrogate, UTF-8 encoded
        (call_with_params(b'["\\ud800"]'), ParseError),  # a lone surrogate escape
        (b"1e999", InvalidRequest),  # valid JSON, not a request
        (b"9" * 5000, InvalidRequest),
        (b'"just a string"', InvalidRequest),
        (b"   ", InvalidRequest),
        (b"\xef\xbb\xbf" + CALL, ParseError),  # a byte order mark is not JSON
    ],
)
def test_odd_bytes_get_the_right_error(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_body(body)


@pytest.mark.parametrize("id_raw", [b"1e999", b"9" * 5000, b"-0.0e-400", b'"x"'])
def test_long_and_huge_number_ids_are_echoed_unchanged(id_raw: bytes) -> None:
    c = decode_body(b'{"jsonrpc":"2.0","id":%s,"method":"m"}' % id_raw)
    assert isinstance(c, Call) and c.id_raw == id_raw


def test_params_with_long_numbers_pass_through_untouched() -> None:
    params = b"[" + b"9" * 5000 + b", 1e999, -1e-999]"
    c = decode_body(call_with_params(params))
    assert isinstance(c, Call) and c.params == params


def _depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    return 0


def test_nesting_depth_agrees_with_a_reference_on_generated_json() -> None:
    rng = random.Random(16)
    tricky = ["a", "[", "]{", '\\"[', "\\", "}\\\\", '"', "\\u005b"]

    def gen(d: int) -> Any:
        r = rng.random()
        if d > 9 or r < 0.3:
            return rng.choice([*tricky, 1, None, 2.5])
        if r < 0.65:
            return [gen(d + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(tricky) + str(i): gen(d + 1) for i in range(rng.randint(0, 3))}

    for _ in range(3000):
        v = gen(0)
        raw = json.dumps(v).encode()
        assert nesting_depth(raw, 100) == _depth(v), raw
        assert within_depth(raw, 4) is (_depth(v) <= 4), raw


def test_unbalanced_brackets_are_malformed() -> None:
    with pytest.raises(MalformedJson):
        nesting_depth(b"[[[[[[[[[[]", 100)
    with pytest.raises(MalformedJson):
        nesting_depth(b"]]][[[", 100)


def test_utf8_check() -> None:
    assert is_utf8(b"plain") and is_utf8("é€😀".encode() * 40_000)
    assert not is_utf8(b"a" * 70_000 + b"\xe2\x82")  # cut at the end of a chunk
    assert not is_utf8(b"\xed\xb0\x80")
