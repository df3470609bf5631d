"""Property suite, codec: whatever the body, ``decode_body`` answers with a call, a batch or a
JSON-RPC error (never another exception), in bounded time, and keeps ids and order."""

from __future__ import annotations

import json

from fuzz.strategies import bodies
from hypothesis import given
from hypothesis import strategies as st

from lasso_rpc.errors import InvalidRequest, ParseError
from lasso_rpc.jsonrpc import Call, decode_body, encode_error, encode_result
from tests.fuzz.conftest import ci


def _valid_json(raw: bytes) -> bool:
    try:
        json.loads(raw, parse_int=str, parse_float=str)
    except ValueError:
        return False
    return True


@ci(1500)
@given(bodies)
def test_any_body_is_a_call_a_batch_or_a_jsonrpc_error(body: bytes) -> None:
    try:
        parsed = decode_body(body, max_depth=32, max_batch=20)
    except (ParseError, InvalidRequest) as exc:
        answer = encode_error(exc.id_raw, -32600, exc.message, exc.data)
        assert _valid_json(answer), answer
        return
    calls = [parsed] if isinstance(parsed, Call) else parsed
    assert 1 <= len(calls) <= 20
    for c in calls:
        if isinstance(c, Call):
            assert c.method and c.params[:1] in (b"[", b"{")
            # The id is echoed byte for byte, and the answer is valid JSON.
            assert c.id_raw is None or c.id_raw in body
            assert _valid_json(encode_result(c.id_raw, b'"0x1"'))
        else:
            assert isinstance(c, InvalidRequest)


_ids = st.one_of(st.integers(), st.text(max_size=10), st.none())


@ci(400)
@given(st.lists(st.tuples(_ids, st.booleans()), min_size=1, max_size=20))
def test_a_batch_keeps_its_order_and_ids(items: list[tuple[object, bool]]) -> None:
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber"}
            if valid
            else {"jsonrpc": "1.0", "id": i, "method": 5}
            for i, valid in items
        ]
    ).encode()
    parsed = decode_body(body, max_batch=20)
    assert isinstance(parsed, list) and len(parsed) == len(items)
    for (i, valid), got in zip(items, parsed, strict=True):
        if valid:
            assert isinstance(got, Call) and json.loads(got.id_raw or b"null") == i
        else:
            assert isinstance(got, InvalidRequest)


@ci(60)
@given(st.integers(min_value=33, max_value=30_000), st.sampled_from([b"[", b'{"a":']))
def test_deep_nesting_is_always_invalid_request(depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    body = opener * depth + (b"1" if opener != b"[" else b"") + closer * depth
    try:
        decode_body(body, max_depth=32, max_batch=20)
    except InvalidRequest as exc:
        assert exc.message == "JSON nested deeper than 32 levels"
    else:
        raise AssertionError("accepted")
