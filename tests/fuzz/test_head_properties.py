"""Property suite, head parser: never raises; whatever it takes for the hot path, aiohttp's parser
(the reference it hands over to) frames the same way; the guard never raises either."""

from __future__ import annotations

from fuzz.strategies import heads
from hypothesis import given
from hypothesis import strategies as st

from lasso_rpc.server.http1_guard import HeadLimits, head_refusal
from lasso_rpc.server.http1_head import RequestHead, parse_head
from tests.fuzz.conftest import ci
from tests.unit.test_http1_parser import _aiohttp

LIMITS = HeadLimits(32 * 1024, 100)


@ci(1200)
@given(heads())
def test_what_the_hot_path_takes_aiohttp_frames_the_same_way(request: tuple[bytes, bytes]) -> None:
    head, body = request
    raw = head + body
    ours = parse_head(raw)
    head_refusal(raw, LIMITS)
    if not isinstance(ours, RequestHead):
        return
    theirs = _aiohttp(raw[: ours.end])  # the first request only
    assert theirs is not None, raw  # taken here, refused by the reference: a smuggling hole
    message, size = theirs
    target = "/rpc/" + ours.tail + ("?" + ours.query.decode() if ours.query else "")
    assert message.method == "POST" and message.path in (target, target + "?"), raw  # type: ignore[attr-defined]
    assert message.version == ((1, 0) if ours.http10 else (1, 1)), raw  # type: ignore[attr-defined]
    assert not message.chunked and not message.upgrade, raw  # type: ignore[attr-defined]
    assert message.should_close is (not ours.keep_alive), raw  # type: ignore[attr-defined]
    assert size == min(ours.end, len(raw)) - ours.start, raw


@ci(600)
@given(st.binary(max_size=400))
def test_noise_never_breaks_the_parser_or_the_guard(raw: bytes) -> None:
    parse_head(raw)
    head_refusal(raw, LIMITS)
    for cut in (1, len(raw) // 2):
        parse_head(raw[:cut])
