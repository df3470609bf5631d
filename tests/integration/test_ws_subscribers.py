"""``battle.subscribe.run_subscribers``: what N WebSocket clients saw through a real router."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lasso_rpc.battle.load.subscribers import run_subscribers
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.config import load_config_text
from lasso_rpc.server.app import RouterServer
from tests.conftest import RouterFactory, fleet_config
from tests.integration.test_ws_failover import miner, wait_live, ws_url

pytestmark = pytest.mark.asyncio


async def test_subscribers_count_blocks_and_reorgs_across_a_failover(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router(routing={"max_lag_blocks": 1_000_000})
    ready = asyncio.Event()
    run = asyncio.create_task(
        run_subscribers(
            ws_url(s), count=20, kind="newHeads", duration_s=1.2, chain=fleet.chain, ready=ready
        )
    )
    await asyncio.wait_for(ready.wait(), 5)
    serving = (await wait_live(s, 20)).provider
    assert serving is not None
    start = fleet.chain.head_number
    async with miner(fleet, 0.02):
        await asyncio.sleep(0.2)
        fleet.chain.reorg(1)
        await asyncio.sleep(0.1)
        fleet[serving].set_lag(1_000_000)
        await asyncio.sleep(0.1)
        await fleet[serving].stop()
        await asyncio.sleep(0.3)
    blocks = fleet.chain.head_number - start
    records = await run
    assert len(records) == 20 and {r.client for r in records} == set(range(20))
    for r in records:
        assert (r.kind, r.gaps, r.duplicates, r.reorgs) == ("newHeads", 0, 0, 1)
        assert r.events == blocks + 1  # every block once, plus the reorged one again
        assert r.delivery_ms_p50 is not None and r.delivery_ms_p99 is not None
        assert 0 <= r.delivery_ms_p50 <= r.delivery_ms_p99 < 1000
        # Connected for most of the run (20 sockets connecting at once take part of it on a
        # loaded machine); that the socket never dropped, the counts above show.
        assert r.connected_s > r.duration_s / 2 and r.duration_s == 1.2


async def test_logs_subscribers_find_no_gap_against_the_chain(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router()
    ready = asyncio.Event()
    flt = {"address": fleet.chain.contracts[2]}
    run = asyncio.create_task(
        run_subscribers(
            ws_url(s),
            count=5,
            kind="logs",
            duration_s=0.8,
            filter=flt,
            chain=fleet.chain,
            ready=ready,
        )
    )
    await asyncio.wait_for(ready.wait(), 5)
    await wait_live(s, 5)
    async with miner(fleet, 0.02):
        await asyncio.sleep(0.5)
    records = await run
    for r in records:
        assert r.events > 10 and r.gaps == 0 and r.duplicates == 0 and r.reorgs == 0


async def test_subscribers_reconnect_after_the_router_restarts_and_count_the_gap(
    fleet: MockFleet,
) -> None:
    cfg = load_config_text([("t.yaml", fleet_config(fleet))])
    first = RouterServer(cfg, port=0)
    await first.start()
    port = first.port
    url = ws_url(first)
    ready = asyncio.Event()
    run = asyncio.create_task(
        run_subscribers(
            url, count=3, kind="newHeads", duration_s=2.0, chain=fleet.chain, ready=ready
        )
    )
    await asyncio.wait_for(ready.wait(), 5)
    await wait_live(first, 3)
    second: RouterServer | None = None
    try:
        async with miner(fleet, 0.02):
            await asyncio.sleep(0.3)
            await first.aclose()  # every client socket drops
            await asyncio.sleep(0.2)  # blocks the clients cannot see
            second = RouterServer(cfg, port=port)
            await second.start()
            await asyncio.sleep(0.6)
        records = await run
    finally:
        if second is not None:
            await second.aclose()
    for r in records:
        assert r.gaps > 0 and r.duplicates == 0  # what was missed while disconnected
        assert 0.5 < r.connected_s < 1.9 and r.events > 20


async def test_a_node_polled_directly_is_the_truth_when_there_is_no_mock_chain(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    """Real nodes have no chain object to listen to: their head, polled straight from one node
    (bypassing the router), tells which blocks were owed; a feed starved of them shows."""
    s = await make_router()
    ready = asyncio.Event()
    subscribers = run_subscribers(
        ws_url(s), count=3, kind="newHeads", duration_s=2.5, ready=ready,
        truth_url=fleet["beta"].url,
    )  # fmt: skip
    run = asyncio.create_task(subscribers)
    await asyncio.wait_for(ready.wait(), 5)
    await wait_live(s, 3)
    manager = s.subscriptions
    assert manager is not None
    starved: list[int] = []

    def tap(share: Any, feed: Any, raw: bytes) -> bool:
        if not starved:
            starved.append(share.id)
        return share.id != starved[0]

    async with miner(fleet, 0.05):
        await asyncio.sleep(0.6)
        manager.tap = tap  # from now on one client gets nothing
        await asyncio.sleep(0.5)
    records = await run
    assert {r.truth for r in records} == {"poll"}
    victims = [r for r in records if r.gaps]
    assert len(victims) == 1, records
    assert victims[0].gaps_in_stream == 0 and victims[0].behind_s
    assert all(r.gaps == 0 and r.expected_blocks for r in records if r is not victims[0])
