"""What the front refuses outright, before any parser acts on a request: pure checks on bytes.

The hot-path parser (``http1_head.py``) takes only plain ``POST /rpc/...`` requests and hands
the rest to aiohttp, which refuses most malformed heads itself (400, then it closes). These
checks close what neither would: a request aiohttp would wait on forever (HTTP/0.9), or take
although a proxy in front of the router may read it differently (dot-segments, encoded
slashes, a chunked HTTP/1.0 body), and the head limits. Each refusal names the RFC 9112 (or
RFC 3986) rule it enforces; the connection is always closed after it, never re-synchronised.

``head_refusal`` is asked by the front about the bytes of a head (whole or still arriving);
``request_refusal`` by the aiohttp middleware about a request aiohttp parsed (a connection
handed over keeps its later requests there).
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["HeadLimits", "Refusal", "head_refusal", "request_refusal", "target_refusal"]


class Refusal(msgspec.Struct, frozen=True):
    """An answer instead of a request: HTTP status, a short reason, the metric label."""

    status: int
    reason: str
    limit: str  # lasso_limit_rejections_total{limit}


class HeadLimits(msgspec.Struct, frozen=True):
    max_bytes: int
    max_fields: int


_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")
# Escapes that change what a path means once decoded: '/', '\', '.', controls and '%' itself.
_BAD_ESCAPE = re.compile(rb"%(?:2[fFeE5]|5[cC]|[01][0-9a-fA-F]|7[fF])")
_TE = re.compile(rb"\r?\n[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]\s*:")
_H2_PREFACE = b"PRI * HTTP/2.0"


def _malformed(reason: str) -> Refusal:
    return Refusal(400, reason, "malformed_request")


def head_refusal(buf: bytes | bytearray, limits: HeadLimits) -> Refusal | None:
    """Why the head at the start of ``buf`` must be refused now, or None (parse on)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > limits.max_bytes:
            return Refusal(431, "request head too large", "header_bytes")
        nl = buf.find(b"\n")
        if nl < 0:
            return None  # the request line is not complete yet
        return _line_refusal(bytes(buf[:nl]).rstrip(b"\r"))
    if end + 4 > limits.max_bytes:
        return Refusal(431, "request head too large", "header_bytes")
    head = bytes(buf[:end])
    line_end = head.find(b"\n")
    line = (head if line_end < 0 else head[:line_end]).rstrip(b"\r")
    refusal = _line_refusal(line)
    if refusal is not None:
        return refusal
    if head.count(b"\n") > limits.max_fields:
        return Refusal(431, "too many header fields", "header_count")
    if line.endswith(b"HTTP/1.0") and _TE.search(head) is not None:
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        return _malformed("Transfer-Encoding in an HTTP/1.0 request")
    return None


def _line_refusal(line: bytes) -> Refusal | None:
    if line.startswith(_H2_PREFACE):
        # RFC 9113 §3.4 prior knowledge: this server speaks HTTP/1.1 only.
        return Refusal(505, "HTTP/2 is not served on this port", "http_version")
    parts = line.split(b" ")
    if len(parts) == 2:
        return _malformed("HTTP/0.9 requests are not served")  # RFC 9112 §2.3: no version
    if len(parts) != 3:
        return None  # aiohttp refuses other malformed request lines itself (400)
    version = _VERSION.match(parts[2])
    if version is not None and version.group(1, 2) not in ((b"1", b"1"), (b"1", b"0")):
        return Refusal(505, "HTTP version not supported", "http_version")  # RFC 9112 §2.6
    return target_refusal(parts[1])


def target_refusal(target: bytes) -> Refusal | None:
    """RFC 9112 §3.2 forms of the request-target, with paths that mean one thing only."""
    if target == b"*":
        return None  # asterisk-form: aiohttp answers it (OPTIONS only)
    lower = target[:8].lower()
    if lower.startswith(b"http://") or lower.startswith(b"https://"):
        # §3.2.2 absolute-form must be accepted: routed by its path, as origin-form.
        rest = target[target.find(b"//") + 2 :]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    elif not target.startswith(b"/"):
        return _malformed("request target is not an absolute path")  # §3.2: authority-form etc.
    path = target.split(b"?", 1)[0].split(b"#", 1)[0]
    if b"\\" in path:
        return _malformed("backslash in the path")
    if _BAD_ESCAPE.search(path) is not None:
        return _malformed("encoded slash, dot, percent or control character in the path")
    for segment in path.split(b"/"):
        if segment in (b".", b".."):
            # RFC 3986 §5.2.4 would remove them; a proxy may not: refused, never normalised.
            return _malformed("dot-segment in the path")
    return None


def request_refusal(
    version: tuple[int, int], raw_target: str, transfer_encoding: bool
) -> Refusal | None:
    """The same rules for a request aiohttp has parsed (on a connection handed to it)."""
    if version not in ((1, 1), (1, 0)):
        return Refusal(505, "HTTP version not supported", "http_version")
    if version == (1, 0) and transfer_encoding:
        return _malformed("Transfer-Encoding in an HTTP/1.0 request")
    return target_refusal(raw_target.encode("utf-8", "surrogateescape"))
