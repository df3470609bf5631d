"""POST /rpc/... : route parsing, batches, local answers, include_meta. The hot path."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from lasso_rpc.access.gate import AccessGate
from lasso_rpc.access.keys import ANONYMOUS, Client, split_path_key
from lasso_rpc.config.models import STRATEGIES
from lasso_rpc.errors import (
    BodyTooLarge,
    InvalidParams,
    InvalidRequest,
    MethodNotAllowed,
    RateLimited,
    RequestRejected,
)
from lasso_rpc.jsonrpc.codec import (
    Call,
    decode_body,
    encode_error,
    encode_raw_error,
    encode_result,
    encode_with_meta,
)
from lasso_rpc.jsonrpc.methods import LOCAL_METHODS, SUBSCRIPTION_METHODS, refusal_reason
from lasso_rpc.observability.events import LimitRejected
from lasso_rpc.resilience.call import CallContext, CallOutcome
from lasso_rpc.router import Router
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.server.errors import error_code
from lasso_rpc.upstream.chain import ChainRuntime

__all__ = [
    "Route",
    "RpcHandler",
    "RpcReply",
    "body_too_large",
    "call_methods",
    "parse_route",
    "reject",
    "request_key",
]

_JSON = "application/json"
_req_ids = itertools.count(1)
_PID = f"{os.getpid():x}"


@dataclass(frozen=True, slots=True)
class Route:
    profile: str | None
    chain: str
    strategy: str | None  # canonical strategy name; None = the chain's default
    pin: str | None


_routes: dict[str, Route] = {}


def parse_route(tail: str) -> Route:
    """``[profile/P/][STRATEGY/|provider/ID/]CHAIN`` → Route (raises InvalidParams)."""
    route = _routes.get(tail)
    if route is None:
        route = _parse_route(tail)
        if len(_routes) < 1024:  # clients choose paths: the cache must stay bounded
            _routes[tail] = route
    return route


def _parse_route(tail: str) -> Route:
    segs = [s for s in tail.split("/") if s]
    profile = None
    if len(segs) >= 2 and segs[0] == "profile":
        profile, segs = segs[1], segs[2:]
    if len(segs) == 1:
        return Route(profile, segs[0], None, None)
    if len(segs) == 2 and segs[0] in STRATEGIES:
        return Route(profile, segs[1], STRATEGIES[segs[0]], None)
    if len(segs) == 3 and segs[0] == "provider":
        return Route(profile, segs[2], None, segs[1])
    raise InvalidParams(f"unknown route /{tail}")


@dataclass(slots=True)
class _Answer:
    body: bytes | None  # None for a notification
    outcome: CallOutcome | None = None
    http_status: int = 200


class RpcReply(msgspec.Struct, frozen=True):
    """What an HTTP front writes back: status, JSON body (None: 204 No Content), extra headers."""

    status: int
    body: bytes | None
    headers: tuple[tuple[str, str], ...] = ()


class RpcHandler:
    """``POST /rpc/...`` independent of the HTTP server: ``target`` then ``respond``.

    Two fronts call it: the lean HTTP/1.1 front (``server/http1.py``) for the hot path, and
    aiohttp (``handle``) for connections handed over to it (chunked bodies, odd requests).
    """

    def __init__(
        self, router: Router, *, ws_base: str | None = None, gate: AccessGate | None = None
    ) -> None:
        self.router = router
        self.ws_base = ws_base
        #: API keys and client limits (``access:``, or the older ``server.rate_limit``).
        self.gate = gate
        limits = router.config.server.limits
        self.max_json_depth = limits.max_json_depth
        self.body_timeout_s = limits.body_timeout_s

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp front."""
        query = request.query
        try:
            tail, client = await self.identify(request.match_info["tail"], request.headers)
            route, chain = self.target(tail, client)
            limit = chain.routing.max_body_bytes
            if request.content_length is not None and request.content_length > limit:
                raise body_too_large(limit)
            async with asyncio.timeout(self.body_timeout_s):
                body = await _read_body(request, limit)
        except RequestRejected as exc:
            reply = reject(exc)
            if isinstance(exc, BodyTooLarge):
                self.limit_hit("body_bytes", request.remote or "?")
                return await _closing(request, reply)
        except TimeoutError:
            self.limit_hit("body_timeout", request.remote or "?")
            body_late = encode_error(None, -32600, "request body not received in time")
            return await _closing(request, RpcReply(408, body_late))
        else:
            reply = await self.respond(
                route,
                chain,
                body,
                meta_mode=query.get("include_meta") or request.headers.get("X-Lasso-Include-Meta"),
                request_id=request.headers.get("X-Request-Id"),
                failover=query.get("failover") == "true",
                peer=request.remote or "?",
                client=client,
                cache_bypass=request.headers.get("X-Lasso-Cache-Bypass") == "1",
            )
        if reply.body is None:
            return web.Response(status=204, headers=reply.headers or None)
        resp = web.Response(body=reply.body, status=reply.status, content_type=_JSON)
        for name, value in reply.headers:
            resp.headers[name] = value
        return resp

    async def serve(
        self,
        tail: str,
        body: bytes,
        *,
        key: str | None,
        meta_mode: str | None,
        request_id: str | None,
        failover: bool,
        peer: str,
        cache_bypass: bool = False,
    ) -> RpcReply:
        """``POST /rpc/<tail>``: who is calling (API key), the route, then ``respond``."""
        gate = self.gate
        client: Client | None = None
        try:
            if gate is None:
                route, chain = self.target(tail)
            else:
                tail, path_key = split_path_key(tail)
                client = await gate.identify(key or path_key)
                route, chain = self.target(tail, client)
        except RequestRejected as exc:
            return reject(exc)
        return await self.respond(
            route,
            chain,
            body,
            meta_mode=meta_mode,
            request_id=request_id,
            failover=failover,
            peer=peer,
            client=client,
            cache_bypass=cache_bypass,
        )

    async def identify(self, tail: str, headers: Mapping[str, str]) -> tuple[str, Client | None]:
        """The route tail without a path key, and the client (None: no access control)."""
        if self.gate is None:
            return tail, None
        tail, path_key = split_path_key(tail)
        return tail, await self.gate.identify(request_key(headers) or path_key)

    def limit_hit(self, limit: str, peer: str) -> None:
        """Publishes a ``limit.rejected`` event (lasso_limit_rejections_total{limit})."""
        self.router.bus.publish(LimitRejected(ts=time.time(), limit=limit, peer=peer))

    def target(self, tail: str, client: Client | None = None) -> tuple[Route, ChainRuntime]:
        """The route and chain of ``/rpc/<tail>`` (in ``client``'s profile); raises
        InvalidParams, or Forbidden for a profile the client's key may not use."""
        route = parse_route(tail)
        profile = route.profile
        if client is not None and self.gate is not None:
            profile = self.gate.profile_for(client, profile)
        chain = self.router.resolve(route.chain, profile)
        if route.pin is not None and route.pin not in chain.providers:
            raise InvalidParams(f"unknown provider {route.pin!r} on chain {chain.name!r}")
        return route, chain

    async def respond(
        self,
        route: Route,
        chain: ChainRuntime,
        body: bytes,
        *,
        meta_mode: str | None,
        request_id: str | None,
        failover: bool,
        peer: str,
        client: Client | None = None,
        cache_bypass: bool = False,
    ) -> RpcReply:
        """Answer one HTTP request body (a call or a batch). Never raises RequestRejected."""
        request_id = request_id[:64] if request_id else f"{_PID}-{next(_req_ids)}"
        try:
            limit = chain.routing.max_body_bytes
            if len(body) > limit:
                raise body_too_large(limit)
            parsed = decode_body(
                body, max_depth=self.max_json_depth, max_batch=chain.routing.max_batch_size
            )
            if self.gate is not None:
                await self.gate.check(client or ANONYMOUS, peer, call_methods(parsed))
        except RequestRejected as exc:
            label_of = _LIMIT_OF.get(type(exc))
            if label_of is not None and isinstance(exc.data, dict):
                self.limit_hit(label_of(exc.data), peer)
            return reject(exc)

        ctx = CallContext(
            request_id,
            chain,
            RouteRequest(
                route.strategy or chain.routing.default_strategy, route.pin, failover, "http"
            ),
            cache_bypass,
        )
        if isinstance(parsed, Call):
            ans = await self.call(ctx, parsed, meta_mode == "body")
            if ans.body is None:
                return _NO_CONTENT
            if meta_mode == "headers":
                return RpcReply(ans.http_status, ans.body, _meta_headers(ctx, [ans.outcome]))
            return RpcReply(ans.http_status, ans.body)

        answers = await asyncio.gather(
            *(self._item(ctx, i, n, meta_mode) for n, i in enumerate(parsed))
        )
        parts = [a.body for a in answers if a.body is not None]
        if not parts:
            return _NO_CONTENT
        out = b"[" + b",".join(parts) + b"]"
        if meta_mode == "headers":
            return RpcReply(200, out, _meta_headers(ctx, [a.outcome for a in answers]))
        return RpcReply(200, out)

    async def _item(
        self, ctx: CallContext, item: Call | InvalidRequest, n: int, meta_mode: str | None
    ) -> _Answer:
        if isinstance(item, InvalidRequest):
            return _Answer(encode_error(item.id_raw, -32600, item.message))
        sub = CallContext(f"{ctx.request_id}.{n}", ctx.chain, ctx.route, ctx.bypass_cache)
        return await self.call(sub, item, meta_mode == "body")

    async def call(self, ctx: CallContext, call: Call, body_meta: bool) -> _Answer:
        """One call, answered locally or through the pipeline. Never raises RequestRejected."""
        pipeline = self.router.pipeline
        method = call.method
        try:
            if method in LOCAL_METHODS:
                pipeline.publish_local(ctx, call)
                return _Answer(_local(call, ctx.chain))
            if method in SUBSCRIPTION_METHODS:
                raise MethodNotAllowed(
                    f"{method} is only available over WebSocket",
                    data={"websocket_url": self._ws_url(ctx)},
                )
            why = refusal_reason(method)
            if why is not None:
                raise MethodNotAllowed(why)
        except RequestRejected as exc:
            pipeline.publish_local(ctx, call, error=exc)
            return _error_answer(call, exc)
        try:
            outcome = await self.router.shaper.execute(ctx, call)
        except RequestRejected as exc:
            return _error_answer(call, exc)
        if call.id_raw is None:
            return _Answer(None, outcome)
        if outcome.ok:
            msg = encode_result(call.id_raw, outcome.payload)
        else:
            msg = encode_raw_error(call.id_raw, outcome.payload)
        if body_meta:
            msg = encode_with_meta(msg, _meta_dict(ctx, outcome))
        return _Answer(msg, outcome)

    def _ws_url(self, ctx: CallContext) -> str:
        base = self.ws_base or ""
        prefix = (
            ""
            if ctx.chain.profile == self.router.default_profile
            else f"profile/{ctx.chain.profile}/"
        )
        return f"{base}/ws/rpc/{prefix}{ctx.chain.name}"


