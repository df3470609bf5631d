"""web3.py 8 → lasso-rpc router → two real anvil nodes that share one chain.

The two nodes run in lockstep (``AnvilLockstep``): ``--no-mining``, same chain id and genesis
timestamp, every block sealed on both with the same timestamp after their pools are gossiped, so
both serve the same chain with identical block hashes. That is how two real nodes behind a router
look: a write reaches ONE node through the router and p2p gossip spreads it; here the lockstep's
``gossip()`` / ``send_raw_to_all()`` plays the p2p network, and a receipt can then be read through
either provider.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psutil
import pytest
import yaml
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3

from lasso_rpc.battle.providers.anvil import (
    DEV_ACCOUNT,
    DEV_PRIVATE_KEY,
    AnvilError,
    AnvilNode,
    anvil_binary,
)
from lasso_rpc.battle.providers.lockstep import AnvilLockstep
from lasso_rpc.config import load_config_text
from lasso_rpc.observability.events import RequestFinished
from lasso_rpc.server.app import RouterServer
from tests.conftest import rpc

ANVIL = anvil_binary()  # skips this module only when no anvil is installed
pytestmark = [pytest.mark.anvil, pytest.mark.asyncio]

CHAIN_ID = 31_338
RECIPIENT = "0x000000000000000000000000000000000000bEEF"
SHA256 = "0x0000000000000000000000000000000000000002"
IDENTITY = "0x0000000000000000000000000000000000000004"
# Init code that deploys ``PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN`` (returns 42 for any call).
RETURNS_42_INIT = "0x69602a60005260206000f3600052600a6016f3"
SECOND_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # dev account 1


def router_config(chain: AnvilLockstep) -> str:
    doc = {
        "name": "Anvil",
        "slug": "local",
        "routing": {
            "default_strategy": "load-balanced",
            "head_poll_ms": 100,
            "request_timeout_ms": 5000,
            "breaker": {"failure_threshold": 2, "recovery_ms": 60_000},
        },
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
    async with AnvilLockstep(2, chain_id=CHAIN_ID, binary=ANVIL) as c:
        await c.mine()
        yield c


@pytest.fixture
async def router(chain: AnvilLockstep) -> AsyncIterator[RouterServer]:
    async with RouterServer(load_config_text([("anvil.yaml", router_config(chain))])) as s:
        yield s


def rpc_url(router: RouterServer) -> str:
    return f"{router.url}/rpc/anvil"


def sign(fees: tuple[int, int], nonce: int, key: str = DEV_PRIVATE_KEY, **tx: Any) -> str:
    base_fee, tip = fees
    fields = {
        "gas": 100_000,
        "maxFeePerGas": 2 * base_fee + tip,
        "maxPriorityFeePerGas": tip,
        "nonce": nonce,
        "chainId": CHAIN_ID,
        "type": 2,
        "value": 0,
        **tx,
    }
    return str(Account.sign_transaction(fields, key).raw_transaction.to_0x_hex())


async def holders(chain: AnvilLockstep, tx_hash: str) -> list[str]:
    """The nodes that know ``tx_hash``, asked directly (not through the router)."""
    return [
        n.name for n in chain.running_nodes() if await n.rpc("eth_getTransactionByHash", [tx_hash])
    ]


async def provider_methods(http: aiohttp.ClientSession, router: RouterServer) -> dict[str, dict]:
    async with http.get(router.url + "/api/providers?chain=anvil") as r:
        body = await r.json()
    return {p["id"]: p["stats"].get("http", {}).get("methods", {}) for p in body["providers"]}


async def test_sync_web3_reads_and_a_signed_transfer(
    chain: AnvilLockstep, router: RouterServer, http: aiohttp.ClientSession
) -> None:
    w3 = Web3(HTTPProvider(rpc_url(router), exception_retry_configuration=None))

    def reads() -> dict[str, Any]:  # blocking client: off the event loop that runs the router
        return {
            "chain_id": w3.eth.chain_id,
            "block": w3.eth.block_number,
            "balance": w3.eth.get_balance(DEV_ACCOUNT),
            "sha256": bytes(w3.eth.call({"to": SHA256, "data": b"lasso".hex()})),
            "identity": bytes(w3.eth.call({"to": IDENTITY, "data": "0xc0ffee"})),
            "nonce": w3.eth.get_transaction_count(DEV_ACCOUNT),
            "base_fee": w3.eth.get_block("latest")["baseFeePerGas"],
            "tip": w3.eth.max_priority_fee,
        }

    got = await asyncio.to_thread(reads)
    assert got["chain_id"] == CHAIN_ID == int(await chain[0].rpc("eth_chainId"), 16)
    assert got["block"] == 1
    assert got["balance"] == Web3.to_wei(10_000, "ether")
    assert got["sha256"] == hashlib.sha256(b"lasso").digest()
    assert got["identity"] == bytes.fromhex("c0ffee")

    raw = sign((got["base_fee"], got["tip"]), got["nonce"], to=RECIPIENT, value=10**18, gas=21_000)
    tx_hash = (await asyncio.to_thread(w3.eth.send_raw_transaction, raw)).to_0x_hex()
    assert len(await holders(chain, tx_hash)) == 1  # one provider got the write, before gossip

    block = await chain.mine()  # gossip to the other node, then one identical block on both
    assert tx_hash in block["transactions"]
    assert await holders(chain, tx_hash) == ["anvil-0", "anvil-1"]

    def after() -> tuple[Any, int, list[int]]:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=5, poll_latency=0.05)
        return receipt, w3.eth.get_balance(RECIPIENT), [w3.eth.block_number for _ in range(6)]

    receipt, balance, heads = await asyncio.to_thread(after)
    assert receipt["status"] == 1 and receipt["blockNumber"] == 2
    assert receipt["blockHash"].to_0x_hex() == block["hash"]
    assert balance == 10**18
    assert heads == [2] * 6

    methods = await provider_methods(http, router)
    assert all(m.get("eth_blockNumber") for m in methods.values()), methods  # both served reads
    assert not any("eth_chainId" in m for m in methods.values())  # answered by the router
    assert sum("eth_sendRawTransaction" in m for m in methods.values()) == 1


async def test_async_web3_deploys_and_calls_a_contract(
    chain: AnvilLockstep, router: RouterServer, http: aiohttp.ClientSession
) -> None:
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url(router), exception_retry_configuration=None))
    try:
        assert await w3.eth.chain_id == CHAIN_ID
        fees = ((await w3.eth.get_block("latest"))["baseFeePerGas"], await w3.eth.max_priority_fee)
        nonce = await w3.eth.get_transaction_count(DEV_ACCOUNT)
        raw = sign(fees, nonce, data=RETURNS_42_INIT)
        tx_hash = (await w3.eth.send_raw_transaction(raw)).to_0x_hex()
        assert len(await holders(chain, tx_hash)) == 1
        assert await chain.send_raw_to_all(raw) == tx_hash  # gossip: the other node gets it too
        await chain.mine()

        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=5, poll_latency=0.05)
        assert receipt["status"] == 1
        address = receipt["contractAddress"]
        answers = [await w3.eth.call({"to": address, "data": "0x"}) for _ in range(6)]
        assert {int.from_bytes(a, "big") for a in answers} == {42}
        assert bytes(await w3.eth.get_code(address)).hex() == "602a60005260206000f3"
    finally:
        await w3.provider.disconnect()

    # The router's own view: both nodes answered eth_call, and headers name the provider.
    served = set()
    for _ in range(4):
        status, body, resp = await rpc(
            http,
            rpc_url(router) + "?include_meta=headers",
            "eth_call",
            [{"to": address, "data": "0x"}, "latest"],
        )
        assert status == 200 and int(body["result"], 16) == 42
        served.add(resp.headers["X-Lasso-Provider"])
    assert served == {"node0", "node1"}
    methods = await provider_methods(http, router)
    assert all(m.get("eth_call") for m in methods.values())


async def test_reads_and_writes_survive_a_killed_anvil(
    chain: AnvilLockstep, router: RouterServer, http: aiohttp.ClientSession
) -> None:
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url(router), exception_retry_configuration=None))
    victim = chain[0]
    pid = victim.pid
    assert pid is not None
    results: list[int] = []
    finished: list[RequestFinished] = []
    router.router.bus.subscribe(
        lambda e: finished.append(e) if isinstance(e, RequestFinished) else None
    )

    async def client() -> None:
        for _ in range(60):
            results.append(await w3.eth.block_number)
            results.append(await w3.eth.get_balance(DEV_ACCOUNT) > 0)
            await asyncio.sleep(0.005)

    try:
        load = asyncio.create_task(client())
        await asyncio.sleep(0.1)
        before = len(results)
        await victim.stop()  # kill -9 mid-traffic
        assert not psutil.pid_exists(pid)
        await load  # every call succeeded: a failure would raise here
        assert 0 < before < 120 and len(results) == 120 and all(results)
        # Ground truth from the router: node0 served before the kill, and after it a call that
        # tried node0 failed over to node1 within the same client request.
        assert any(e.provider == "node0" for e in finished[:before])
        failed_over = [e for e in finished if len(e.attempts) > 1]
        assert failed_over and all(e.status == "ok" for e in finished)
        assert [a.provider for a in failed_over[0].attempts] == ["node0", "node1"]

        fees = ((await w3.eth.get_block("latest"))["baseFeePerGas"], await w3.eth.max_priority_fee)
        raw = sign(fees, 0, SECOND_KEY, to=RECIPIENT, value=5, gas=21_000)
        tx_hash = (await w3.eth.send_raw_transaction(raw)).to_0x_hex()
        assert await holders(chain, tx_hash) == ["anvil-1"]  # the survivor, exactly once
        await chain.mine()
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=5, poll_latency=0.05)
        assert receipt["status"] == 1
    finally:
        await w3.provider.disconnect()

    await chain.restart(victim)  # back on its port, chain replayed: the same hashes again
    head = await chain[1].rpc("eth_getBlockByNumber", ["latest", False])
    assert await victim.rpc("eth_getBlockByNumber", ["latest", False]) == head
    assert await victim.rpc("eth_getTransactionReceipt", [tx_hash]) == await chain[1].rpc(
        "eth_getTransactionReceipt", [tx_hash]
    )


async def test_lockstep_nodes_seal_identical_blocks() -> None:
    async with AnvilLockstep(2, chain_id=CHAIN_ID, binary=ANVIL) as chain:
        a, b = chain
        fees = (10**9, 10**9)
        t1 = sign(fees, 0, to=RECIPIENT, value=1, gas=21_000)
        t2 = sign(fees, 0, SECOND_KEY, to=RECIPIENT, value=2, gas=21_000)
        # Opposite arrival orders with equal fees: without gossip() anvil would order them
        # differently and the block hashes would differ.
        for node, order in ((a, (t1, t2)), (b, (t2, t1))):
            for raw in order:
                await node.rpc("eth_sendRawTransaction", [raw])
        block = await chain.mine()  # raises LockstepDiverged unless hashes match
        assert len(block["transactions"]) == 2
        for _ in range(2):
            await chain.mine()
        blocks = [
            [await n.rpc("eth_getBlockByNumber", [hex(i), False]) for i in range(4)] for n in chain
        ]
        assert blocks[0] == blocks[1]  # hashes, state roots, receipts roots, timestamps

        await b.stop()
        await chain.mine()  # the chain goes on without b
        await chain.restart(b)  # b starts from genesis and replays 4 blocks
        assert await b.rpc("eth_getBlockByNumber", ["0x4", False]) == await a.rpc(
            "eth_getBlockByNumber", ["0x4", False]
        )
        assert [s.number for s in chain.history] == [1, 2, 3, 4]


async def test_anvil_node_restarts_on_its_port_and_leaves_no_process() -> None:
    node = AnvilNode(chain_id=CHAIN_ID, binary=ANVIL)
    async with node:
        port, pid = node.port, node.pid
        assert pid is not None and port > 0
        assert node.url == f"http://127.0.0.1:{port}"
        assert int(await node.rpc("eth_chainId"), 16) == CHAIN_ID
        assert await node.mine(3) == 3  # automine node, explicit blocks too

        await node.stop()
        assert not node.running
        with pytest.raises(AnvilError):
            await node.rpc("eth_blockNumber")
        await node.start()
        assert node.port == port and node.pid != pid
        assert await node.block_number() == 0  # a restart is a fresh chain
        pid = node.pid
    assert pid is not None and not psutil.pid_exists(pid)
