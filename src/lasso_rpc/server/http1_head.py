"""The hot path's HTTP/1.1 request-head parser: pure functions on bytes, no I/O.

``parse_head`` reads the head at the start of a buffer and says one of three things: a
``RequestHead`` the lean front serves (``POST /rpc/...`` over HTTP/1.0 or 1.1, framed by exactly
one ``Content-Length``, no ``Transfer-Encoding``, ``Upgrade`` or unusual ``Expect``, a plain path
with no percent-escape, dot or empty segment, well-formed header lines); ``HandOff`` for anything
else, which aiohttp (the reference) then serves or refuses; None when more bytes are needed.
A head still arriving is handed over as soon as it cannot become a hot-path request or aiohttp's
parser already refuses it, so no client waits for an answer aiohttp would give at once.
The connection protocol that uses it is ``server/http1_conn.py``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import msgspec
from aiohttp.http_parser import HttpRequestParser

__all__ = ["HandOff", "RequestHead", "parse_head", "parse_query"]

_MAX_HEAD = 65536  # a longer head goes to aiohttp, which answers 400/431
_CTL = re.compile(rb"[\x00-\x1f\x7f]")
_CTL_NOT_TAB = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # CR and LF checked apart
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Lower-cased names of the only headers the hot path reads.
_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _UPGRADE, _EXPECT, _META, _REQUEST_ID, _HOST = (
    range(8)
)
_KEY, _AUTHORIZATION, _BYPASS = 8, 9, 10
_HEADERS = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"upgrade": _UPGRADE,
    b"expect": _EXPECT,
    b"x-lasso-include-meta": _META,
    b"x-request-id": _REQUEST_ID,
    b"x-lasso-key": _KEY,
    b"authorization": _AUTHORIZATION,
    b"x-lasso-cache-bypass": _BYPASS,
}


class RequestHead(msgspec.Struct, frozen=True):
    """A request head the hot path serves; the body is ``buf[start:end]``."""

    tail: str  # the path after /rpc/
    query: bytes
    meta: str | None  # X-Lasso-Include-Meta
    request_id: str | None  # X-Request-Id
    keep_alive: bool
    http10: bool
    expect_continue: bool
    start: int
    end: int
    key: str | None = None  # API key: X-Lasso-Key, else Authorization: Bearer
    cache_bypass: bool = False  # X-Lasso-Cache-Bypass: 1
    fields: int = 0  # header lines


class HandOff:
    """Marker: this request is aiohttp's."""


_HANDOFF = HandOff()