async def _closing(request: web.Request, reply: RpcReply) -> web.StreamResponse:
    """Writes ``reply`` and closes the connection at once: no lingering read of a body that is
    too large or stopped coming (aiohttp would otherwise read on for up to 10 s)."""
    resp = web.Response(body=reply.body, status=reply.status, content_type=_JSON)
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    request.protocol.force_close()
    return resp


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None:
        return await request.read()  # length already checked against the limit
    # Chunked: read until the end, refusing as soon as the limit is passed.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def body_too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body larger than {limit} bytes", data={"limit": limit})


def reject(exc: RequestRejected) -> RpcReply:
    """The reply to a request refused as a whole (bad route, body, key, rate limit)."""
    code, status = error_code(exc)
    body = encode_error(exc.id_raw, code, exc.message, exc.data)
    if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
        return RpcReply(status, body, (("Retry-After", str(max(1, math.ceil(exc.retry_after_s)))),))
    return RpcReply(status, body)


def call_methods(parsed: Call | list[Call | InvalidRequest]) -> list[str]:
    """The methods a request calls (what limits count)."""
    if isinstance(parsed, Call):
        return [parsed.method]
    return [c.method for c in parsed if isinstance(c, Call)]


def request_key(headers: Mapping[str, str]) -> str | None:
    """The API key of a request: ``X-Lasso-Key``, else ``Authorization: Bearer``."""
    key = headers.get("X-Lasso-Key")
    if key is not None:
        return key
    auth = headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


