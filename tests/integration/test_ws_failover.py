"""Multiplexed subscriptions through the router survive provider loss without gaps or duplicates.

Real sockets: mock providers (HTTP + WebSocket) → router → aiohttp WebSocket clients. The
fleet mines only when the test says so (``block_time_ms=0``), from a background miner task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.blocks import LogFilter
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.observability.events import Event, SubscriptionFailover
from lasso_rpc.server.app import RouterServer
from lasso_rpc.subscriptions import FeedInfo, SubscriptionManager
from tests.conftest import RouterFactory

pytestmark = pytest.mark.asyncio


class WsClient:
    """One client socket holding one subscription; collects every notification result."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.results: list[dict[str, Any]] = []
        self.replies: dict[Any, dict[str, Any]] = {}
        self.sub_id: str | None = None  # the latest subscription
        self.by_sub: dict[str, list[dict[str, Any]]] = {}
        self._new = asyncio.Event()
        self.closed: tuple[int | None, str] | None = None
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str) -> WsClient:
        return cls(await http.ws_connect(url))

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            data = orjson.loads(msg.data)
            if isinstance(data, dict) and data.get("method") == "eth_subscription":
                result = data["params"]["result"]
                self.by_sub.setdefault(data["params"]["subscription"], []).append(result)
                self.results.append(result)
            elif isinstance(data, dict):
                self.replies[data.get("id")] = data
            else:
                self.replies[tuple(d.get("id") for d in data)] = {"batch": data}
            self._new.set()
        self.closed = (self.ws.close_code, str(self.ws.exception() or ""))
        self._new.set()

    async def call(self, method: str, params: list[Any], id: Any = 1) -> dict[str, Any]:
        await self.ws.send_bytes(
            orjson.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        )
        return await self.reply(id)

    async def reply(self, id: Any) -> dict[str, Any]:
        await self.until(lambda: id in self.replies, what=f"reply {id}")
        return self.replies.pop(id)

    async def subscribe(self, *params: Any, id: Any = "sub") -> str:
        await self.ws.send_bytes(
            orjson.dumps({"jsonrpc": "2.0", "id": id, "method": "eth_subscribe", "params": params})
        )
        reply = await self.reply(id)
        assert "result" in reply, reply
        self.sub_id = reply["result"]
        self.by_sub.setdefault(self.sub_id, [])
        return self.sub_id

    async def until(
        self, cond: Callable[[], bool], *, what: str = "", timeout: float = 5.0
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not cond():
                    if self.closed is not None:
                        raise AssertionError(f"socket closed {self.closed} waiting for {what}")
                    self._new.clear()
                    await self._new.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def numbers(self) -> list[int]:
        return [int(r["number"], 16) for r in self.results]

    async def aclose(self) -> None:
        await self.ws.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def wait_for(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not cond():  # noqa: ASYNC110 (polls router state that has no event)
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def manager_of(server: RouterServer) -> SubscriptionManager:
    assert server.subscriptions is not None
    return server.subscriptions


def only_feed(server: RouterServer) -> FeedInfo:
    (info,) = manager_of(server).feeds()
    return info


async def wait_live(server: RouterServer, clients: int, *, not_on: str | None = None) -> FeedInfo:
    def ready() -> bool:
        feeds = manager_of(server).feeds()
        return (
            len(feeds) == 1
            and feeds[0].state == "live"
            and feeds[0].clients == clients
            and feeds[0].provider != not_on
        )

    await wait_for(ready, f"a live feed with {clients} clients (not on {not_on})")
    return only_feed(server)


def ws_url(server: RouterServer, path: str = "/ws/rpc/ethereum") -> str:
    return server.url.replace("http://", "ws://") + path


@contextlib.asynccontextmanager
async def miner(fleet: MockFleet, every_s: float = 0.01) -> AsyncIterator[None]:
    async def run() -> None:
        while True:
            fleet.chain.mine()
            await asyncio.sleep(every_s)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def events() -> list[Event]:
    return []


async def router_with_events(
    make_router: RouterFactory, events: list[Event], **kw: Any
) -> RouterServer:
    # A provider made silent through a huge lag stays eligible: the test decides when it fails.
    kw.setdefault("routing", {"max_lag_blocks": 1_000_000})
    s = await make_router(**kw)
    s.router.bus.subscribe(events.append)
    return s


async def kill_and_drop(fleet: MockFleet, server: RouterServer, clients: int) -> tuple[str, str]:
    """Silence the serving provider while blocks are mined, then kill it; then drop the
    WebSockets of the next one. Returns (killed, dropped)."""
    first = (await wait_live(server, clients)).provider
    assert first is not None
    await asyncio.sleep(0.05)
    fleet[first].set_lag(1_000_000)  # its WebSocket goes silent, blocks keep coming
    await asyncio.sleep(0.1)
    await fleet[first].stop()
    second = (await wait_live(server, clients, not_on=first)).provider
    assert second is not None
    await asyncio.sleep(0.1)
    await fleet[second].drop_websockets()
    await asyncio.sleep(0.05)
    await wait_live(server, clients)
    await asyncio.sleep(0.1)
    return first, second


async def test_100_newheads_clients_see_every_block_once_across_kill_and_ws_drop(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession, events: list[Event]
) -> None:
    s = await router_with_events(make_router, events)
    clients = [await WsClient.open(http, ws_url(s)) for _ in range(100)]
    sub_ids = {await c.subscribe("newHeads", id=i) for i, c in enumerate(clients)}
    assert len(sub_ids) == 100  # the router's own ids, one per client
    await wait_live(s, 100)
    start = fleet.chain.head_number
    async with miner(fleet):
        killed, dropped = await kill_and_drop(fleet, s, 100)
    final = fleet.chain.head_number
    assert final - start > 20
    expected = list(range(start + 1, final + 1))
    hashes = [fleet.chain.block(n).hash for n in expected]  # type: ignore[union-attr]
    for c in clients:
        await c.until(lambda c=c: len(c.results) >= len(expected), what="every block")
    await asyncio.sleep(0.05)  # nothing more (no duplicate) may follow
    for c in clients:
        assert c.numbers() == expected
        assert [r["hash"] for r in c.results] == hashes
    moves = [e for e in events if isinstance(e, SubscriptionFailover)]
    assert [(e.from_provider, e.reorg) for e in moves][:2] == [(killed, False), (dropped, False)]
    assert moves[0].to_provider != killed and moves[0].backfilled >= 1  # the silent blocks
    assert not any(e.gap for e in moves)
    info = only_feed(s)
    assert info.gaps == 0 and info.failovers == len(moves)
    assert sum(p.ws_connections for p in fleet if p.state == "running") == 1  # one upstream
    for c in clients:
        await c.aclose()


async def test_logs_subscription_sees_every_log_once_in_order(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession, events: list[Event]
) -> None:
    s = await router_with_events(make_router, events)
    address = fleet.chain.contracts[1]
    flt = {"address": address.upper().replace("0X", "0x")}  # normalised by the router
    clients = [await WsClient.open(http, ws_url(s)) for _ in range(20)]
    for c in clients:
        await c.subscribe("logs", flt)
    await wait_live(s, 20)
    start = fleet.chain.head_number
    async with miner(fleet):
        await kill_and_drop(fleet, s, 20)
    final = fleet.chain.head_number
    want = [
        (lg.block_number, lg.log_index, lg.block_hash)
        for lg in fleet.chain.logs(start + 1, final, LogFilter.parse({"address": address}))
    ]
    assert len(want) > 20
    for c in clients:
        await c.until(lambda c=c: len(c.results) >= len(want), what="every log")
    await asyncio.sleep(0.05)
    for c in clients:
        got = [
            (int(r["blockNumber"], 16), int(r["logIndex"], 16), r["blockHash"]) for r in c.results
        ]
        assert got == want
        assert all(r["address"] == address and not r["removed"] for r in c.results)
    moves = [e for e in events if isinstance(e, SubscriptionFailover)]
    assert len(moves) >= 2 and not any(e.gap for e in moves)
    for c in clients:
        await c.aclose()


async def test_reorg_is_delivered_as_a_new_block_with_the_same_number(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession, events: list[Event]
) -> None:
    s = await router_with_events(make_router, events)
    c = await WsClient.open(http, ws_url(s))
    await c.subscribe("newHeads")
    await wait_live(s, 1)
    top = fleet.chain.mine(3).number
    await c.until(lambda: len(c.results) == 3, what="3 blocks")
    old = [r["hash"] for r in c.results]
    fleet.chain.reorg(2)
    fleet.chain.mine()
    await c.until(lambda: len(c.results) == 6, what="the reorg and the next block")
    assert c.numbers() == [top - 2, top - 1, top, top - 1, top, top + 1]
    canonical = [fleet.chain.block(n).hash for n in (top - 1, top, top + 1)]  # type: ignore[union-attr]
    assert [r["hash"] for r in c.results[3:]] == canonical
    assert canonical[:2] != old[1:]
    reorgs = [e for e in events if isinstance(e, SubscriptionFailover) and e.reorg]
    assert reorgs and reorgs[0].from_provider == reorgs[0].to_provider == only_feed(s).provider
    await c.aclose()


async def test_reorg_during_failover_is_repaired_back_to_the_common_ancestor(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession, events: list[Event]
) -> None:
    s = await router_with_events(make_router, events)
    c = await WsClient.open(http, ws_url(s))
    await c.subscribe("newHeads")
    serving = (await wait_live(s, 1)).provider
    assert serving is not None
    top = fleet.chain.mine(3).number
    await c.until(lambda: len(c.results) == 3, what="3 blocks")
    fleet[serving].set_lag(1_000_000)  # silent from here
    fleet.chain.mine(2)
    fleet.chain.reorg(3)  # replaces top (already delivered), top+1 and top+2 (not yet)
    await fleet[serving].stop()
    await c.until(lambda: len(c.results) == 6, what="repaired fork")
    assert c.numbers() == [top - 2, top - 1, top, top, top + 1, top + 2]
    assert [r["hash"] for r in c.results[3:]] == [
        fleet.chain.block(n).hash  # type: ignore[union-attr]
        for n in (top, top + 1, top + 2)
    ]
    assert only_feed(s).reorgs == 1
    assert any(isinstance(e, SubscriptionFailover) and e.reorg for e in events)
    await c.aclose()
