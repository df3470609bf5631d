"""The front's request-head parser against aiohttp's own parser, the reference it hands over to.

Whatever ``parse_head`` takes for the hot path, aiohttp must take too and frame exactly the same
way (method, target, version, keep-alive, body length; never chunked, never an upgrade): a
difference in framing is a request-smuggling hole. Being stricter is allowed (the request then
goes to aiohttp).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from unittest import mock

import pytest
from aiohttp.http_parser import HttpRequestParser

from lasso_rpc.server.http1_head import HandOff, RequestHead, parse_head, parse_query

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


def head(*lines: str, line_end: str = "\r\n") -> bytes:
    return (line_end.join(lines) + line_end + line_end).encode("latin-1")


@pytest.mark.parametrize(
    ("raw", "fast"),
    [
        (head("POST /rpc/eth HTTP/1.1", "Host: a", f"Content-Length: {len(BODY)}"), True),
        (head("POST /rpc/eth HTTP/1.0", f"content-length:{len(BODY)}"), True),
        (head("POST /rpc/eth HTTP/1.1", "Host: a"), False),  # no length
        (head("POST /rpc/eth HTTP/1.1", f"Content-Length: {len(BODY)}"), False),  # no Host
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", "Content-Length: 5"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length : 5"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: +5"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", " folded"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", line_end="\n"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", "Upgrade: websocket"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", "Connection: Upgrade"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", "Expect: nothing"), False),
        (head("POST /rpc/e%74h HTTP/1.1", "Content-Length: 5"), False),
        (head("POST /rpc/../metrics HTTP/1.1", "Content-Length: 5"), False),
        (head("POST /rpc//eth HTTP/1.1", "Content-Length: 5"), False),
        (head("GET /rpc/eth HTTP/1.1", "Content-Length: 5"), False),
        (head("POST /metrics HTTP/1.1", "Content-Length: 5"), False),
        (head("POST /rpc/eth HTTP/2.0", "Content-Length: 5"), False),
        (head("POST /rpc/eth HTTP/1.1", "Content-Length: 5", "X-Request-Id: a\x01b"), False),
        # Found by atheris: aiohttp refuses these in the request line; the hot path took them.
        (
            head("POST /rpc/eth?in\u00celude_meta=body HTTP/1.1", "Host: a", "Content-Length: 63"),
            False,
        ),
        (head("POST /rpc/e\tth HTTP/1.1", "Host: a", "Content-Length: 63"), False),
    ],
)
def test_what_the_fast_path_takes(raw: bytes, fast: bool) -> None:
    parsed = parse_head(raw + BODY)
    assert isinstance(parsed, RequestHead) is fast
    if not fast:
        assert isinstance(parsed, HandOff)


def test_close_anywhere_wins_over_keep_alive() -> None:
    # Found by atheris: "Connection: close" then "Connection: keep-alive" kept the connection.
    for lines in (
        ("Connection: close", "Connection: keep-alive"),
        ("Connection: close, keep-alive",),
    ):
        h = parse_head(
            head("POST /rpc/eth HTTP/1.1", "Host: a", *lines, f"Content-Length: {len(BODY)}") + BODY
        )
        assert isinstance(h, RequestHead) and not h.keep_alive


def test_a_head_in_pieces_waits_and_a_huge_one_is_handed_over() -> None:
    assert parse_head(b"POST /rpc/eth HTTP/1.1\r\nContent-Len") is None
    assert isinstance(parse_head(b"POST /rpc/eth HTTP/1.1\r\nX: " + b"a" * 70_000), HandOff)


def test_values_the_router_reads() -> None:
    raw = head(
        "POST /rpc/profile/p/fastest/eth?include_meta=body&failover=true HTTP/1.1",
        "host: a",
        "connection: close",
        "X-Lasso-Include-Meta:  headers ",
        "x-request-id: trace-1",
        "Expect: 100-continue",
        f"Content-Length: {len(BODY)}",
    )
    h = parse_head(raw + BODY)
    assert isinstance(h, RequestHead)
    assert h.tail == "profile/p/fastest/eth" and h.query == b"include_meta=body&failover=true"
    assert (h.meta, h.request_id, h.keep_alive, h.expect_continue) == (
        "headers",
        "trace-1",
        False,
        True,
    )
    assert (raw + BODY)[h.start : h.end] == BODY
    assert parse_query(h.query) == ("body", True)
    assert parse_query(b"failover=false&include_meta=&include_meta=body") == ("", False)


# -- differential: generated heads, ours against aiohttp's ---------------------------------

_NAMES = ["Content-Length", "content-length", "CONTENT-LENGTH", "Content-Length ", " Content-Length",
          "Content-Length\t", "Content_Length", "Content-Lengths"]  # fmt: skip
_VALUES = ["%d", " %d", "%d ", "+%d", "-%d", "0%d", "%d,%d", "0x%d", "", "%d%d%d%d%d%d%d%d",
           "%d\t"]  # fmt: skip
_EXTRA = [
    "Host: a",
    "Transfer-Encoding: chunked",
    "transfer-encoding: identity",
    "Transfer-Encoding : chunked",
    "Transfer-Encoding: gzip, chunked",
    "Connection: close",
    "Connection: keep-alive",
    "Connection: Keep-Alive, Upgrade",
    "Upgrade: h2c",
    "Expect: 100-continue",
    "Expect: 100-Continue",
    "X-Foo: bar",
    "NoColon",
    ":empty-name",
    "X Y: z",
    "X(Y): z",
    "X\x01Y: z",
    "Ümlaut: z",
    " folded: line",
    "\tfolded",
    "X-Request-Id: abc",
    "X-Lasso-Include-Meta: body",
    "Accept-Encoding: gzip, deflate",
    "X-Nul: a\x00b",
    "X-Del: a\x7fb",
    "X-Vt: a\x0bb",
    "X-Tab: a\tb",
    "X-Obs: caf\u00e9",
]
_LINES = [
    "POST /rpc/eth HTTP/1.1",
    "POST /rpc/eth HTTP/1.0",
    "POST /rpc/eth?include_meta=headers HTTP/1.1",
    "POST  /rpc/eth HTTP/1.1",
    "post /rpc/eth HTTP/1.1",
    "POST /rpc/eth HTTP/1.2",
    "POST /rpc/eth HTTP/1.1 ",
    "POST /rpc/e%74h HTTP/1.1",
    "POST /rpc/eth#frag HTTP/1.1",
    "POST /rpc/éth HTTP/1.1",
    "POST http://a/rpc/eth HTTP/1.1",
    "POST /rpc/e\x01th HTTP/1.1",
    "POST /rpc/eth HTTP/2.0",
]


def _generated(n: int, seed: int) -> Iterator[bytes]:
    """Heads near the hot path: mostly well-formed, each with a few of the odd spellings."""
    rng = random.Random(seed)

    def pick(options: list[str], usual: int = 0) -> str:
        return options[usual] if rng.random() < 0.6 else rng.choice(options)

    for _ in range(n):
        lines = [pick(_LINES)]
        extras = ["Host: a"] if rng.random() < 0.8 else []
        extras += rng.sample(_EXTRA[11:], rng.randint(0, 3))
        if rng.random() < 0.4:
            extras += rng.sample(_EXTRA, rng.randint(1, 2))
        for _ in range(rng.choice([0, 1, 1, 1, 1, 1, 2])):
            value = pick(_VALUES).replace("%d", str(len(BODY)))
            extras.append(f"{pick(_NAMES)}:{value}")
        rng.shuffle(extras)
        lines += extras
        line_end = rng.choice(["\r\n"] * 8 + ["\n", "\r"])
        yield (line_end.join(lines) + line_end + line_end).encode("utf-8") + BODY


def _aiohttp(raw: bytes) -> tuple[object, int] | None:
    """aiohttp's reading of ``raw``: (message, body length), or None when it refuses it."""
    loop = asyncio.new_event_loop()
    try:
        parser = HttpRequestParser(
            mock.Mock(), loop, 2**16, max_line_size=8190, max_field_size=8190
        )
        try:
            messages, _upgraded, _ = parser.feed_data(raw)
        except Exception:  # any refusal is a 400 there
            return None
        if not messages:
            return None
        message, payload = messages[0]
        size = sum(len(b) for b in payload._buffer) if hasattr(payload, "_buffer") else 0
        return message, size
    finally:
        loop.close()


def test_whatever_the_fast_path_takes_aiohttp_frames_the_same_way() -> None:
    taken = agreed = 0
    for raw in _generated(6000, seed=20261124):
        ours = parse_head(raw)
        if not isinstance(ours, RequestHead):
            continue
        taken += 1
        theirs = _aiohttp(raw)
        assert theirs is not None, raw  # taken here but refused by the reference
        message, size = theirs
        target = "/rpc/" + ours.tail + ("?" + ours.query.decode() if ours.query else "")
        assert message.method == "POST", raw  # type: ignore[attr-defined]
        assert message.path in (target, target + "?"), raw  # an empty query: same route  # type: ignore[attr-defined]
        assert message.version == ((1, 0) if ours.http10 else (1, 1)), raw  # type: ignore[attr-defined]
        assert not message.chunked and not message.upgrade, raw  # type: ignore[attr-defined]
        assert message.should_close is (not ours.keep_alive), raw  # type: ignore[attr-defined]
        # The same body bytes (all that has arrived of a longer declared body, if so).
        assert size == min(ours.end, len(raw)) - ours.start, raw
        agreed += 1
    assert taken == agreed > 300  # the generator does reach the fast path
