"""A confirmed subscription owes the client every block (and matching log) mined after it.

The router answers ``eth_subscribe`` at once, while the feed's upstream subscription may still
be on its way (a new feed) or be running already (a client joining). Blocks are mined every
20 ms and every provider takes 30 ms to answer anything, its WebSocket ``eth_subscribe`` too, so
the first client of each new feed is confirmed well before the upstream subscription is live.
Each client notes the chain's head when its confirmation arrives; it must then get every number
above that head, once each and in order (older blocks before it are allowed: they are owed to
no one). Rounds close every client, so each round starts a new feed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.blocks import LogFilter
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory
from tests.integration.test_ws_failover import manager_of, miner, wait_for, ws_url

pytestmark = pytest.mark.asyncio

ROUNDS = 4
CLIENTS = 8  # per round: 4 at once (the first of them starts the feed), then 4 joining later


class Subscriber:
    """One socket, one subscription; ``acked_at`` is the chain's head when the id arrived."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, fleet: MockFleet) -> None:
        self.ws = ws
        self.fleet = fleet
        self.acked_at: int | None = None
        self.results: list[dict[str, Any]] = []
        self.error: Any = None
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = orjson.loads(msg.data)
            if data.get("method") == "eth_subscription":
                self.results.append(data["params"]["result"])
            elif "result" in data:
                self.acked_at = self.fleet.chain.head_number  # same process: exact
            else:
                self.error = data
            self._new.set()
        self._new.set()

    async def subscribe(self, *params: Any) -> None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": params}
        await self.ws.send_bytes(orjson.dumps(body))
        await self.until(lambda: self.acked_at is not None, "the subscription id")

    async def until(self, cond: Any, what: str) -> None:
        try:
            async with asyncio.timeout(5.0):
                while not cond():
                    assert self.error is None, self.error
                    assert not self.ws.closed, f"socket closed waiting for {what}"
                    self._new.clear()
                    await self._new.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def aclose(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._task, return_exceptions=True)


@contextmanager
def slow_providers(fleet: MockFleet, ms: float) -> Iterator[None]:
    for p in fleet:
        p.set_latency(ms)
    try:
        yield
    finally:
        for p in fleet:
            p.set_latency(0)


async def one_round(
    s: RouterServer,
    fleet: MockFleet,
    http: aiohttp.ClientSession,
    rng: random.Random,
    params: tuple[Any, ...],
) -> list[Subscriber]:
    async def open_one() -> Subscriber:
        c = Subscriber(await http.ws_connect(ws_url(s)), fleet)
        await c.subscribe(*params)
        return c

    clients = list(await asyncio.gather(*(open_one() for _ in range(CLIENTS // 2))))
    for _ in range(CLIENTS - len(clients)):  # joiners: while the feed starts, or once it runs
        await asyncio.sleep(rng.uniform(0.0, 0.06))
        clients.append(await open_one())
    await asyncio.sleep(0.15)
    return clients


async def close_round(s: RouterServer, clients: list[Subscriber]) -> None:
    for c in clients:
        await c.aclose()
    await wait_for(lambda: not manager_of(s).feeds(), "the feed to stop")


async def test_every_block_after_the_confirmation_reaches_every_client(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    rng = random.Random(7)
    missing: dict[str, list[int]] = {}
    checked = 0
    with slow_providers(fleet, 30):
        async with miner(fleet, 0.02):
            for r in range(ROUNDS):
                clients = await one_round(s, fleet, http, rng, ("newHeads",))
                top = fleet.chain.head_number
                for i, c in enumerate(clients):
                    numbers = lambda c=c: [int(x["number"], 16) for x in c.results]  # noqa: E731
                    await c.until(
                        lambda n=numbers, t=top: max(n(), default=-1) >= t, f"block {top}"
                    )
                    got = numbers()
                    assert got == sorted(set(got)), f"round {r} client {i}: order {got}"
                    assert c.acked_at is not None
                    lost = sorted(set(range(c.acked_at + 1, top + 1)) - set(got))
                    if lost:
                        missing[f"round {r} client {i} (acked at {c.acked_at})"] = lost
                    checked += 1
                await close_round(s, clients)
    assert checked == ROUNDS * CLIENTS
    assert not missing, f"blocks mined after the confirmation never delivered: {missing}"


async def test_every_log_after_the_confirmation_reaches_every_client(
    make_router: RouterFactory, fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    rng = random.Random(11)
    address = fleet.chain.contracts[1]
    flt = LogFilter.parse({"address": address})
    missing: dict[str, int] = {}
    checked = 0
    with slow_providers(fleet, 30):
        async with miner(fleet, 0.02):
            for r in range(ROUNDS):
                clients = await one_round(s, fleet, http, rng, ("logs", {"address": address}))
                top = fleet.chain.head_number
                for i, c in enumerate(clients):
                    assert c.acked_at is not None
                    want = [
                        (lg.block_number, lg.log_index)
                        for lg in fleet.chain.logs(c.acked_at + 1, top, flt)
                    ]
                    assert want, "the filter matches logs in most blocks"

                    def keys(c: Subscriber = c) -> list[tuple[int, int]]:
                        return [
                            (int(x["blockNumber"], 16), int(x["logIndex"], 16)) for x in c.results
                        ]

                    await c.until(
                        lambda k=keys, w=want[-1]: max(k(), default=(-1, -1)) >= w, f"block {top}"
                    )
                    got = keys()
                    assert got == sorted(set(got)), f"round {r} client {i}: order {got}"
                    assert all(x["address"] == address for x in c.results)
                    lost = len(set(want) - set(got))
                    if lost:
                        missing[f"round {r} client {i} (acked at {c.acked_at})"] = lost
                    checked += 1
                await close_round(s, clients)
    assert checked == ROUNDS * CLIENTS
    assert not missing, f"logs of blocks mined after the confirmation never delivered: {missing}"
