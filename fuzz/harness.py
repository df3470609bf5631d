"""What the CI property suite and ``fuzz/run.py`` share: a router on a real socket in a thread of
its own, a raw HTTP/1.1 client, and the invariants every answer must keep (issue 16).

Invariants (each check returns None, or the broken invariant in words):

- no 5xx except by design (503 connection limit, 505 HTTP version), never a dropped connection
  without an answer to a complete request, never a hang;
- an answer to a well-framed ``POST /rpc`` body is valid JSON-RPC; a call's id is echoed; a
  batch is answered in request order; the error code is the one an independent reading of the
  body (Python's ``json``) calls for;
- a refusal (400, 408, 413, 431, 505) closes the connection;
- afterwards the router is healthy, its connection gate is back to zero and its memory flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.testing.pytest_plugin import fleet_config
from lasso_rpc.config import load_config_text
from lasso_rpc.server.app import RouterServer

__all__ = [
    "MAX_BATCH",
    "MAX_DEPTH",
    "Response",
    "ErrorLog",
    "ServerThread",
    "check_body_answer",
    "check_head_answer",
    "post",
    "read_response",
    "reference_parser_answers",
]

MAX_BATCH = 20
MAX_DEPTH = 32
BY_DESIGN_5XX = (503, 505)


class ErrorLog(logging.Handler):
    """Every record logged with an exception at ERROR or above, by any logger (the router's,
    aiohttp's, asyncio's "Task exception was never retrieved"): each one is a crash."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) in self._seen:
            return  # reached through two loggers
        self._seen.add(id(record))
        if record.exc_info or "exception" in record.getMessage().lower():
            self.records.append(self.format(record)[:3000])

    def __enter__(self) -> ErrorLog:
        for name in ("", "lasso_rpc", "asyncio"):
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in ("", "lasso_rpc", "asyncio"):
            logging.getLogger(name).removeHandler(self)


