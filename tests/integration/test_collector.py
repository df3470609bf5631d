"""The collector on a real router: its event bus and its /api/events WebSocket tell the same story,
and the router's ground truth matches what the clients saw through include_meta."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.measure.analyzer import analyze
from lasso_rpc.battle.measure.collector import Collector
from lasso_rpc.battle.measure.data import CollectedData
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.records import RequestRecord
from tests.conftest import RouterFactory, rpc

pytestmark = pytest.mark.asyncio
ADDR = "0x" + "66" * 20
N = 200


def totals(d: CollectedData) -> Counter[tuple[str, ...]]:
    """Every router-view count of a snapshot, flattened over the time buckets."""
    c: Counter[tuple[str, ...]] = Counter()
    for b in d.router_buckets:
        c["requests",] += b.requests
        c["failovers",] += b.failovers
        c["hedged",] += b.hedged
        c.update({("status", k): v for k, v in b.status.items()})
        c.update({("served", k): v for k, v in b.served.items()})
        for p, outcomes in b.attempts.items():
            c.update({("attempt", p, o): v for o, v in outcomes.items()})
    return c


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll: the event stream is another connection, with nothing to wait on but its effect."""
    async with asyncio.timeout(timeout_s):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_bus_and_event_stream_collect_the_same_counts(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    # No dedup: the 8 clients' identical calls each make their own attempts (and failovers).
    s = await make_router(routing={"max_attempts": 3, "shaping": {"dedup": False}})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    on_bus = Collector(start=t0)
    on_stream = Collector(start=t0, wall_start=on_bus.wall_start)
    on_bus.attach_bus(s.router.bus)
    try:
        await on_stream.attach_stream(s.url + "/api/events")
        url = s.url + "/rpc/ethereum"
        # The server subscribes its stream just after the handshake: probe until it is live.
        async with asyncio.timeout(5.0):
            while on_stream.snapshot().router_requests == 0:
                await rpc(http, url, "eth_chainId")
                await asyncio.sleep(0.02)
        await until(lambda: totals(on_stream.snapshot())["requests",] > 0)
        bus0, stream0 = totals(on_bus.snapshot()), totals(on_stream.snapshot())
        assert bus0["failovers",] == 0  # nothing failed yet

        # alpha comes first by priority and fails every attempt until its breaker opens
        fleet["alpha"].set_failure("http_500")
        meta_url = s.url + "/rpc/priority/ethereum?include_meta=body"
        it = iter(range(N))

        async def client() -> None:
            for _ in it:
                t = loop.time() - t0
                _, body, _ = await rpc(http, meta_url, "eth_getBalance", [ADDR, "latest"])
                meta = body["lasso_meta"]
                on_bus.record(
                    RequestRecord(
                        method="eth_getBalance",
                        transport="http",
                        intended_s=t,
                        start_s=t,
                        end_s=loop.time() - t0,
                        outcome="ok" if "result" in body else "error",
                        error_class=None,
                        provider=meta["provider"],
                        attempts=meta["attempts"],
                        hedged=meta["hedged"],
                        failover=meta["failover"],
                    )
                )

        await asyncio.gather(*(client() for _ in range(8)))
        bus = totals(on_bus.snapshot()) - bus0
        await until(lambda: totals(on_stream.snapshot()) - stream0 == bus)
        stream = totals(on_stream.snapshot()) - stream0

        assert bus["requests",] == N and bus["status", "ok"] == N
        assert stream == bus
        assert bus["failovers",] >= 5 and bus["attempt", "alpha", "ok"] == 0
        assert bus["served", "alpha"] == 0
        assert bus["failovers",] == bus["attempt", "alpha", "provider"]

        # alpha's breaker opened; both sources saw it at the same moment
        await until(lambda: len(on_stream.snapshot().breakers) == len(on_bus.snapshot().breakers))
        breakers = on_bus.snapshot().breakers
        assert [(b.provider, b.to_state) for b in breakers] == [("alpha", "open")]
        assert on_stream.snapshot().breakers == breakers

        # ground truth and the clients' include_meta agree on every failover
        data = on_bus.snapshot()
        a = analyze(data, chaos=[], subscriptions=None, duration_s=loop.time() - t0)
        assert a.summary.requests == N and a.summary.success_rate == 1.0
        assert a.summary.failovers == a.summary.failovers_client_view == bus["failovers",]
        assert set(a.providers) == {"alpha", "beta"}
        assert a.providers["beta"].requests == N and a.providers["beta"].share == 1.0
        assert a.providers["alpha"].attempt_errors == a.summary.failovers
        assert on_stream.stream_decode_errors == 0 and on_stream.stream_reconnects == 0
    finally:
        await on_bus.aclose()
        await on_stream.aclose()


async def test_system_sampler_measures_the_router_process() -> None:
    c = Collector(start=asyncio.get_running_loop().time())
    c.start_sampling(interval_s=0.05)
    try:
        await until(lambda: len(c.snapshot().system) >= 3)
    finally:
        await c.aclose()
    samples = c.snapshot().system
    assert all(x.rss_mb > 1 and x.cpu_pct >= 0 for x in samples)
    assert [x.t_s for x in samples] == sorted(x.t_s for x in samples)
    count = len(samples)
    await asyncio.sleep(0.1)
    assert len(c.snapshot().system) == count  # aclose stopped the sampler


async def test_an_unreachable_event_stream_is_an_error_not_a_hang() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = Collector(start=0.0)
    with pytest.raises(ConnectionError, match="cannot open the event stream"):
        await c.attach_stream(f"http://127.0.0.1:{port}/api/events", connect_timeout_s=0.3)
    await c.aclose()


async def test_a_dropped_event_stream_is_reopened() -> None:
    """A stand-in /api/events that sends one request.finished per connection, then hangs up."""
    from aiohttp import web

    from lasso_rpc.observability.events import Attempt, RequestFinished, event_to_dict

    connections = 0

    async def events(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        ev = RequestFinished(
            ts=time.time(), request_id=str(connections), profile="p", chain="ethereum",
            method="eth_blockNumber", strategy="fastest", transport="http", status="ok",
            error_class=None, latency_ms=1.0, attempts=(Attempt("alpha", "ok", 1.0),),
            provider="alpha",
        )  # fmt: skip
        await ws.send_bytes(orjson.dumps(event_to_dict(ev)))
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/api/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    c = Collector(start=asyncio.get_running_loop().time())
    try:
        await c.attach_stream(f"ws://127.0.0.1:{port}/api/events")
        await until(lambda: c.snapshot().router_requests >= 3)
        assert c.stream_reconnects >= 2 and connections >= 3
        assert c.snapshot().router_buckets[0].served["alpha"] >= 3
    finally:
        await c.aclose()
        await runner.cleanup()


async def test_the_router_numbers_its_event_frames(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    url = s.url.replace("http", "ws", 1) + "/api/events?types=request.finished"
    async with http.ws_connect(url) as ws:
        frames = []
        async with asyncio.timeout(5.0):
            while len(frames) < 3:
                await rpc(http, s.url + "/rpc/ethereum", "eth_chainId")
                msg = await ws.receive(timeout=0.2) if not frames else await ws.receive()
                if msg.type is aiohttp.WSMsgType.BINARY:
                    frames.append(orjson.loads(msg.data))
    assert [f["seq"] for f in frames] == [1, 2, 3]  # only the types asked for are numbered
    assert {f["type"] for f in frames} == {"request.finished"}


async def test_events_lost_on_the_stream_make_the_run_invalid() -> None:
    """A stand-in /api/events whose frames skip numbers (the router's stream dropped events for
    a slow reader): the collector counts the loss and the analysis refuses to pass the run."""
    from aiohttp import web

    from lasso_rpc.observability.events import Attempt, RequestFinished, event_to_dict

    sent = asyncio.Event()

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for seq in (1, 2, 3, 7, 8, 40):  # 4..6 and 9..39 were dropped: 34
            ev = RequestFinished(
                ts=time.time(), request_id=str(seq), profile="p", chain="ethereum",
                method="eth_blockNumber", strategy="fastest", transport="http", status="ok",
                error_class=None, latency_ms=1.0, attempts=(Attempt("alpha", "ok", 1.0),),
                provider="alpha",
            )  # fmt: skip
            await ws.send_bytes(orjson.dumps(event_to_dict(ev) | {"seq": seq}))
        sent.set()
        await ws.receive()  # hold the connection until the collector closes it
        return ws

    app = web.Application()
    app.router.add_get("/api/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    t0 = asyncio.get_running_loop().time()
    c = Collector(start=t0)
    try:
        await c.attach_stream(f"ws://127.0.0.1:{port}/api/events")
        await asyncio.wait_for(sent.wait(), 5)
        await until(lambda: c.snapshot().router_requests == 6)
        for i in range(6):
            c.record(RequestRecord("eth_blockNumber", "http", 0.01 * i, 0.01 * i, 0.02 * i,
                                   "ok", None, "alpha", 1))  # fmt: skip
        data = c.snapshot()
    finally:
        await c.aclose()
        await runner.cleanup()
    assert (data.source, data.stream_lost, data.stream_reconnects) == ("stream", 34, 0)
    a = analyze(data, chaos=[], subscriptions=None, duration_s=1.0)
    assert a.validity is not None and not a.validity.valid
    assert a.validity.reasons[0].startswith("the router's event stream dropped 34 events")
    assert a.to_dict()["telemetry"]["events_lost"] == 34