def parse_head(buf: bytes | bytearray) -> RequestHead | HandOff | None:
    """The head at the start of ``buf``: a hot-path request, a hand-off, or None (need more)."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        if len(buf) > _MAX_HEAD:
            return _HANDOFF
        return _HANDOFF if _hand_off_early(buf) or _reference_refuses(buf) else None
    head = bytes(buf[:i])
    lines = head.split(b"\r\n")
    # A bare CR or LF anywhere would be read differently by someone; so would NUL or another
    # control byte in any line, even of a header not read here: aiohttp decides (it refuses).
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        return _HANDOFF
    if _CTL_NOT_TAB.search(head) is not None:
        return _HANDOFF
    first = lines[0]
    # aiohttp refuses a tab or a byte over 0x7f anywhere in the request line (found by atheris:
    # a non-ASCII query was taken here and refused there).
    if not first.isascii() or b"\t" in first:
        return _HANDOFF
    parts = first.split(b" ")
    if len(parts) != 3 or parts[0] != b"POST":
        return _HANDOFF
    target, version = parts[1], parts[2]
    if version == b"HTTP/1.1":
        keep_alive, http10 = True, False
    elif version == b"HTTP/1.0":
        keep_alive, http10 = False, True
    else:
        return _HANDOFF
    q = target.find(b"?")
    path, query = (target, b"") if q < 0 else (target[:q], target[q + 1 :])
    if path[:5] != b"/rpc/" or b"%" in path or b"/." in path or b"//" in path or b"#" in target:
        return _HANDOFF
    length = -1
    meta: str | None = None
    request_id: str | None = None
    expect_continue = False
    bypass = False
    host = False
    key: str | None = None
    bearer: str | None = None
    closed = False
    for line in lines[1:]:
        c = line.find(b":")
        # No colon, a folded line, or a name that is not an RFC 9110 token: not for this parser.
        name = line[:c]
        if c <= 0 or name.translate(None, _TOKEN):
            return _HANDOFF
        k = _HEADERS.get(name.lower())
        if k is None:
            continue
        v = line[c + 1 :].strip(b" \t")
        if k == _HOST:
            if host:
                return _HANDOFF  # twice: 400 from aiohttp
            host = True
        elif k == _CONTENT_LENGTH:
            # More than 18 digits: aiohttp refuses it as an overflow; so must this parser.
            if length >= 0 or not v.isdigit() or len(v) > 18:
                return _HANDOFF
            length = int(v)
        elif k == _CONNECTION:
            for token in v.lower().split(b","):
                token = token.strip(b" \t")
                if token == b"close":
                    keep_alive, closed = False, True
                elif token == b"keep-alive" and not closed:  # "close" anywhere wins (atheris)
                    keep_alive = True
                elif token == b"upgrade":
                    return _HANDOFF
        elif k == _META:
            if meta is None:
                meta = v.decode("latin-1")
        elif k == _REQUEST_ID:
            if _CTL.search(v) is not None:
                return _HANDOFF  # echoed in a response header: let aiohttp judge it
            if request_id is None:
                request_id = v.decode("utf-8", "surrogateescape")
        elif k == _KEY:
            if key is None:
                key = v.decode("utf-8", "surrogateescape")
        elif k == _AUTHORIZATION:
            if bearer is None and v[:7].lower() == b"bearer ":
                bearer = v[7:].strip(b" \t").decode("utf-8", "surrogateescape")
        elif k == _BYPASS:
            bypass = v == b"1"
        elif k == _EXPECT and v.lower() == b"100-continue":
            expect_continue = True
        else:  # Transfer-Encoding, Upgrade, another Expect
            return _HANDOFF
    if length < 0 or not (host or http10):  # HTTP/1.1 requires a Host (400 from aiohttp)
        return _HANDOFF
    try:
        tail = path[5:].decode("ascii")
    except UnicodeDecodeError:
        return _HANDOFF
    start = i + 4
    return RequestHead(
        tail,
        query,
        meta,
        request_id,
        keep_alive,
        http10,
        expect_continue,
        start,
        start + length,
        key if key is not None else bearer,
        bypass,
        len(lines) - 1,
    )


def _reference_refuses(buf: bytes | bytearray) -> bool:
    """aiohttp's parser, where every request this parser does not take goes, already refuses
    these bytes of a head still arriving (about 4 µs; asked only while a head is incomplete).
    The rules above settle the common cases; this keeps the two parsers from ever disagreeing
    on when to answer (found by fuzz/run.py: each rule missed some refusal aiohttp makes at
    once, such as a Content-Length line that is not digits)."""
    parser = HttpRequestParser(None, None, 2**16, max_line_size=8190, max_field_size=8190)
    try:
        parser.feed_data(bytes(buf))
    except Exception:  # any refusal of aiohttp's is a 400 there, now
        return True
    return False


def _hand_off_early(buf: bytes | bytearray) -> bool:
    """A head still arriving that this parser will not take: aiohttp must see it now, since it
    may refuse it at once (waiting here would hang the client until its head times out).

    Kept here while it may still become ``POST /rpc/...``, an HTTP/2 preface or an HTTP/0.9
    request line (the guard answers those when their line is whole; aiohttp would wait).
    """
    crlf = buf.count(b"\r\n")
    cr = buf.count(b"\r") - (buf[-1:] == b"\r")  # a CR at the end may start a CRLF
    if buf.count(b"\n") != crlf or cr != crlf:
        return True  # a bare LF or CR
    if not crlf:
        return _line_goes_early(bytes(buf))
    last = buf.rfind(b"\r\n")
    lines = bytes(buf[:last]).split(b"\r\n")
    first = lines[0]
    parts = first.split(b" ")
    # Only a request line this parser takes keeps the head here (anything else, aiohttp may
    # refuse at once: a bad version, a control, tab or non-ASCII byte).
    if not first.startswith(_FAST) or len(parts) != 3 or parts[2] not in _VERSIONS:
        return True
    if not first.isascii() or _CTL.search(first) is not None:
        return True
    for line in lines[1:]:
        c = line.find(b":")
        # No colon, a folded or indented line, a name that is not a token, a control byte.
        if c <= 0 or line[:c].translate(None, _TOKEN) or _CTL_NOT_TAB.search(line) is not None:
            return True
    # The line still arriving: its name so far must be a token, its value free of controls,
    # a Content-Length value digits only (aiohttp refuses each of these at the byte).
    tail = bytes(buf[last + 2 :]).rstrip(b"\r")
    c = tail.find(b":")
    name = tail if c < 0 else tail[:c]
    if name.translate(None, _TOKEN) or _CTL_NOT_TAB.search(tail) is not None:
        return True
    value = tail[c + 1 :].strip(b" \t") if c >= 0 else b""
    return name.lower() == b"content-length" and bool(value) and not value.isdigit()


def _line_goes_early(start: bytes) -> bool:
    """The first bytes of a request line still arriving: hand over now?"""
    if start.endswith(b"\r"):
        start = start[:-1]  # the start of the line's CRLF
    if not start.isascii() or _CTL.search(start) is not None:
        return True  # aiohttp refuses a control or non-ASCII byte in the request line at once
    if start.startswith(_FAST):
        parts = start.split(b" ")
        if len(parts) < 3:
            return False
        version = parts[2]
        # Only "HTTP/1.1" or "HTTP/1.0" may follow the target (else aiohttp refuses at once).
        return len(parts) > 3 or not any(v.startswith(version) for v in _VERSIONS)
    if _FAST.startswith(start) or _H2.startswith(start):
        return False  # may still become one of them
    start = start[:64]
    sp = start.find(b" ")
    if sp < 0:  # the method is still arriving
        return bool(start.translate(None, _TOKEN)) or not any(
            m.startswith(start) for m in _WAIT_METHODS
        )
    if start[:sp] not in _WAIT_METHODS:
        return True
    # "GET /x" may end without a version (HTTP/0.9, refused by the guard): wait for the line,
    # unless its target could not be a path at all (aiohttp refuses that at once).
    target = start[sp + 1 :]
    return b" " in target or (bool(target) and target[:1] != b"/")


_FAST = b"POST /rpc/"
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_H2 = b"PRI * HTTP/2.0"
_WAIT_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")


_queries: dict[bytes, tuple[str | None, bool]] = {}


def parse_query(query: bytes) -> tuple[str | None, bool]:
    """``(include_meta, failover)`` from a query string; the first value of a key wins."""
    hit = _queries.get(query)
    if hit is None:
        meta: str | None = None
        failover: str | None = None
        for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if k == "include_meta" and meta is None:
                meta = v
            elif k == "failover" and failover is None:
                failover = v
        hit = (meta, failover == "true")
        if len(_queries) < 1024:  # clients choose queries: the cache must stay bounded
            _queries[query] = hit
    return hit
