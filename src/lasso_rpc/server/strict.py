"""The guard's rules for requests aiohttp parses: a middleware on the aiohttp app.

A connection the lean front hands to aiohttp stays there for its later requests, and with
``server.front: aiohttp`` every request is aiohttp's: this middleware refuses what the front's
guard (``http1_guard.py``) refuses, before any handler runs, and closes the connection after
the answer (``with_safe_expect`` covers the ``Expect`` check aiohttp makes before any
middleware). aiohttp's own parser refuses malformed framing (400, then it closes); it would log
each refusal with a traceback at ERROR, so a flood of bad requests would flood the logs:
``parse_error_logger`` counts them as ``limit.rejected`` (``malformed_request``) instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from lasso_rpc.jsonrpc.codec import encode_error
from lasso_rpc.observability.events import Event, LimitRejected
from lasso_rpc.server.http1_guard import request_refusal

__all__ = ["parse_error_logger", "safe_expect", "strict_middleware", "with_safe_expect"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def strict_middleware(
    publish: Callable[[Event], None],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def strict(request: web.Request, handler: _Handler) -> web.StreamResponse:
        refusal = request_refusal(
            (request.version.major, request.version.minor),
            request.raw_path,
            hdrs.TRANSFER_ENCODING in request.headers,
        )
        if refusal is None:
            return await handler(request)
        peer = request.remote or "?"
        publish(
            LimitRejected(ts=time.time(), limit=refusal.limit, peer=peer, detail=refusal.reason)
        )
        resp = web.Response(
            status=refusal.status,
            body=encode_error(None, -32600, refusal.reason),
            content_type="application/json",
        )
        resp.force_close()
        return resp

    return strict


class _ParseErrors(logging.Filter):
    def __init__(self, publish: Callable[[Event], None]) -> None:
        super().__init__()
        self._publish = publish

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionError):
            return False  # the client left mid-request: nothing to report
        if not isinstance(exc, HttpProcessingError):
            return True  # a real error: logged (JSON, redacted) by lasso_rpc's handlers
        peer = str(record.args[0]) if isinstance(record.args, tuple) and record.args else "?"
        detail = str(exc.message).split("\n", 1)[0][:120]
        self._publish(
            LimitRejected(ts=time.time(), limit="malformed_request", peer=peer, detail=detail)
        )
        return False


def parse_error_logger(publish: Callable[[Event], None]) -> logging.Logger:
    """The logger for aiohttp's server: its parse errors become events, the rest is logged."""
    logger = logging.Logger("lasso_rpc.aiohttp")
    logger.parent = logging.getLogger("lasso_rpc")
    logger.addFilter(_ParseErrors(publish))
    return logger


async def safe_expect(request: web.Request) -> web.StreamResponse | None:
    """aiohttp's default ``Expect`` check, without its 500 on a non-ASCII value (it puts the
    value into a text it cannot encode): 100 Continue, or 417 and close."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != (1, 1):
        return None
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the body's start
        return None
    resp = web.Response(
        status=417,
        body=encode_error(None, -32600, "unsupported Expect"),
        content_type="application/json",
    )
    resp.force_close()
    return resp


def with_safe_expect(routes: list[web.RouteDef]) -> list[web.RouteDef]:
    return [
        web.RouteDef(r.method, r.path, r.handler, {**r.kwargs, "expect_handler": safe_expect})
        for r in routes
    ]
