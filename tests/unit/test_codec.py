"""The codec parses only the envelope and passes upstream bytes through untouched."""

from __future__ import annotations

import random

import msgspec
import orjson
import pytest

from lasso_rpc.errors import InvalidRequest, ParseError
from lasso_rpc.jsonrpc import (
    Call,
    decode_body,
    decode_upstream,
    encode_error,
    encode_raw_error,
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


# --- Encoders: the client sees the same bytes as with the former ``%`` formatting -------------

_BIG = b"[" + b",".join([b'{"data":"0x%064x","removed":false}' % i for i in range(13_000)]) + b"]"
_PAYLOADS = [b'"0x1"', b"null", b'{"a":[1,"}"]}', _BIG]
_IDS = [None, b"", b"0", b"-7", b'"abc"', b"null", b"18446744073709551617"]


def _former_head(id_raw: bytes | None) -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,' % (id_raw or b"null")


@pytest.mark.parametrize("payload", _PAYLOADS, ids=["str", "null", "obj", "1MB"])
@pytest.mark.parametrize("id_raw", _IDS)
def test_result_and_error_bytes_are_unchanged(id_raw: bytes | None, payload: bytes) -> None:
    head = _former_head(id_raw)
    assert encode_result(id_raw, payload) == head + b'"result":%s}' % payload
    assert encode_raw_error(id_raw, payload) == head + b'"error":%s}' % payload
    assert encode_error(id_raw, -32000, "m\u00e9", {"p": payload.decode()}) == (
        head
        + b'"error":%s}'
        % orjson.dumps({"code": -32000, "message": "m\u00e9", "data": {"p": payload.decode()}})
    )


@pytest.mark.parametrize("payload", _PAYLOADS, ids=["str", "null", "obj", "1MB"])
def test_meta_is_appended_to_small_and_big_messages(payload: bytes) -> None:
    msg = encode_result(b"1", payload)
    meta = {"provider": "a", "attempts": [1, 2]}
    out = encode_with_meta(msg, meta)
    assert out == msg[:-1] + b',"lasso_meta":' + orjson.dumps(meta) + b"}"
    assert orjson.loads(out)["lasso_meta"] == meta


@pytest.mark.parametrize(
    "params", [b"[]", b'[{"to":"0x1"},"latest"]', b'["0x%s"]' % (b"ab" * 500_000)]
)
@pytest.mark.parametrize("method", ["eth_call", 'we"ird\\', "eth_\u00e9"])
def test_upstream_request_bytes_are_unchanged(method: str, params: bytes) -> None:
    call = Call(method, params, b'"c"')
    for uid in (0, 1, 2**40):
        former = b'{"jsonrpc":"2.0","id":%d,"method":%s,"params":%s}' % (
            uid,
            msgspec.json.encode(method),
            params,
        )
        assert encode_upstream_request(uid, call) == former
        assert encode_upstream_request(uid, call) == former  # method bytes now cached


# --- Upstream answers: what a provider sends and what the router takes from it --------------

Decoded = tuple[object, bytes | None, bytes | None] | None


def _decoded(body: bytes) -> Decoded:
    """(id, result bytes, error bytes), or None for an answer rejected as malformed."""
    try:
        r = decode_upstream(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    result = None if r.result is msgspec.UNSET else bytes(r.result)
    error = None if r.error is msgspec.UNSET else bytes(r.error)
    return r.id, result, error


_ANSWERS: list[tuple[str, bytes, Decoded]] = [
    ("geth", b'{"jsonrpc":"2.0","id":7,"result":"0x10d4f"}\n', (7, b'"0x10d4f"', None)),
    ("id first", b'{"id":7,"jsonrpc":"2.0","result":"0x1"}', (7, b'"0x1"', None)),
    ("result first", b'{"result":[],"id":7,"jsonrpc":"2.0"}', (7, b"[]", None)),
    (
        "pretty printed",
        b'{\n  "jsonrpc": "2.0",\n  "id": 7,\n  "result": {\n    "a": [1, 2]\n  }\n}\n',
        (7, b'{\n    "a": [1, 2]\n  }', None),
    ),
    ("null", b'{"jsonrpc":"2.0","id":7,"result":null}', (7, b"null", None)),
    ("false", b'{"jsonrpc":"2.0","id":7,"result":false}', (7, b"false", None)),
    ("number", b'{"jsonrpc":"2.0","id":7,"result":-1.5e+300}', (7, b"-1.5e+300", None)),
    (
        "braces and quotes in strings",
        b'{"jsonrpc":"2.0","id":7,"result":{"s":"}\\"]}{,\\"error\\":1"}}',
        (7, b'{"s":"}\\"]}{,\\"error\\":1"}', None),
    ),
    (
        "unicode escapes",
        b'{"jsonrpc":"2.0","id":7,"result":"\\u00e9\\ud83d\\ude00\xc3\xa9"}',
        (7, b'"\\u00e9\\ud83d\\ude00\xc3\xa9"', None),
    ),
    ("escaped key", b'{"jsonrpc":"2.0","i\\u0064":7,"result":1}', (7, b"1", None)),
    ("extra member", b'{"jsonrpc":"2.0","id":7,"result":1,"x":{"y":[]}}', (7, b"1", None)),
    ("float id", b'{"jsonrpc":"2.0","id":7.0,"result":1}', (7.0, b"1", None)),
    ("string id", b'{"jsonrpc":"2.0","id":"7","result":1}', ("7", b"1", None)),
    ("big id", b'{"jsonrpc":"2.0","id":18446744073709551617,"result":1}', (2**64 + 1, b"1", None)),
    ("duplicate id: last wins", b'{"jsonrpc":"2.0","id":7,"result":1,"id":8}', (8, b"1", None)),
    ("duplicate result", b'{"jsonrpc":"2.0","id":7,"result":1,"result":2}', (7, b"2", None)),
    (
        "error",
        b'{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"x"}}',
        (7, None, b'{"code":-32000,"message":"x"}'),
    ),
    (
        "result then error",
        b'{"jsonrpc":"2.0","id":7,"result":"0x1","error":{"code":1,"message":"m"}}',
        (7, b'"0x1"', b'{"code":1,"message":"m"}'),
    ),
    ("no result", b'{"jsonrpc":"2.0","id":7}', (7, None, None)),
    ("trailing object", b'{"jsonrpc":"2.0","id":7,"result":"0x1"} {"x":1}', None),
    ("trailing comma", b'{"jsonrpc":"2.0","id":7,"result":"0x1"},', None),
    ("truncated", b'{"jsonrpc":"2.0","id":7,"result":[{"a":1},{"b":2}', None),
    ("result not one value", b'{"jsonrpc":"2.0","id":7,"result":1 2}', None),
    ("bad literal", b'{"jsonrpc":"2.0","id":7,"result":tru}', None),
    ("control char in string", b'{"jsonrpc":"2.0","id":7,"result":"a\x01"}', None),
    ("bad escape", b'{"jsonrpc":"2.0","id":7,"result":"\\x"}', None),
    ("trailing comma in result", b'{"jsonrpc":"2.0","id":7,"result":[1,]}', None),
    ("array", b'[{"jsonrpc":"2.0","id":7,"result":1}]', None),
    ("html", b"<html>502 Bad Gateway</html>", None),
    ("empty", b"", None),
]


@pytest.mark.parametrize(
    ("body", "expected"), [a[1:] for a in _ANSWERS], ids=[a[0] for a in _ANSWERS]
)
def test_upstream_answers(body: bytes, expected: Decoded) -> None:
    assert _decoded(body) == expected


def test_big_result_is_passed_through_byte_for_byte() -> None:
    for head in (b'{"jsonrpc":"2.0","id":3,"result":', b'{ "id" : 3 ,\n"result" :\t'):
        assert _decoded(head + _BIG + b"}\r\n") == (3, _BIG, None)
        assert _decoded(head + _BIG[:-1] + b"}") is None  # cut short: a provider fault


# Generated answers: random values with escapes, nesting and whitespace, in random key order.
_WS = [b"", b"", b" ", b"\n", b"\t", b"\r\n  "]
_STR_PARTS = [
    b"0x",
    b"ab12",
    b'\\"',
    b"\\\\",
    b"\\u00e9",
    b"\\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'\\"result\\":',
    "\u00e9\u20ac".encode(),
    b" ",
]


def _ws(rng: random.Random) -> bytes:
    return rng.choice(_WS)


def _string(rng: random.Random) -> bytes:
    return b'"' + b"".join(rng.choice(_STR_PARTS) for _ in range(rng.randrange(6))) + b'"'


def _value(rng: random.Random, depth: int = 0) -> bytes:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice([b"null", b"true", b"false", b"0", b"-12", b"3.25e-7", b"1" * 30])
    if kind in (1, 2, 3):
        return _string(rng)
    items = [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 6:
        items = [_string(rng) + _ws(rng) + b":" + _ws(rng) + v for v in items]
    inner = (_ws(rng) + b"," + _ws(rng)).join(items)
    return (b"[%s]" if kind in (4, 5) else b"{%s}") % (_ws(rng) + inner + _ws(rng))


def _answer(rng: random.Random, members: list[tuple[bytes, bytes]]) -> bytes:
    rng.shuffle(members)
    parts = [_ws(rng) + b'"%s"' % k + _ws(rng) + b":" + _ws(rng) + v + _ws(rng) for k, v in members]
    return b"{" + b",".join(parts) + b"}"


def test_generated_answers_keep_id_and_result_bytes() -> None:
    rng = random.Random(20261124)
    for uid in range(600):
        result = _value(rng)
        orjson.loads(result)  # the generator makes valid JSON
        body = _answer(rng, [(b"jsonrpc", b'"2.0"'), (b"id", b"%d" % uid), (b"result", result)])
        assert _decoded(body + _ws(rng)) == (uid, result, None), body
        cut = rng.randrange(len(body) - 1)
        assert _decoded(body[:cut]) is None, body[:cut]
        garbage = rng.choice([b",", b"}", b" 1", b'{"x":1}', b"\x00", b"]"])
        assert _decoded(body + _ws(rng) + garbage) is None, body + garbage
        error = b'{"code":-32000,"message":%s}' % _string(rng)
        both = _answer(rng, [(b"id", b"%d" % uid), (b"result", result), (b"error", error)])
        assert _decoded(both) == (uid, result, error), both
