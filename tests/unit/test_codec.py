"""The codec parses only the envelope and passes upstream bytes through untouched."""

from __future__ import annotations

import orjson
import pytest

from lasso_rpc.errors import InvalidRequest, ParseError
from lasso_rpc.jsonrpc import (
    Call,
    decode_body,
    decode_upstream,
    encode_error,
    encode_result,
    encode_upstream_request,
    encode_with_meta,
)


def test_single_call_keeps_params_and_id_raw() -> None:
    c = decode_body(
        b'{"jsonrpc":"2.0","id":"abc-1","method":"eth_getBalance","params":["0x1", "latest"]}'
    )
    assert isinstance(c, Call)
    assert c.method == "eth_getBalance"
    assert c.params == b'["0x1", "latest"]'
    assert c.id_raw == b'"abc-1"'


@pytest.mark.parametrize("id_raw", [b"0", b"-7", b"18446744073709551617", b'"x"', b"null", b"1.5"])
def test_any_valid_id_is_kept_byte_for_byte(id_raw: bytes) -> None:
    c = decode_body(b'{"jsonrpc":"2.0","id":%s,"method":"m"}' % id_raw)
    assert isinstance(c, Call)
    assert c.id_raw == id_raw
    assert c.params == b"[]"
    out = orjson.loads(encode_result(c.id_raw, b'"0x1"'))
    assert out["result"] == "0x1"


def test_notification_has_no_id() -> None:
    c = decode_body(b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[]}')
    assert isinstance(c, Call) and c.is_notification


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"1.0","id":1,"method":"m"}',
        b'{"id":1,"method":"m"}',
        b'{"jsonrpc":"2.0","id":1,"method":5}',
        b'{"jsonrpc":"2.0","id":1,"method":""}',
        b'{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}',
        b'{"jsonrpc":"2.0","id":{"a":1},"method":"m"}',
        b'{"jsonrpc":"2.0","id":true,"method":"m"}',
        b"[]",
        b"42",
        b"",
    ],
)
def test_invalid_requests(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        decode_body(body)


@pytest.mark.parametrize("body", [b"{", b'{"jsonrpc":', b"[1,", b"nope"])
def test_parse_errors(body: bytes) -> None:
    with pytest.raises(ParseError):
        decode_body(body)


def test_batch_keeps_invalid_items_in_place() -> None:
    items = decode_body(
        b'[{"jsonrpc":"2.0","id":1,"method":"a"}, 5, {"jsonrpc":"2.0","id":2,"method":"b"}]'
    )
    assert isinstance(items, list)
    assert isinstance(items[0], Call) and items[0].method == "a"
    assert isinstance(items[1], InvalidRequest)
    assert isinstance(items[2], Call) and items[2].id_raw == b"2"


def test_upstream_request_and_reply_round_trip_result_bytes() -> None:
    c = Call("eth_call", b'[{"to":"0x1"},"latest"]', b'"client"')
    req = orjson.loads(encode_upstream_request(77, c))
    assert req == {
        "jsonrpc": "2.0",
        "id": 77,
        "method": "eth_call",
        "params": [{"to": "0x1"}, "latest"],
    }
    result = b'{"number":"0x10",  "transactions":[ ]}'
    reply = decode_upstream(b'{"jsonrpc":"2.0","id":77,"result":' + result + b"}")
    assert reply.id == 77
    assert bytes(reply.result) == result  # type: ignore[arg-type]
    assert encode_result(c.id_raw, bytes(reply.result)) == (  # type: ignore[arg-type]
        b'{"jsonrpc":"2.0","id":"client","result":' + result + b"}"
    )


def test_method_name_is_json_escaped() -> None:
    req = orjson.loads(encode_upstream_request(1, Call('we"ird\\', b"[]", b"1")))
    assert req["method"] == 'we"ird\\'


def test_error_and_meta_encoding() -> None:
    e = orjson.loads(encode_error(b"9", -32602, "bad", {"k": 1}))
    assert e == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {"code": -32602, "message": "bad", "data": {"k": 1}},
    }
    m = orjson.loads(encode_with_meta(encode_result(b"1", b"2"), {"provider": "a"}))
    assert m["lasso_meta"] == {"provider": "a"} and m["result"] == 2
