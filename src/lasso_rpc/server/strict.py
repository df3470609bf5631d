"""The guard's rules for requests aiohttp parses: a middleware on the aiohttp app.

A connection the lean front hands to aiohttp stays there for its later requests, and with
``server.front: aiohttp`` every request is aiohttp's: this middleware refuses what the front's
guard (``http1_guard.py``) refuses, before any handler runs, and closes the connection after
the answer. aiohttp's own parser refuses malformed framing (400, then it closes).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from lasso_rpc.jsonrpc.codec import encode_error
from lasso_rpc.observability.events import Event, LimitRejected
from lasso_rpc.server.http1_guard import request_refusal

__all__ = ["strict_middleware"]

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
