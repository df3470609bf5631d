"""web3.py's WebSocketProvider → router → three real anvil nodes sharing one chain (lockstep).

The client subscribes to ``newHeads`` through the router; the node serving the upstream
subscription is killed (``kill -9``) mid-run while the others keep mining in lockstep. The
client must see every block number once, in order, with the canonical hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from web3 import AsyncWeb3, WebSocketProvider

from lasso_rpc.battle.providers.anvil import anvil_binary
from lasso_rpc.battle.providers.lockstep import AnvilLockstep
from lasso_rpc.config import load_config_text
from lasso_rpc.observability.events import Event, SubscriptionFailover
from lasso_rpc.server.app import RouterServer
from tests.integration.test_ws_failover import wait_for, wait_live

ANVIL = anvil_binary()  # skips this module only when no anvil is installed
pytestmark = [pytest.mark.anvil, pytest.mark.asyncio]

CHAIN_ID = 31_339


def router_config(chain: AnvilLockstep) -> str:
    doc = {
        "name": "Anvil",
        "slug": "local",
        "routing": {"head_poll_ms": 100, "request_timeout_ms": 5000},
        "chains": {
            "anvil": {
                "chain_id": CHAIN_ID,
                "block_time_ms": 1000,
                "providers": [
                    {"id": f"node{i}", "url": n.url, "ws_url": n.ws_url}
                    for i, n in enumerate(chain)
                ],
            }
        },
        "server": {"host": "127.0.0.1", "port": 0},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
async def chain() -> AsyncIterator[AnvilLockstep]:
    async with AnvilLockstep(3, chain_id=CHAIN_ID, binary=ANVIL) as c:
        await c.mine()
        yield c


@pytest.fixture
async def router(chain: AnvilLockstep) -> AsyncIterator[RouterServer]:
    async with RouterServer(load_config_text([("anvil.yaml", router_config(chain))])) as s:
        yield s


async def test_web3_newheads_survive_a_killed_node_without_gap_or_duplicate(
    chain: AnvilLockstep, router: RouterServer
) -> None:
    events: list[Event] = []
    router.router.bus.subscribe(events.append)
    url = router.url.replace("http://", "ws://") + "/ws/rpc/anvil"
    received: list[dict[str, Any]] = []
    async with AsyncWeb3(WebSocketProvider(url)) as w3:
        assert await w3.eth.chain_id == CHAIN_ID  # a unary call over the same socket
        sub_id = await w3.eth.subscribe("newHeads")
        serving = (await wait_live(router, 1)).provider
        assert serving is not None

        async def collect() -> None:
            async for msg in w3.socket.process_subscriptions():
                assert msg["subscription"] == sub_id
                received.append(msg["result"])

        collector = asyncio.create_task(collect())
        start = len(chain.history)
        victim = chain[int(serving.removeprefix("node"))]
        for i in range(24):
            if i == 8:
                # Two blocks the serving node never sees, then it dies: the router must
                # back-fill them from another node.
                chain.nodes.remove(victim)
                await chain.mine()
                await chain.mine()
                await victim.stop()
                chain.nodes.append(victim)  # still the lockstep's to clean up
            await chain.mine()
            await asyncio.sleep(0.02)
        final = len(chain.history)
        await wait_for(lambda: len(received) >= final - start, "every block", timeout=10)
        await asyncio.sleep(0.1)  # a duplicate would arrive now
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        assert [b["number"] for b in received] == list(range(start + 1, final + 1))
        assert [b["hash"].to_0x_hex() for b in received] == [
            chain.history[n - 1].hash for n in range(start + 1, final + 1)
        ]
    moves = [e for e in events if isinstance(e, SubscriptionFailover)]
    assert moves and moves[0].from_provider == serving and moves[0].to_provider != serving
    assert moves[0].backfilled >= 2
    assert not any(e.gap for e in moves)