_NO_CONTENT = RpcReply(204, None)
#: Refusals that are limits of server.limits or routing, by the key in their ``data``.
_LIMIT_OF: dict[type[RequestRejected], Callable[[Any], str]] = {
    BodyTooLarge: lambda data: "body_bytes",
    InvalidRequest: lambda data: "json_depth" if "max_depth" in data else "batch_size",
}


def _error_answer(call: Call, exc: RequestRejected) -> _Answer:
    code, status = error_code(exc)
    if call.id_raw is None:
        return _Answer(None, None, status)
    return _Answer(encode_error(call.id_raw, code, exc.message, exc.data), None, status)


def _local(call: Call, chain: ChainRuntime) -> bytes | None:
    if call.id_raw is None:
        return None
    return encode_result(call.id_raw, b'"%s"' % hex(chain.config.chain_id).encode())


def _meta_dict(ctx: CallContext, o: CallOutcome) -> dict[str, Any]:
    return {
        "request_id": ctx.request_id,
        "provider": o.provider,
        "strategy": o.decision.strategy,
        "attempts": len(o.attempts),
        "latency_ms": round(o.latency_ms, 3),
        "hedged": o.hedged,
        "hedge_denied": o.hedge_denied,
        "failover": o.failover,
        "cache": o.cache,
        "coalesced": o.coalesced,
        "explanation": o.decision.explain(),
        "attempt_list": [
            {
                "provider": a.provider,
                "outcome": a.outcome,
                "latency_ms": a.latency_ms,
                "hedged": a.hedged,
            }
            for a in o.attempts
        ],
    }


def _meta_headers(
    ctx: CallContext, outcomes: list[CallOutcome | None]
) -> tuple[tuple[str, str], ...]:
    done = [o for o in outcomes if o is not None]
    cache = [o.cache for o in done if o.cache is not None]
    extra = (("X-Lasso-Cache", ",".join(cache)),) if cache else ()
    return (
        *extra,
        ("X-Lasso-Request-Id", ctx.request_id),
        ("X-Lasso-Strategy", ctx.route.strategy if ctx.route.pin is None else "provider"),
        ("X-Lasso-Provider", ",".join(o.provider for o in done)),
        ("X-Lasso-Attempts", ",".join(str(len(o.attempts)) for o in done)),
        ("X-Lasso-Failover", ",".join("1" if o.failover else "0" for o in done)),
        ("X-Lasso-Hedged", ",".join("1" if o.hedged else "0" for o in done)),
        ("X-Lasso-Latency-Ms", ",".join(f"{o.latency_ms:.3f}" for o in done)),
    )
