"""The fast upstream: a raw ``asyncio.Protocol`` + httptools + uvloop JSON-RPC server.

    python bench/servers/upstream.py [--mode echo|big|fail500|chain]

Binds 127.0.0.1 on a free port and prints ``listening PORT``. ``echo`` answers
``{"jsonrpc":"2.0","id":<id>,"result":"0x1234"}`` with the request's id (read with one regex,
no JSON parse), batches as arrays, keep-alive; ``big`` answers ``eth_getLogs`` with a ~1 MB
log list; ``fail500`` answers everything with HTTP 500 and a JSON-RPC error; ``chain`` answers
``eth_getBlockByNumber`` with a real-looking block (about 1.3 KB; a chain standing still at
``CHAIN_HEAD``, `finalized` 64 below) and everything else as ``echo``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
from typing import Any

HOST = "127.0.0.1"

CHAIN_HEAD = 0x1000000
_FIRST_PARAM = re.compile(rb'"params"\s*:\s*\[\s*"([^"]*)"')
_blocks: dict[int, bytes] = {}


def chain_block(n: int) -> bytes:
    """Block ``n`` of the standing chain, as JSON (memoised)."""
    out = _blocks.get(n)
    if out is None:

        def h(x: int) -> str:
            return "0x" + f"{x * 0x9E3779B97F4A7C15:064x}"[-64:]

        block = {
            "number": hex(n),
            "hash": h(n + 1),
            "parentHash": h(n),
            "nonce": "0x0000000000000000",
            "sha3Uncles": h(7),
            "logsBloom": "0x" + "00" * 256,
            "transactionsRoot": h(n + 11),
            "stateRoot": h(n + 12),
            "receiptsRoot": h(n + 13),
            "miner": "0x" + "ab" * 20,
            "difficulty": "0x0",
            "extraData": "0x",
            "gasLimit": hex(30_000_000),
            "gasUsed": hex(21_000 * 5),
            "timestamp": hex(1_700_000_000 + 12 * n),
            "baseFeePerGas": hex(1_000_000_000),
            "transactions": [h(n * 100 + i) for i in range(5)],
            "uncles": [],
        }
        out = _blocks[n] = json.dumps(block, separators=(",", ":")).encode()
    return out


def _chain_answer(body: bytes) -> bytes | None:
    if b"eth_getBlockByNumber" not in body:
        return None
    m = _FIRST_PARAM.search(body)
    tag = m.group(1) if m else b"latest"
    if tag in (b"latest", b"pending", b"safe"):
        n = CHAIN_HEAD
    elif tag == b"finalized":
        n = CHAIN_HEAD - 64
    else:
        n = int(tag, 16)
    return b"null" if n > CHAIN_HEAD else chain_block(n)


_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.)*"|[^,}\]\s]+)')
_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_500_HEAD = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n"
)


def big_logs_result(target_bytes: int = 1_000_000) -> bytes:
    """An eth_getLogs-like result of about ``target_bytes`` (ERC-20 Transfer logs)."""
    logs = []
    size = 2
    i = 0
    while size < target_bytes:
        log = {
            "address": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
            "topics": [
                "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
                "0x000000000000000000000000" + f"{i * 7919:040x}"[-40:],
                "0x000000000000000000000000" + f"{i * 104729:040x}"[-40:],
            ],
            "data": "0x" + f"{i * 1_000_003:064x}",
            "blockNumber": hex(0x112A880 + i // 40),
            "transactionHash": "0x" + f"{i * 2_654_435_761:064x}"[-64:],
            "transactionIndex": hex(i % 200),
            "blockHash": "0x" + f"{(i // 40) * 40_503:064x}"[-64:],
            "logIndex": hex(i % 400),
            "removed": False,
        }
        text = json.dumps(log, separators=(",", ":"))
        logs.append(text)
        size += len(text) + 1
        i += 1
    return ("[" + ",".join(logs) + "]").encode()


class _Upstream(asyncio.Protocol):
    """JSON-RPC echo: ``{"jsonrpc":"2.0","id":<id>,"result":"0x1234"}`` per call, keep-alive."""

    def __init__(self, mode: str, big: bytes) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._error = httptools.HttpParserError
        self._mode = mode
        self._big = big
        self._body: list[bytes] = []
        self._t: Any = None

    def connection_made(self, transport: Any) -> None:
        self._t = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._error:
            self._t.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        chunks = self._body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        t = self._t
        if self._mode == "fail500":
            m = _ID.search(body)
            out = (
                b'{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"upstream failure"}}'
                % (m.group(1) if m else b"null")
            )
            t.write(_500_HEAD % len(out) + out)
        elif self._mode == "big" and b"eth_getLogs" in body:
            m = _ID.search(body)
            pre = b'{"jsonrpc":"2.0","id":%s,"result":' % (m.group(1) if m else b"null")
            n = len(pre) + len(self._big) + 1
            t.writelines([_OK_HEAD % n, pre, self._big, b"}"])  # no 1 MB concatenation here
        elif self._mode == "chain" and (result := _chain_answer(body)) is not None:
            m = _ID.search(body)
            out = b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (m.group(1) if m else b"null", result)
            t.write(_OK_HEAD % len(out) + out)
        elif body[:1] == b"[":
            out = (
                b"["
                + b",".join(
                    b'{"jsonrpc":"2.0","id":%s,"result":"0x1234"}' % i for i in _ID.findall(body)
                )
                + b"]"
            )
            t.write(_OK_HEAD % len(out) + out)
        else:
            m = _ID.search(body)
            out = b'{"jsonrpc":"2.0","id":%s,"result":"0x1234"}' % (m.group(1) if m else b"null")
            t.write(_OK_HEAD % len(out) + out)
        if not self._parser.should_keep_alive():
            t.close()


def _serve_upstream(mode: str) -> None:
    import uvloop

    big = big_logs_result() if mode == "big" else b""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Upstream(mode, big), HOST, 0, backlog=4096)
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description="raw asyncio.Protocol + httptools JSON-RPC echo")
    parser.add_argument("--mode", choices=["echo", "big", "fail500", "chain"], default="echo")
    _serve_upstream(parser.parse_args().mode)


if __name__ == "__main__":
    main()
