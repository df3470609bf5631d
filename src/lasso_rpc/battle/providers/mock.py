"""A controllable JSON-RPC provider: a real aiohttp HTTP + WebSocket server on loopback.

Every provider of a fleet serves the same ``SimulatedChain``. POST any path (so URLs such as
``http://127.0.0.1:PORT/v2/KEY`` work) for single and batch calls; open a WebSocket on any path
(``/ws`` by convention) for the same calls plus ``eth_subscribe`` (``newHeads``, ``logs``).

Knobs (``configure(**knobs)``, or the ``set_*`` helpers; their meaning is in ``providers.spec``)
take effect on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Callable, Iterable
from enum import StrEnum
from functools import partial
from typing import Any, Literal

import orjson
from aiohttp import WSCloseCode, web

from lasso_rpc.battle.providers.blocks import ChainEvent
from lasso_rpc.battle.providers.chain import SimulatedChain
from lasso_rpc.battle.providers.mock_rpc import (
    METHODS,
    Fault,
    answer,
    decode,
    error_reply,
    logs_span,
    wrong_ids,
)
from lasso_rpc.battle.providers.mock_ws import WsSession
from lasso_rpc.battle.providers.spec import FailureMode, Knobs, MockFleetSpec

__all__ = ["MockProvider", "State"]

State = Literal["new", "running", "stopped", "closed"]


_MALFORMED_BODY = b'{"jsonrpc":"2.0","id":1,"result":'


class MockProvider:
    """One mock JSON-RPC provider; ``async with`` starts and closes it."""

    def __init__(
        self,
        chain: SimulatedChain,
        provider_id: str = "mock",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rng: random.Random | None = None,
        knobs: Knobs | None = None,
        **knob_values: Any,
    ) -> None:
        self._chain = chain
        self._id = provider_id
        self._host = host
        self._port = port
        self._rng = rng if rng is not None else random.Random(f"mock-provider:{provider_id}")
        self._baseline = (knobs or Knobs()).with_changes(**knob_values)
        self._knobs = self._baseline
        self._state: State = "new"
        self._wake = asyncio.Event()  # set and replaced on every knob change and on stop
        self._runner: web.ServerRunner | None = None
        self._site: web.SockSite | None = None
        self._server: web.Server | None = None
        self._unlisten: Callable[[], None] | None = None
        self._ws: set[WsSession] = set()
        self._ws_head = 0  # last block number pushed to subscribers
        self._sub_seq = 0
        self.reset_counters()

    @classmethod
    def fleet(
        cls,
        n: int | None = None,
        /,
        *,
        chain_id: int = 1,
        block_time_ms: int = 1000,
        **providers: dict[str, Any],
    ) -> MockFleetSpec:
        """An unstarted fleet: ``MockProvider.fleet(alpha={"latency_ms": 50}, beta={})``."""
        return MockFleetSpec.of(n, chain_id=chain_id, block_time_ms=block_time_ms, **providers)

    # -- identity and state ----------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def chain(self) -> SimulatedChain:
        return self._chain

    @property
    def state(self) -> State:
        """``new``, ``running``, ``stopped`` or ``closed``."""
        return self._state

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError(f"{self._id}: not started yet, no port bound")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}/ws"

    @property
    def head_number(self) -> int:
        """The head this provider serves (chain head minus ``lag_blocks``)."""
        return max(0, self._chain.head_number - self._knobs.lag_blocks)

    @property
    def ws_connections(self) -> int:
        return len(self._ws)

    # -- knobs -----------------------------------------------------------------------------

    @property
    def knobs(self) -> Knobs:
        return self._knobs

    def set_knobs(self, knobs: Knobs) -> None:
        self._knobs = knobs
        self._poke()

    def configure(self, **knobs: Any) -> Knobs:
        """Change some knobs; returns the previous ones so a chaos action can restore them."""
        previous = self._knobs
        self.set_knobs(previous.with_changes(**knobs))
        return previous

    def set_latency(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        self.configure(latency_ms=latency_ms, jitter_ms=jitter_ms)

    def set_failure(
        self, mode: FailureMode | str, *, error_rate: float | None = None, http_status: int = 500
    ) -> None:
        self.configure(failure_mode=mode, error_rate=error_rate, http_status=http_status)

    def set_lag(self, blocks: int) -> None:
        self.configure(lag_blocks=blocks)

    def set_unsupported(self, methods: Iterable[str]) -> None:
        self.configure(unsupported_methods=frozenset(methods))

    def heal(self) -> None:
        """Back to the knobs the provider was created with."""
        self.set_knobs(self._baseline)

    def _poke(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    # -- counters --------------------------------------------------------------------------

    def reset_counters(self) -> None:
        self._requests_total = 0
        self._requests_received = 0
        self._failures_injected = 0
        self._method_counts: dict[str, int] = {}
        self._probe_counts: dict[str, int] = {}

    @property
    def requests_total(self) -> int:
        """HTTP requests and WebSocket frames received (a batch counts once)."""
        return self._requests_total

    @property
    def requests_received(self) -> int:
        """JSON-RPC calls received, counting every batch item."""
        return self._requests_received

    @property
    def failures_injected(self) -> int:
        return self._failures_injected

    @property
    def method_counts(self) -> dict[str, int]:
        """Calls per method as received (before any injected failure); ``<invalid>`` for junk."""
        return dict(self._method_counts)

    @property
    def probe_counts(self) -> dict[str, int]:
        """Calls per method that carried JSON-RPC id 0: the router's own head probe (it numbers
        the calls it forwards from 1), included in ``method_counts`` too."""
        return dict(self._probe_counts)

    def _count(self, payload: object) -> None:
        self._requests_total += 1
        for item in payload if isinstance(payload, list) else [payload]:
            self._requests_received += 1
            method = item.get("method") if isinstance(item, dict) else None
            key = method if isinstance(method, str) else "<invalid>"
            self._method_counts[key] = self._method_counts.get(key, 0) + 1
            if isinstance(item, dict) and item.get("id") == 0:
                self._probe_counts[key] = self._probe_counts.get(key, 0) + 1

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (again) on the provider's port; the first start binds a free one if port=0."""
        if self._state == "running":
            return
        if self._state == "closed":
            raise RuntimeError(f"{self._id}: closed")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            self._port = sock.getsockname()[1]
            # handler_cancellation: a client that gives up on a hung request frees its handler.
            self._server = web.Server(self._handle, handler_cancellation=True, access_log=None)
            self._runner = web.ServerRunner(self._server, shutdown_timeout=1.0)
            await self._runner.setup()
            self._site = web.SockSite(self._runner, sock)
            await self._site.start()
        except BaseException:
            sock.close()
            if self._runner is not None:
                await self._runner.cleanup()
            raise
        self._ws_head = self.head_number
        self._unlisten = self._chain.add_listener(self._on_block)
        self._state = "running"

    async def stop(self) -> None:
        """Close the listening socket and every open connection, like a killed process."""
        if self._state != "running":
            return
        self._state = "stopped"
        if self._unlisten is not None:
            self._unlisten()
        self._poke()
        assert self._site is not None and self._runner is not None and self._server is not None
        await self._site.stop()  # from here on, clients get "connection refused"
        for handler in self._server.connections:
            if handler.transport is not None:
                handler.transport.abort()
        await self._runner.cleanup()
        self._site = self._runner = self._server = None

    async def aclose(self) -> None:
        await self.stop()
        self._state = "closed"

    async def __aenter__(self) -> MockProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def drop_websockets(self) -> int:
        """Abort every client WebSocket (as a network drop would); how many were open."""
        sessions = list(self._ws)
        for session in sessions:
            session.abort()
        # Their handlers end once connection_lost has run (bounded: never hang on a stuck one).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                for session in sessions:
                    await session.closed.wait()
        return len(sessions)

    # -- request pipeline ------------------------------------------------------------------

    def _roll(self) -> FailureMode:
        k = self._knobs
        if k.error_rate is None:
            mode = k.failure_mode
        elif k.error_rate > 0 and self._rng.random() < k.error_rate:
            mode = (
                k.failure_mode if k.failure_mode is not FailureMode.NONE else FailureMode.HTTP_500
            )
        else:
            mode = FailureMode.NONE
        if mode is not FailureMode.NONE:
            self._failures_injected += 1
        return mode

    async def _prelude(self) -> FailureMode:
        """Pick the failure, hang if told to, wait the latency; the failure to apply."""
        mode = self._roll()
        if mode is FailureMode.HANG:
            while self._state == "running" and self._knobs.failure_mode is FailureMode.HANG:
                await self._wake.wait()
            mode = FailureMode.NONE  # released by a knob change: answer normally
        k = self._knobs
        delay = k.latency_ms + (self._rng.uniform(0.0, k.jitter_ms) if k.jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)
        return mode

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._serve_ws(request)
        if request.method != "POST":
            return web.Response(status=405, text="JSON-RPC over POST, or a WebSocket upgrade\n")
        payload = decode(await request.read())
        self._count(payload)
        mode = await self._prelude()
        k = self._knobs
        if mode is FailureMode.RESET:
            if request.transport is not None:
                request.transport.abort()
            # connection_lost cancels this handler right away; the response is only a fallback.
            await asyncio.sleep(1.0)
            return web.Response(status=500)
        if mode is FailureMode.HTTP_500:
            return web.Response(status=k.http_status, text=f"{k.http_status} mock failure\n")
        if mode is FailureMode.MALFORMED:
            return web.Response(body=_MALFORMED_BODY, content_type="application/json")
        if mode is FailureMode.RATE_LIMIT:
            body = error_reply(payload, -32005, "rate limit exceeded")
            return _json(body, status=429, headers={"Retry-After": str(k.retry_after_s)})
        if mode is FailureMode.JSONRPC_ERROR:
            return _json(error_reply(payload, -32603, "mock failure"))
        reply = answer(payload, partial(self._call, None))
        if reply is None:  # notifications only
            return web.Response(status=200)
        return _json(wrong_ids(reply) if mode is FailureMode.WRONG_ID else reply)

    def _call(self, session: WsSession | None, method: str, params: list[Any]) -> object:
        if method in self._knobs.unsupported_methods:
            raise Fault(-32601, f"the method {method} does not exist/is not available")
        if method in ("eth_subscribe", "eth_unsubscribe"):
            if session is None:
                raise Fault(-32601, "notifications not supported")
            if method == "eth_unsubscribe":
                return session.unsubscribe(params)
            self._sub_seq += 1
            return session.subscribe(params, salt=f"{self._id}|{self._sub_seq}")
        if method == "web3_clientVersion":
            return f"Geth/v1.14.0-lasso-mock-{self._id}/linux-amd64/go1.22.0"
        fn = METHODS.get(method)
        if fn is None:
            raise Fault(-32601, f"the method {method} does not exist/is not available")
        limit = self._knobs.max_logs_range
        if limit is not None and method == "eth_getLogs":
            span = logs_span(self._chain, self.head_number, params)
            if span is not None and span > limit:
                raise Fault(-32005, f"query exceeds max block range {limit}")
        return fn(self._chain, self.head_number, params)

    async def _serve_ws(self, request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = WsSession(ws, request.transport)
        self._ws.add(session)
        try:
            await session.serve(self._ws_message)
        finally:
            self._ws.discard(session)
        return ws

    async def _ws_message(self, session: WsSession, data: str | bytes) -> None:
        payload = decode(data)
        self._count(payload)
        mode = await self._prelude()
        if mode is FailureMode.RESET:
            session.abort()
        elif mode is FailureMode.HTTP_500:
            await session.ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"mock failure")
        elif mode is FailureMode.MALFORMED:
            session.send_text(_MALFORMED_BODY.decode())
        elif mode is FailureMode.RATE_LIMIT:
            session.send(error_reply(payload, -32005, "rate limit exceeded"))
        elif mode is FailureMode.JSONRPC_ERROR:
            session.send(error_reply(payload, -32603, "mock failure"))
        else:
            reply = answer(payload, partial(self._call, session))
            if reply is not None:
                session.send(wrong_ids(reply) if mode is FailureMode.WRONG_ID else reply)

    def _on_block(self, event: ChainEvent) -> None:
        lag = self._knobs.lag_blocks
        if lag == 0 and event.replaced is not None:
            events = [event]  # a reorg at the head: the new block at the same number
        else:
            # A lagging provider delivers what it now knows, without gaps (at most 128 blocks).
            target = event.block.number - lag
            numbers = range(max(self._ws_head + 1, target - 127), target + 1)
            events = [ChainEvent(b) for n in numbers if (b := self._chain.block(n)) is not None]
        if events:
            self._ws_head = max(self._ws_head, events[-1].block.number)
            for session in self._ws:
                session.notify(events)

    def __repr__(self) -> str:
        port = self._port or "-"
        changed = self._knobs.changed().items()
        knobs = ", ".join(f"{k}={str(v) if isinstance(v, StrEnum) else v!r}" for k, v in changed)
        return (
            f"MockProvider(id={self._id!r}, port={port}, state={self._state}, "
            f"requests={self._requests_received}, knobs={{{knobs}}})"
        )


def _json(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
