"""A seeded mutational generator of request bodies and heads for ``fuzz/run.py``.

Inputs start from the committed corpus (``fuzz/corpus/``, where atheris also writes what it
finds) and from generators of the shapes the issue names (deep nesting, huge batches, long
numbers, invalid UTF-8, lone surrogates, 1e999); mutations flip, insert, delete, duplicate and
splice bytes, favouring the tokens that matter to a JSON or HTTP parser.
"""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ["Generator"]

CORPUS = Path(__file__).parent / "corpus"
JSON_TOKENS = [b"[", b"]", b"{", b"}", b'"', b"\\", b"\\u", b"\\ud800", b"\\udc00", b"1e999",
               b"-", b"0x", b"null", b"true", b",", b":", b"\x00", b"\xff", b"\xed\xa0\x80",
               b"\xc0\xaf", b'"jsonrpc":"2.0"', b'"id":', b'"method":', b'"params":', b"9" * 64,
               b" ", b"\n", b"\t", b"eth_chainId", b"eth_blockNumber"]  # fmt: skip
HEAD_TOKENS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"Content-Length: ", b"Content-Length: 0",
               b"Transfer-Encoding: chunked", b"Transfer-Encoding: xchunked", b"Host: a",
               b"Connection: close", b"Connection: Upgrade", b"Upgrade: websocket", b"%2e", b"%2f",
               b"/..", b"/.", b"//", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\x00", b"\x7f",
               b"99999999999999999999", b"-1", b"+5", b"Expect: 100-continue", b"\r\n\r\n",
               b"0\r\n\r\n", b"http://a", b"?include_meta=body", b"\xff"]  # fmt: skip
METHODS = [
    "eth_blockNumber",
    "eth_chainId",
    "eth_getBalance",
    "eth_sign",
    "foo_bar",
    "eth_subscribe",
]


def _load(kind: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPUS / kind).iterdir()) if p.is_file()]


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.bodies = _load("bodies")
        self.heads = _load("heads")

    # -- bodies --------------------------------------------------------------------------

    def body(self) -> bytes:
        r = self.rng.random()
        if r < 0.45:
            return self._mutate(self.rng.choice(self.bodies), JSON_TOKENS)
        if r < 0.65:
            return self._call()
        if r < 0.80:
            return b"[" + b",".join(self._call() for _ in range(self.rng.randint(0, 30))) + b"]"
        if r < 0.86:
            return self._deep()
        if r < 0.89:
            n = self.rng.choice([21, 1000, 100_000])
            return b"[" + b",".join([b"1"] * n) + b"]"
        if r < 0.92:
            return self._splice(self.bodies)
        return self.rng.randbytes(self.rng.randint(0, 300))

    def _call(self) -> bytes:
        rng = self.rng
        fields = [b'"jsonrpc":"2.0"'] if rng.random() < 0.9 else [b'"jsonrpc":' + self._value()]
        fields.append(
            b'"method":"%s"' % rng.choice(METHODS).encode()
            if rng.random() < 0.9
            else b'"method":' + self._value()
        )
        if rng.random() < 0.7:
            fields.append(
                b'"params":[' + b",".join(self._value() for _ in range(rng.randint(0, 3))) + b"]"
            )
        if rng.random() < 0.85:
            fields.append(b'"id":' + self._value())
        rng.shuffle(fields)
        return b"{" + b",".join(fields) + b"}"

    def _value(self) -> bytes:
        rng = self.rng
        return rng.choice([
            b"%d" % rng.randint(-(2**70), 2**70), b'"%s"' % rng.randbytes(4).hex().encode(),
            b"null", b"true", b"1e999", b"9" * rng.choice([1, 20, 5000]), b"-0.0e-400",
            b'"\\ud800"', b'"\xff"', b"{}", b"[]", b'{"a":[1,{"b":null}]}', b"1.5",
            b'"0x' + b"ab" * rng.randint(0, 64) + b'"',
        ])  # fmt: skip

    def _deep(self) -> bytes:
        n = self.rng.choice([31, 32, 33, 100, 1000, 20_000, 50_000])
        open_, close = self.rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        middle = b"1" if open_ != b"[" else b""
        tail = close * n if self.rng.random() < 0.8 else close * self.rng.randint(0, n)
        return open_ * n + middle + tail

    # -- heads ---------------------------------------------------------------------------

    def head(self) -> bytes:
        if self.rng.random() < 0.1:
            return self._splice(self.heads)
        return self._mutate(self.rng.choice(self.heads), HEAD_TOKENS)

    # -- mutations -----------------------------------------------------------------------

    def _mutate(self, seed: bytes, tokens: list[bytes]) -> bytes:
        rng = self.rng
        data = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(6)
            at = rng.randint(0, len(data))
            if op == 0 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif op in (1, 2):
                data[at:at] = rng.choice(tokens)
            elif op == 3 and data:
                del data[at : at + rng.randint(1, 8)]
            elif op == 4 and data:
                piece = data[at : at + rng.randint(1, 16)]
                data[at:at] = piece * rng.randint(1, 4)
            elif op == 5 and data:
                data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        return bytes(data)

    def _splice(self, pool: list[bytes]) -> bytes:
        a, b = self.rng.choice(pool), self.rng.choice(pool)
        return a[: self.rng.randint(0, len(a))] + b[self.rng.randint(0, len(b)) :]
