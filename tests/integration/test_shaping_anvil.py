"""The response cache against a real anvil node: finalized answers served from the cache,
``latest`` never more than a block old, reorgs (``anvil_reorg``, ``evm_revert`` + re-mine)
never served from the cache, and eth_getLogs split under a provider limit returning exactly
what one unlimited call to the node returns.

anvil runs with ``--slots-in-an-epoch 1``: its `finalized` block is the head minus 2, so a
test has finalized and unfinalized blocks a few blocks apart. Upstream calls are counted from
the router's ``request.finished`` attempts (head checks are not client calls and never appear
there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml

from lasso_rpc.battle.providers.anvil import DEV_ACCOUNT, AnvilNode, anvil_binary
from lasso_rpc.config import load_config_text
from lasso_rpc.observability.events import Event, RequestFinished
from lasso_rpc.server.app import RouterServer
from tests.conftest import rpc

ANVIL = anvil_binary()
pytestmark = [pytest.mark.anvil, pytest.mark.asyncio]

CHAIN_ID = 31_339
TOPIC = "0x" + "11" * 32
# Runtime: LOG1(0, 0, TOPIC); STOP. Init code copies it out and returns it.
_RUNTIME = "7f" + TOPIC[2:] + "6000" + "6000" + "a1" + "00"
LOG_CONTRACT_INIT = "0x60%02x80600b6000396000f3" % (len(_RUNTIME) // 2) + _RUNTIME


def config(node: AnvilNode, *, block_time_ms: int = 1000, **cache: Any) -> str:
    doc = {
        "name": "Anvil",
        "slug": "local",
        "routing": {"head_poll_ms": 100, "hedge": {"enabled": False}},
        "cache": {"enabled": True, **cache},
        "chains": {
            "anvil": {
                "chain_id": CHAIN_ID,
                "block_time_ms": block_time_ms,
                "providers": [{"id": "node", "url": node.url, "logs_max_block_range": 3}],
            }
        },
        "server": {"host": "127.0.0.1", "port": 0},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
async def node() -> AsyncIterator[AnvilNode]:
    async with AnvilNode(
        chain_id=CHAIN_ID, binary=ANVIL, extra_args=["--slots-in-an-epoch", "1"]
    ) as n:
        yield n


class Upstream:
    """Client calls and the upstream attempts they made, from the router's own events."""

    def __init__(self, server: RouterServer) -> None:
        self.events: list[RequestFinished] = []
        server.router.bus.subscribe(self._on)

    def _on(self, ev: Event) -> None:
        if isinstance(ev, RequestFinished):
            self.events.append(ev)

    def attempts(self, method: str) -> int:
        return sum(len(e.attempts) for e in self.events if e.method == method)


async def ask(
    http: aiohttp.ClientSession, server: RouterServer, method: str, params: list[Any]
) -> tuple[Any, str | None]:
    url = server.url + "/rpc/anvil?include_meta=headers"
    status, body, resp = await rpc(http, url, method, params)
    assert status == 200 and "error" not in body, body
    return body["result"], resp.headers.get("X-Lasso-Cache")


async def emit_logs(node: AnvilNode, n: int) -> tuple[str, list[str]]:
    """Deploy the log contract, then ``n`` transactions calling it (automine: a block each)."""
    deploy = await node.rpc(
        "eth_sendTransaction", [{"from": DEV_ACCOUNT, "data": LOG_CONTRACT_INIT}]
    )
    contract = (await mined(node, deploy))["contractAddress"]
    txs = []
    for _ in range(n):
        tx = await node.rpc(
            "eth_sendTransaction", [{"from": DEV_ACCOUNT, "to": contract, "data": "0x"}]
        )
        await mined(node, tx)
        txs.append(tx)
    return contract, txs


async def mined(node: AnvilNode, tx: str) -> dict[str, Any]:
    """The receipt of ``tx`` once anvil has mined it."""
    for _ in range(200):
        receipt = await node.rpc("eth_getTransactionReceipt", [tx])
        if receipt is not None:
            return dict(receipt)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{tx} never mined")


async def started(text: str) -> RouterServer:
    server = RouterServer(load_config_text([("anvil.yaml", text)]), port=0)
    await server.start()
    return server


async def until_final(server: RouterServer, height: int) -> None:
    cache = server.router.shaper.chains()[0].cache
    assert cache is not None
    for _ in range(300):
        if cache.ledger.is_final(height):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"block {height} never became final: {cache.ledger!r}")


async def test_finalized_blocks_and_receipts_come_from_the_cache(
    node: AnvilNode, http: aiohttp.ClientSession
) -> None:
    _, txs = await emit_logs(node, 6)
    server = await started(config(node))
    try:
        seen = Upstream(server)
        receipt = await mined(node, txs[0])
        height = int(receipt["blockNumber"], 16)
        await until_final(server, height)
        for i in range(5):
            block, b_status = await ask(http, server, "eth_getBlockByNumber", [hex(height), True])
            got, r_status = await ask(http, server, "eth_getTransactionReceipt", [txs[0]])
            assert (b_status, r_status) == (("MISS", "MISS") if i == 0 else ("HIT", "HIT"))
            assert block == await node.rpc("eth_getBlockByNumber", [hex(height), True])
            assert got == receipt
        assert seen.attempts("eth_getBlockByNumber") == 1
        assert seen.attempts("eth_getTransactionReceipt") == 1
    finally:
        await server.aclose()


