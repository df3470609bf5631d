"""GET /ws/rpc/... : the client WebSocket endpoint (SPEC §4).

Routes are those of ``/rpc`` (``parse_route``). Every text or binary message is one JSON-RPC call
or a batch; unary methods take the HTTP path (``RpcHandler.call`` with ``transport="ws"``),
``eth_subscribe`` / ``eth_unsubscribe`` are answered here from the ``SubscriptionManager``.

Limits (``SubscriptionOptions``): subscriptions per socket (``-32005``), message size (``-32004``;
the socket is closed with 1009 only past 4x the limit), calls in flight (more stop the reading),
a bounded send queue (overflow: close 1008 "client too slow"), an idle limit for sockets holding
no subscription (close 1000), ping/pong heartbeat. A closed socket releases its subscriptions.
``WsLimits`` (``server.limits``): messages per second per socket and subscriptions per client
address (``-32005``). Each refusal is a ``limit.rejected`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import secrets
from collections.abc import Callable

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from lasso_rpc.access.keys import ANONYMOUS, Client
from lasso_rpc.errors import BodyTooLarge, InvalidParams, RateLimited, RequestRejected
from lasso_rpc.jsonrpc.codec import Call, decode_body, encode_error, encode_result
from lasso_rpc.resilience.call import CallContext
from lasso_rpc.router import Router
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.server.errors import error_code
from lasso_rpc.server.rpc import Route, RpcHandler, call_methods
from lasso_rpc.server.ws_limits import WsLimits
from lasso_rpc.subscriptions.frames import parse_subscribe
from lasso_rpc.subscriptions.manager import Share, SubscriptionManager
from lasso_rpc.subscriptions.outbox import Outbox
from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["WsEndpoint"]

log = logging.getLogger("lasso_rpc.ws")
_conn_ids = itertools.count(1)
_NOTIFY = b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"%s","result":'
_After = Callable[[], None]


class WsEndpoint:
    def __init__(self, router: Router, rpc: RpcHandler, manager: SubscriptionManager) -> None:
        self.router = router
        self.rpc = rpc
        self.manager = manager
        self.limits = WsLimits(router.config.server.limits, router.clock, router.bus.publish)
        self._clients: set[_Client] = set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            tail, who = await self.rpc.identify(request.match_info["tail"], request.headers)
            route, _ = self.rpc.target(tail, who)
            if who is not None and self.rpc.gate is not None:  # the key's profile
                route = dataclasses.replace(
                    route, profile=self.rpc.gate.profile_for(who, route.profile)
                )
        except RequestRejected as exc:
            code, status = error_code(exc)
            body = encode_error(None, code, exc.message, exc.data)
            return web.Response(body=body, status=max(status, 400), content_type="application/json")
        opts = self.manager.options
        ws = web.WebSocketResponse(
            heartbeat=opts.heartbeat_s,
            max_msg_size=opts.max_message_bytes * 4,
            compress=False,
            timeout=opts.close_timeout_s,
        )
        try:
            acceptable = ws.can_prepare(request).ok
        except ValueError:  # aiohttp's handshake check raises on a non-ASCII key
            acceptable = False
        if not acceptable:
            body = encode_error(None, -32600, "this endpoint speaks JSON-RPC over WebSocket")
            return web.Response(body=body, status=400, content_type="application/json")
        await ws.prepare(request)
        client = _Client(self, ws, request, route, request.query.get("failover") == "true")
        client.who = who
        self._clients.add(client)
        try:
            await client.serve()
        finally:
            self._clients.discard(client)
        return ws

    async def on_shutdown(self, app: web.Application) -> None:
        """aiohttp ``on_shutdown``: close every client socket (1001), then the manager."""
        await asyncio.gather(
            *(c.close(WSCloseCode.GOING_AWAY, "server shutting down") for c in list(self._clients))
        )
        await self.manager.aclose()

    def __repr__(self) -> str:
        return f"WsEndpoint(clients={len(self._clients)}, {self.manager!r})"


class _Client:
    """One client socket: its reader loop, calls in flight, subscriptions and send queue."""

    def __init__(
        self,
        endpoint: WsEndpoint,
        ws: web.WebSocketResponse,
        request: web.Request,
        route: Route,
        failover: bool,
    ) -> None:
        self._ep = endpoint
        self._ws = ws
        self._request = request
        self._route = route
        self._failover = failover
        # ``?include_meta=body`` on the socket's URL: every unary answer carries ``lasso_meta``.
        meta = request.query.get("include_meta") or request.headers.get("X-Lasso-Include-Meta")
        self._body_meta = meta == "body"
        self._opts = opts = endpoint.manager.options
        self._id = f"ws{next(_conn_ids)}"
        self._n = itertools.count(1)
        self._subs: dict[str, Share | None] = {}  # None: answered, not attached yet
        self._peer = request.remote or "?"
        self._bucket = endpoint.limits.bucket()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(opts.max_in_flight)
        self._closing: str | None = None
        self._closer: asyncio.Task[None] | None = None
        self._outbox = Outbox(
            max_messages=opts.send_queue_messages,
            max_bytes=opts.send_queue_bytes,
            on_overflow=self._overflow,
        )
        self._writer: asyncio.Task[None] | None = None
        #: The API key's client, when access control is on.
        self.who: Client | None = None

    # -- the socket --------------------------------------------------------------------------

    async def serve(self) -> None:
        self._writer = asyncio.create_task(self._outbox.drain(self._send))
        self._writer.add_done_callback(self._writer_done)
        try:
            await self._read()
        finally:
            self._release()
            owned = [*self._tasks, self._writer]
            for t in owned:
                t.cancel()
            await asyncio.gather(*owned, return_exceptions=True)
            if self._closer is not None:
                await asyncio.gather(self._closer, return_exceptions=True)

    async def _read(self) -> None:
        ws = self._ws
        while self._closing is None:
            try:
                msg = await ws.receive(timeout=None if self._subs else self._opts.idle_timeout_s)
            except TimeoutError:
                if self._subs or self._tasks:
                    continue
                await self.close(WSCloseCode.OK, "idle timeout")
                return
            if msg.type is WSMsgType.TEXT:
                await self._on_message(msg.data.encode())
            elif msg.type is WSMsgType.BINARY:
                await self._on_message(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, ERROR (e.g. a message past the hard size limit)
                return

    async def _send(self, frame: bytes) -> None:
        await self._ws.send_frame(frame, WSMsgType.TEXT)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._release()  # the socket broke under the writer: the reader will see it too

    def _push(self, frame: bytes) -> None:
        if self._closing is None:
            self._outbox.push(frame)

    def _overflow(self) -> None:
        # Called from inside a feed's fan-out: detach at once, close the socket in a task.
        reason = "send queue overflow: client too slow"
        log.warning("%s: %s", self._id, reason)
        self._closing = reason
        self._release()
        self._closer = asyncio.ensure_future(self._shut(WSCloseCode.POLICY_VIOLATION, reason))

    async def close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = reason
            self._release()
            await self._shut(code, reason)

    async def _shut(self, code: int, reason: str) -> None:
        if self._writer is not None:
            self._writer.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._opts.close_timeout_s + 1.0):
                await self._ws.close(code=code, message=reason.encode(), drain=False)
        transport = self._request.transport
        if transport is None:
            return
        # Let a client that reads again get its backlog and the close frame; one that reads
        # nothing must not keep its buffer alive.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._opts.close_timeout_s
        # No event tells "write buffer flushed" on a closing transport: poll it.
        while transport.get_write_buffer_size() > 0 and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if transport.get_write_buffer_size() > 0:
            transport.abort()

    def _release(self) -> None:
        subs, self._subs = self._subs, {}
        if subs:
            self._ep.limits.subscribed(self._peer, -len(subs))
        for share in subs.values():
            if share is not None:
                self._ep.manager.unsubscribe(share)

    # -- messages ----------------------------------------------------------------------------

    async def _on_message(self, data: bytes) -> None:
        limit = self._opts.max_message_bytes
        if len(data) > limit:
            msg = f"message of {len(data)} bytes exceeds the limit of {limit}"
            exc = BodyTooLarge(msg, data={"limit": limit})
            self._push(encode_error(None, error_code(exc)[0], msg, exc.data))
            self._ep.limits.rejected("ws_message_bytes", self._peer)
            return
        if not self._bucket.take():
            rate = self._ep.limits.limits.ws_max_messages_per_second
            msg = f"message rate limit: at most {rate:g} per second"
            self._push(encode_error(None, -32005, msg, {"limit": rate}))
            self._ep.limits.rejected("ws_messages_per_second", self._peer)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(data))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: message handler failed", self._id, exc_info=task.exception())

    async def _answer(self, data: bytes) -> None:
        route = self._route
        try:
            chain = self._ep.router.resolve(route.chain, route.profile)
            parsed = decode_body(
                data, max_depth=self._ep.rpc.max_json_depth, max_batch=chain.routing.max_batch_size
            )
            gate = self._ep.rpc.gate
            if gate is not None:
                peer = self._request.remote or "?"
                await gate.check(self.who or ANONYMOUS, peer, call_methods(parsed))
        except RequestRejected as exc:
            code, _ = error_code(exc)
            self._push(encode_error(exc.id_raw, code, exc.message, exc.data))
            return
        rid = f"{self._id}.{next(self._n)}"
        if isinstance(parsed, Call):
            body, after = await self._call(chain, rid, parsed)
            if body is not None:
                self._push(body)
            for attach in after:
                attach()
            return
        answers = await asyncio.gather(
            *(
                self._call(chain, f"{rid}.{i}", item)
                if isinstance(item, Call)
                else _done(encode_error(item.id_raw, -32600, item.message))
                for i, item in enumerate(parsed)
            )
        )
        parts = [body for body, _ in answers if body is not None]
        if parts:
            self._push(b"[" + b",".join(parts) + b"]")
        for _, after in answers:
            for attach in after:
                attach()

    async def _call(
        self, chain: ChainRuntime, rid: str, call: Call
    ) -> tuple[bytes | None, list[_After]]:
        route = self._route
        strategy = route.strategy or chain.routing.default_strategy
        ctx = CallContext(
            rid,
            chain,
            RouteRequest(strategy, route.pin, self._failover, "ws"),
            # The handshake's X-Lasso-Cache-Bypass: 1 holds for every call on the socket.
            self._request.headers.get("X-Lasso-Cache-Bypass") == "1",
        )
        if call.method == "eth_subscribe":
            return await self._subscribe(ctx, call)
        if call.method == "eth_unsubscribe":
            return self._unsubscribe(ctx, call), []
        answer = await self._ep.rpc.call(ctx, call, self._body_meta)
        return answer.body, []

    async def _subscribe(self, ctx: CallContext, call: Call) -> tuple[bytes | None, list[_After]]:
        manager = self._ep.manager
        pipeline = self._ep.router.pipeline
        head = None
        try:
            spec = parse_subscribe(call.params)
            self._check_limits()
            manager.check(ctx.chain, ctx.route.pin, ctx.route.failover)
            # The client is owed every block after the router's head at the confirmation, which
            # ``attach`` (run right after the id is queued) reads; with no head known yet, read
            # it now, before confirming (then count again: others may have subscribed meanwhile).
            if manager.head_view(ctx.chain) is None:
                head = await manager.read_head(ctx.chain)
                if self._closing is not None:
                    return None, []  # released meanwhile: nothing to count, no one to answer
                self._check_limits()
        except RequestRejected as exc:
            pipeline.publish_local(ctx, call, error=exc)
            return _error(call, exc), []
        pipeline.publish_local(ctx, call)
        sid = "0x" + secrets.token_hex(16)
        self._subs[sid] = None
        self._ep.limits.subscribed(self._peer)
        prefix = _NOTIFY % sid.encode()
        outbox = self._outbox

        def sink(raw: bytes) -> None:
            outbox.push(prefix + raw + b"}}")

        def attach() -> None:
            if self._closing is None and sid in self._subs:
                self._subs[sid] = manager.subscribe(
                    ctx.chain, spec, sink, pin=ctx.route.pin, failover=ctx.route.failover, head=head
                )

        reply = None if call.id_raw is None else encode_result(call.id_raw, b'"%s"' % sid.encode())
        return reply, [attach]

    def _check_limits(self) -> None:
        limit = self._opts.max_subscriptions
        if len(self._subs) >= limit:
            self._ep.limits.rejected("ws_subscriptions", self._peer)
            raise RateLimited(
                f"subscription limit reached: at most {limit} per connection",
                data={"limit": limit},
            )
        if not self._ep.limits.may_subscribe(self._peer):
            cap = self._ep.limits.limits.ws_max_subscriptions_per_ip
            self._ep.limits.rejected("ws_subscriptions_per_ip", self._peer)
            raise RateLimited(
                f"subscription limit reached: at most {cap} per client address",
                data={"limit": cap},
            )

    def _unsubscribe(self, ctx: CallContext, call: Call) -> bytes | None:
        try:
            args = orjson.loads(call.params)
            if not isinstance(args, list) or not args or not isinstance(args[0], str):
                raise InvalidParams("eth_unsubscribe expects [subscription id]")
        except (orjson.JSONDecodeError, InvalidParams) as exc:
            err = exc if isinstance(exc, InvalidParams) else InvalidParams("params must be JSON")
            self._ep.router.pipeline.publish_local(ctx, call, error=err)
            return _error(call, err)
        share = self._subs.pop(args[0], False)
        found = share is not False
        if found:
            self._ep.limits.subscribed(self._peer, -1)
        if isinstance(share, Share):
            self._ep.manager.unsubscribe(share)
        self._ep.router.pipeline.publish_local(ctx, call)
        if call.id_raw is None:
            return None
        return encode_result(call.id_raw, b"true" if found else b"false")

    def __repr__(self) -> str:
        return (
            f"_Client({self._id} subscriptions={len(self._subs)} in_flight={len(self._tasks)} "
            f"{self._outbox!r} closing={self._closing!r})"
        )


def _error(call: Call, exc: RequestRejected) -> bytes | None:
    if call.id_raw is None:
        return None
    return encode_error(call.id_raw, error_code(exc)[0], exc.message, exc.data)


async def _done(body: bytes) -> tuple[bytes | None, list[_After]]:
    return body, []