class ServerThread:
    """A mock fleet and a router (``RouterServer``, the lean front) served from a thread;
    ``errors`` holds every exception logged while it ran (see ``ErrorLog``)."""

    def __init__(self, **server: Any) -> None:
        self._server_cfg = server
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="lasso-fuzz-router", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.server: RouterServer | None = None
        self.error: BaseException | None = None
        self.port = 0
        self.errors = ErrorLog()

    def __enter__(self) -> ServerThread:
        self.errors.__enter__()
        self._thread.start()
        if not self._ready.wait(30) or self.error is not None:
            raise RuntimeError(f"router did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.errors.__exit__()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        fleet = await MockFleet.start(2, block_time_ms=0)
        async with fleet:
            fleet.chain.mine(5)
            limits = {"max_json_depth": MAX_DEPTH, **self._server_cfg.pop("limits", {})}
            text = fleet_config(
                fleet,
                routing={"max_batch_size": MAX_BATCH, "max_body_bytes": 1024 * 1024},
                server={"limits": limits, **self._server_cfg},
            )
            self.server = RouterServer(load_config_text([("fuzz.yaml", text)]), port=0)
            await self.server.start()
            self.port = self.server.port
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.aclose()

    def call(self, fn: Any) -> Any:
        """Runs ``fn()`` on the router's loop (to read its state) and returns its result."""
        assert self._loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def gate_total(self) -> int:
        return int(
            self.call(lambda: self.server.gate.total if self.server and self.server.gate else -1)
        )

    @staticmethod
    def rss_mb() -> float:
        return float(psutil.Process().memory_info().rss) / 1e6

    @contextlib.contextmanager
    def connect(self, timeout: float = 5.0) -> Iterator[socket.socket]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            yield sock
        finally:
            sock.close()


def post(body: bytes, path: str = "/rpc/ethereum", *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: fuzz", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buf:
            if not self._more():
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not self._more():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def read_response(reader: _Reader | socket.socket) -> Response | None:
    """One response; None when the connection closed first. Raises TimeoutError on a hang."""
    r = reader if isinstance(reader, _Reader) else _Reader(reader)
    while True:
        head = r.until(b"\r\n\r\n")
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if status == 100:
            continue
        body = b""
        if "content-length" in headers:
            got = r.exactly(int(headers["content-length"]))
            if got is None:
                return None
            body = got
        return Response(status, headers, body)


def reader_of(sock: socket.socket) -> _Reader:
    return _Reader(sock)


def closed_after(reader: _Reader) -> bool:
    """The server closes the connection (EOF, or a reset) with nothing more sent."""
    try:
        return not reader.buf and not reader._more()
    except (ConnectionError, TimeoutError):
        return False


# -- the oracle: what Python's json makes of a body ------------------------------------------


class _Num(str):
    """A JSON number, kept as its text (no int or float conversion, no size limit)."""


def _strict(raw: bytes) -> Any:
    def no_constant(name: str) -> Any:
        raise ValueError(name)

    # UTF-8 only: json.loads(bytes) would also take a BOM, UTF-16 and UTF-32 (RFC 8259 §8.1
    # lets a parser refuse them; the router does).
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        # Every member, a duplicate key's lost value too, must be free of lone surrogates.
        json.dumps(items, ensure_ascii=False).encode("utf-8")
        return dict(items)

    value = json.loads(
        raw.decode("utf-8"),
        parse_int=_Num,
        parse_float=_Num,
        parse_constant=no_constant,
        object_pairs_hook=pairs,
    )
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ValueError("byte order mark")
    # A lone surrogate escape is "unpredictable" (RFC 8259 §8.2): the router refuses it.
    json.dumps(value, ensure_ascii=False).encode("utf-8")
    return value


def _depth(v: Any) -> int:
    """Nesting depth, without recursion (bodies nest deeper than Python's stack)."""
    deepest, todo = 0, [(v, 0)]
    while todo:
        item, d = todo.pop()
        if isinstance(item, list | dict):
            d += 1
            deepest = max(deepest, d)
            todo.extend((x, d) for x in (item if isinstance(item, list) else item.values()))
    return deepest


def _valid_call(item: Any) -> bool:
    if not isinstance(item, dict) or type(item.get("jsonrpc")) is not str:
        return False
    if item["jsonrpc"] != "2.0":
        return False
    method = item.get("method")
    if type(method) is not str or not method:
        return False
    if "params" in item and not isinstance(item["params"], list | dict):
        return False
    return not ("id" in item and not (item["id"] is None or isinstance(item["id"], str)))


def check_body_answer(body: bytes, resp: Response | None) -> str | None:
    """The invariants of the answer to ``POST /rpc/ethereum`` with ``body`` (framed right)."""
    if resp is None:
        return "dropped connection without a response"
    if resp.status >= 500 and resp.status not in BY_DESIGN_5XX:
        return f"HTTP {resp.status}"
    try:
        ref: Any = _strict(body)
        ref_ok = True
    except (ValueError, RecursionError, UnicodeError):
        ref, ref_ok = None, False
    if resp.status == 204:
        if not ref_ok:
            return "204 for a body that is not JSON"
        items = ref if isinstance(ref, list) else [ref]
        if not items or any("id" in i or not _valid_call(i) for i in items if isinstance(i, dict)):
            return "204 although a call needed an answer"
        return None
    if resp.status != 200:
        return f"HTTP {resp.status} for a well-framed body"
    try:
        answer = _strict(resp.body)
    except (ValueError, RecursionError):
        return "the answer is not valid JSON"
    if not ref_ok:
        if not _is_error(answer, (-32700, -32600)):
            return "bytes that are not JSON were not answered -32700/-32600"
        return None
    if isinstance(ref, list):
        return _check_batch(ref, answer)
    if _depth(ref) > MAX_DEPTH:
        return None if _is_error(answer, (-32600,)) else "too deep, yet not -32600"
    if isinstance(ref, dict):
        return _check_single(ref, answer)
    return None if _is_error(answer, (-32600,)) else "a JSON scalar not answered -32600"


def _is_error(answer: Any, codes: tuple[int, ...]) -> bool:
    return (
        isinstance(answer, dict)
        and answer.get("jsonrpc") == "2.0"
        and isinstance(answer.get("error"), dict)
        and answer["error"].get("code") in [str(c) for c in codes]  # numbers parsed as text
    )


def _answer_shape(answer: Any) -> str | None:
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0" or "id" not in answer:
        return "an answer that is not a JSON-RPC response object"
    if ("result" in answer) == ("error" in answer):
        return "an answer with both or neither of result and error"
    return None


def _check_single(call: dict[str, Any], answer: Any) -> str | None:
    bad = _answer_shape(answer)
    if bad is not None:
        return bad
    if _valid_call(call):
        if answer["id"] != call.get("id"):
            return f"id not echoed: sent {call.get('id')!r}, got {answer['id']!r}"
        return None
    if "result" in answer:
        return "an invalid request got a result"
    return None


def _check_batch(items: list[Any], answer: Any) -> str | None:
    if not items or len(items) > MAX_BATCH:
        return None if _is_error(answer, (-32600,)) else "empty or oversized batch not -32600"
    if _depth(items) > MAX_DEPTH:  # the batch is a level; one item too deep refuses it all
        return None if _is_error(answer, (-32600,)) else "too deep, yet not -32600"
    valid = [_valid_call(i) for i in items]
    expected = [(i, ok) for i, ok in zip(items, valid, strict=True) if not (ok and "id" not in i)]
    if not isinstance(answer, list):
        return "a batch not answered with an array"
    if len(answer) != len(expected):
        return f"batch answered with {len(answer)} entries for {len(expected)} calls"
    for (sent, ok), got in zip(expected, answer, strict=True):
        bad = _answer_shape(got)
        if bad is not None:
            return bad
        if ok and got["id"] != sent.get("id"):
            return "batch order not kept (or an id not echoed)"
        if not ok and "result" in got:
            return "an invalid batch item got a result"
    return None


def check_head_answer(complete: bool, resp: Response | None, reader: _Reader) -> str | None:
    """The invariants of the answer to a fuzzed request head (and its declared body)."""
    if resp is None:
        return "dropped connection without a response" if complete else None
    if resp.status >= 500 and resp.status not in BY_DESIGN_5XX:
        return f"HTTP {resp.status}"
    # A refusal of the framing says Connection: close (a handler's 400, say a WebSocket
    # handshake gone wrong on a well-framed request, may keep the connection).
    must_close = resp.headers.get("connection", "").lower() == "close" or resp.status in (
        408,
        413,
        431,
        505,
    )
    if must_close and not closed_after(reader):
        return f"HTTP {resp.status} and the connection stayed open (or answered again)"
    return None


def reference_parser_answers(raw: bytes) -> bool:
    """aiohttp's parser, the reference, either frames a whole request in ``raw`` or refuses it:
    either way an answer is due (False: it waits for more bytes)."""
    from unittest import mock

    from aiohttp.http_parser import HttpRequestParser

    loop = asyncio.new_event_loop()
    try:
        parser = HttpRequestParser(
            mock.Mock(), loop, 2**16, max_line_size=8190, max_field_size=8190
        )
        try:
            messages, _upgraded, _tail = parser.feed_data(raw)
        except Exception:
            return True
        if not messages:
            return False
        _message, payload = messages[0]
        return bool(payload.is_eof()) if hasattr(payload, "is_eof") else True
    finally:
        loop.close()