async def test_latest_is_never_more_than_one_block_old(http: aiohttp.ClientSession) -> None:
    async with AnvilNode(chain_id=CHAIN_ID, binary=ANVIL, block_time_s=0.5) as node:
        server = await started(config(node, block_time_ms=500))
        try:
            hits = 0
            loop = asyncio.get_running_loop()
            end = loop.time() + 3.0
            while loop.time() < end:
                before = await node.block_number()
                block, status = await ask(http, server, "eth_getBlockByNumber", ["latest", False])
                number, _ = await ask(http, server, "eth_blockNumber", [])
                hits += status == "HIT"
                assert int(block["number"], 16) >= before - 1, (block["number"], before)
                assert int(number, 16) >= before - 1
                await asyncio.sleep(0.01)
            assert hits > 10  # served from the cache most of the time, yet never stale
        finally:
            await server.aclose()


async def _reorg_with_anvil_reorg(node: AnvilNode) -> None:
    await node.rpc("anvil_reorg", [2, []])  # the last two blocks, replaced by empty ones


async def _reorg_with_revert(node: AnvilNode, snapshot: str) -> None:
    await node.rpc("evm_revert", [snapshot])
    await node.rpc("evm_setNextBlockTimestamp", [2_000_000_000])  # other blocks, other hashes
    await node.mine(2)


@pytest.mark.parametrize("how", ["anvil_reorg", "evm_revert"])
async def test_after_a_reorg_no_client_gets_the_old_block_receipt_or_log(
    node: AnvilNode, http: aiohttp.ClientSession, how: str
) -> None:
    contract, _ = await emit_logs(node, 4)
    snapshot = await node.rpc("evm_snapshot", [])
    extra = []
    for _ in range(2):
        tx = await node.rpc(
            "eth_sendTransaction", [{"from": DEV_ACCOUNT, "to": contract, "data": "0x"}]
        )
        await mined(node, tx)
        extra.append(tx)
    head = await node.block_number()  # the last two blocks hold ``extra``
    server = await started(config(node, head_check_ms=0))
    try:
        recent = [hex(head - 1), hex(head)]
        logs = [{"fromBlock": hex(head - 1), "toBlock": hex(head), "address": contract}]
        old_final = await node.rpc("eth_getBlockByNumber", [hex(head - 4), False])
        await until_final(server, head - 4)
        for _ in range(2):
            for n in recent:
                await ask(http, server, "eth_getBlockByNumber", [n, False])
            for tx in extra:
                await ask(http, server, "eth_getTransactionReceipt", [tx])
            _, status = await ask(http, server, "eth_getLogs", logs)
            await ask(http, server, "eth_getBlockByNumber", [hex(head - 4), False])
        assert status == "HIT"
        old_hashes = {(await node.rpc("eth_getBlockByNumber", [n, False]))["hash"] for n in recent}

        if how == "anvil_reorg":
            await _reorg_with_anvil_reorg(node)
        else:
            await _reorg_with_revert(node, snapshot)

        for n in recent:  # asked at once: the router must notice before it answers
            block, _ = await ask(http, server, "eth_getBlockByNumber", [n, False])
            truth = await node.rpc("eth_getBlockByNumber", [n, False])
            assert block == truth and block["hash"] not in old_hashes
        for tx in extra:
            got, _ = await ask(http, server, "eth_getTransactionReceipt", [tx])
            assert got == await node.rpc("eth_getTransactionReceipt", [tx])
            assert got is None or got["blockHash"] not in old_hashes
        got, _ = await ask(http, server, "eth_getLogs", logs)
        assert got == await node.rpc("eth_getLogs", logs)
        assert all(lg["blockHash"] not in old_hashes for lg in got)
        # The finalized block below the fork was left alone.
        block, status = await ask(http, server, "eth_getBlockByNumber", [hex(head - 4), False])
        assert (block, status) == (old_final, "HIT")
    finally:
        await server.aclose()


async def test_get_logs_split_under_a_provider_limit_equals_one_unlimited_call(
    node: AnvilNode, http: aiohttp.ClientSession
) -> None:
    contract, _ = await emit_logs(node, 12)
    head = await node.block_number()
    server = await started(config(node))  # logs_max_block_range: 3 on the only provider
    try:
        seen = Upstream(server)
        flt = [{"fromBlock": "0x1", "toBlock": hex(head)}]
        got, _ = await ask(http, server, "eth_getLogs", flt)
        truth = await node.rpc("eth_getLogs", flt)
        assert got == truth and len(truth) == 12
        assert seen.attempts("eth_getLogs") == -(-head // 3)  # pieces of 3 blocks
        by_address = [{"fromBlock": "0x0", "toBlock": hex(head), "address": contract}]
        got, _ = await ask(http, server, "eth_getLogs", by_address)
        assert got == await node.rpc("eth_getLogs", by_address)
    finally:
        await server.aclose()
