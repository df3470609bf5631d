"""Cheap checks of a request body made before it is decoded: nesting depth and UTF-8.

Why: msgspec recurses once per nesting level and gives up with ``RecursionError`` somewhere
near Python's recursion limit, at a depth that depends on the caller's stack. A configured
limit checked first gives the same answer every time.

How: counting brackets (C-speed ``bytes.count``) settles nearly every body at once. Only a
body with more brackets than the limit gets its *skeleton* built: strings removed, every byte
but brackets deleted, openers and closers mapped to ``(`` and ``)``. Removing every ``()``
once peels one level; a skeleton that stops shrinking before it is empty does not balance, so
the body is not JSON.
"""

from __future__ import annotations

import codecs

__all__ = ["MalformedJson", "is_utf8", "nesting_depth", "within_depth"]

_MAP = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_UTF8_CHUNK = 65536


class MalformedJson(ValueError):
    """The brackets of the body do not balance: it cannot be JSON."""


def _skeleton(body: bytes) -> bytes:
    if b"\\" in body:
        # Escapes pair from the left: drop escaped backslashes, then escaped quotes; every '"'
        # left is a string's first or last byte.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    reduced = body.translate(None, _NOT_STRUCTURE)
    if b'"' in reduced:
        # Strings holding no bracket are now '""'; removing them allocates nothing per string.
        reduced = reduced.replace(b'""', b"")
        if b'"' in reduced:  # some string holds brackets: every other quote opens one
            reduced = b"".join(reduced.split(b'"')[::2])
    return reduced.translate(_MAP)


def within_depth(body: bytes, limit: int) -> bool:
    """True when ``body`` nests at most ``limit`` levels; raises ``MalformedJson``."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return True  # fewer brackets than the limit: no need to look closer
    return nesting_depth(body, limit) <= limit


def nesting_depth(body: bytes, limit: int) -> int:
    """Nesting depth of ``body``, counted up to ``limit + 1``; raises ``MalformedJson``."""
    s = _skeleton(body)
    depth = 0
    while s:
        peeled = s.replace(b"()", b"")
        if len(peeled) == len(s):
            raise MalformedJson("unbalanced brackets")
        depth += 1
        if depth > limit:
            return depth
        s = peeled
    return depth


def is_utf8(body: bytes) -> bool:
    """The body is valid UTF-8 (no lone surrogates, no overlongs); decoded in bounded chunks."""
    if body.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    try:
        for i in range(0, len(body), _UTF8_CHUNK):
            decoder.decode(view[i : i + _UTF8_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
