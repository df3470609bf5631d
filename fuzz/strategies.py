"""Hypothesis strategies for request bodies and request heads (the CI property suite)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

__all__ = ["bodies", "heads"]

METHODS = [
    "eth_blockNumber",
    "eth_chainId",
    "eth_getBalance",
    "eth_sign",
    "foo_bar",
    "",
    "eth_subscribe",
]
ODD_NUMBERS = [
    b"1e999",
    b"-1e999",
    b"9" * 5000,
    b"-0",
    b"1.5e-400",
    b"0.0",
    b"18446744073709551617",
]
ODD_STRINGS = [
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\u0000"',
    b'"\xff"',
    b'"\xed\xa0\x80"',
    b'"\xc0\xaf"',
    b'""',
]


def _dumps(v: object) -> bytes:
    return json.dumps(v).encode()


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=6), ch, max_size=4),
    max_leaves=20,
).map(_dumps)
_raw_value = st.one_of(_values, st.sampled_from(ODD_NUMBERS), st.sampled_from(ODD_STRINGS))
_ids = st.one_of(
    st.integers().map(lambda i: str(i).encode()),
    st.text(max_size=16).map(_dumps),
    st.just(b"null"),
    st.sampled_from(ODD_NUMBERS + ODD_STRINGS + [b"true", b"{}", b"[1]"]),
)
_nest = st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n)
_deep_obj = st.integers(min_value=1, max_value=2000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)


@st.composite
def _call(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    if draw(st.booleans()) or draw(st.booleans()):
        parts.append(b'"jsonrpc":' + draw(st.sampled_from([b'"2.0"', b'"1.0"', b"2", b'"2.0"'])))
    if draw(st.integers(0, 4)):
        parts.append(
            b'"method":' + draw(st.one_of(st.sampled_from(METHODS).map(_dumps), _raw_value))
        )
    if draw(st.integers(0, 3)):
        params = draw(
            st.one_of(
                st.lists(_raw_value, max_size=3).map(lambda xs: b"[" + b",".join(xs) + b"]"),
                _raw_value,
                _nest,
            )
        )
        parts.append(b'"params":' + params)
    if draw(st.integers(0, 5)):
        parts.append(b'"id":' + draw(_ids))
    order = draw(st.permutations(parts))
    return b"{" + b",".join(order) + b"}"


@st.composite
def _batch(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(st.one_of(_call(), _raw_value, _nest), max_size=25))
    return b"[" + b",".join(items) + b"]"


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.one_of(_call(), _batch())))
    for _ in range(draw(st.integers(1, 4))):
        if not base:
            break
        at = draw(st.integers(0, len(base) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            base[at] = draw(st.integers(0, 255))
        elif op == 1:
            del base[at]
        else:
            base[at:at] = draw(st.sampled_from([b"[", b"{", b'"', b",", b"\\", b"\x00", b"\xff"]))
    return bytes(base)


#: Request bodies: calls, batches, deep nests, odd numbers and strings, mutations, noise.
bodies = st.one_of(
    _call(),
    _batch(),
    _nest,
    _deep_obj,
    _raw_value,
    _mutated(),
    st.binary(max_size=200),
)

_VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1.1 ", b""]
_TARGETS = [b"/rpc/ethereum", b"/rpc/eth", b"/rpc/../metrics", b"/rpc/%2e%2e/x", b"/rpc/a%2Fb",
            b"http://h/rpc/ethereum", b"/health", b"/rpc/fastest/ethereum?include_meta=body",
            b"/rpc\\x", b"*", b"/rpc/eth\x00", b"/rpc/provider/alpha/ethereum"]  # fmt: skip
_METHODS = [b"POST", b"GET", b"PUT", b"post", b"PRI", b"POST ", b"CONNECT"]
_NAMES = [b"Host", b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection",
          b"Expect", b"Upgrade", b"X-Lasso-Include-Meta", b"X-Request-Id", b"Content-Length ",
          b" Host", b"X\x00Y", b"X-A", b"Content_Length"]  # fmt: skip
_VALUES = [b"fuzz", b"chunked", b"close", b"keep-alive", b"100-continue", b"websocket", b"h2c",
           b"body", b"a\x00b", b"a\x7fb", b"chunked, identity", b" chunked", b"0", b"-1", b"+5",
           b"99999999999999999999", b"5, 5", b"\xff"]  # fmt: skip
_ENDS = [b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\n "]


@st.composite
def heads(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """``(head, body)``: a request line, header lines and the end of the head, then a body."""
    body = draw(st.sampled_from([b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}', b"", b"{}"]))
    line = b" ".join(
        [
            draw(st.sampled_from(_METHODS)),
            draw(st.sampled_from(_TARGETS)),
            draw(st.sampled_from(_VERSIONS)),
        ]
    )
    fields: list[bytes] = []
    if draw(st.integers(0, 4)):
        fields.append(b"Host: fuzz")
    if draw(st.integers(0, 3)):
        fields.append(b"Content-Length: %d" % len(body))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(st.sampled_from(_NAMES), st.binary(min_size=1, max_size=8)))
        value = draw(st.one_of(st.sampled_from(_VALUES), st.binary(max_size=8)))
        fields.append(name + draw(st.sampled_from([b": ", b":", b" : ", b":\t"])) + value)
    fields = draw(st.permutations(fields))
    end = draw(st.sampled_from(_ENDS))
    head = end.join([line, *fields]) + end + draw(st.sampled_from([end, b"\r\n"]))
    return head, body
