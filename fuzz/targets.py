"""Pure fuzz targets (no sockets): the codec and the head parser, each raising ``InvariantBroken``.

Shared by the atheris targets (coverage-guided) and ``fuzz/run.py`` (which also drives the whole
server on a socket through ``fuzz/harness.py``).
"""

from __future__ import annotations

import asyncio
import json
from unittest import mock

from aiohttp.http_parser import HttpRequestParser

from lasso_rpc.errors import InvalidRequest, ParseError
from lasso_rpc.jsonrpc import Call, decode_body, encode_error, encode_result
from lasso_rpc.server.http1_guard import HeadLimits, head_refusal
from lasso_rpc.server.http1_head import RequestHead, parse_head

__all__ = ["InvariantBroken", "check_codec", "check_head_parser"]

LIMITS = HeadLimits(32 * 1024, 100)
_loop: asyncio.AbstractEventLoop | None = None


class InvariantBroken(AssertionError):
    pass


def _valid_json(raw: bytes) -> bool:
    try:
        json.loads(raw, parse_int=str, parse_float=str)
    except (ValueError, RecursionError):
        return False
    return True


def check_codec(body: bytes) -> None:
    """``decode_body`` gives calls or a JSON-RPC error, ids kept, answers valid JSON."""
    try:
        parsed = decode_body(body, max_depth=32, max_batch=20)
    except (ParseError, InvalidRequest) as exc:
        if not _valid_json(encode_error(exc.id_raw, -32600, exc.message, exc.data)):
            raise InvariantBroken("an error answer that is not valid JSON") from None
        return
    calls = [parsed] if isinstance(parsed, Call) else parsed
    if not 1 <= len(calls) <= 20:
        raise InvariantBroken(f"a batch of {len(calls)} items got through")
    for c in calls:
        if isinstance(c, Call):
            if not c.method or c.params[:1] not in (b"[", b"{"):
                raise InvariantBroken("a call without a method or with scalar params")
            if c.id_raw is not None and c.id_raw not in body:
                raise InvariantBroken("an id that is not the client's bytes")
            if not _valid_json(encode_result(c.id_raw, b'"0x1"')):
                raise InvariantBroken(f"the answer to id {c.id_raw!r} is not valid JSON")
        elif not isinstance(c, InvalidRequest):
            raise InvariantBroken(f"a batch item that is neither a call nor an error: {c!r}")


def _aiohttp(raw: bytes) -> tuple[object, int] | None:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    parser = HttpRequestParser(mock.Mock(), _loop, 2**16, max_line_size=8190, max_field_size=8190)
    try:
        messages, _upgraded, _tail = parser.feed_data(raw)
    except Exception:
        return None
    if not messages:
        return None
    message, payload = messages[0]
    size = sum(len(b) for b in payload._buffer) if hasattr(payload, "_buffer") else 0
    return message, size


def check_head_parser(raw: bytes) -> None:
    """Never raises; what the hot path takes, aiohttp (the reference) frames the same way."""
    ours = parse_head(raw)
    head_refusal(raw, LIMITS)
    if not isinstance(ours, RequestHead):
        return
    if ours.start > LIMITS.max_bytes or ours.fields > LIMITS.max_fields:
        return  # the front refuses it (431) before taking it, as the guard says
    theirs = _aiohttp(raw[: ours.end])  # the first request only: what follows is the next one
    if theirs is None:
        raise InvariantBroken("taken by the hot path, refused by aiohttp: a smuggling hole")
    message, size = theirs
    target = "/rpc/" + ours.tail + ("?" + ours.query.decode("latin-1") if ours.query else "")
    m = message
    # (an empty query, "/rpc/x?", routes as "/rpc/x": only the text differs)
    if m.method != "POST" or m.path not in (target, target + "?"):  # type: ignore[attr-defined]
        raise InvariantBroken(f"request line read differently: {m.method} {m.path}")  # type: ignore[attr-defined]
    if m.version != ((1, 0) if ours.http10 else (1, 1)):  # type: ignore[attr-defined]
        raise InvariantBroken("version read differently")
    if m.chunked or m.upgrade:  # type: ignore[attr-defined]
        raise InvariantBroken("chunked or upgrade taken by the hot path")
    if m.should_close is ours.keep_alive:  # type: ignore[attr-defined]
        raise InvariantBroken("keep-alive read differently")
    if size != min(ours.end, len(raw)) - ours.start:
        raise InvariantBroken("body framed differently")
