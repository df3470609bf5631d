"""Request shaping end to end: router + mock providers on one simulated chain (real sockets).

Upstream calls are counted at the mock providers (``method_counts``), never taken from the
router's own word.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.server.app import RouterServer
from lasso_rpc.shaping.testing import reorg_safety
from tests.conftest import RouterFactory, rpc

pytestmark = pytest.mark.asyncio

CACHE = {"cache": {"enabled": True}}
QUIET = {"head_poll_ms": 60_000}  # one head poll at start, none during the test


def upstream(fleet: MockFleet, method: str) -> int:
    return sum(p.method_counts.get(method, 0) for p in fleet)


def reset(fleet: MockFleet) -> None:
    for p in fleet:
        p.reset_counters()


async def ready(server: RouterServer) -> None:
    """Until every provider answered the first head poll (and the cache knows the finalized
    block)."""
    for _ in range(200):
        chains = server.router.chains()
        caches = [s.cache for s in server.router.shaper.chains() if s.cache is not None]
        if all(p.head is not None for c in chains for p in c.providers.values()) and all(
            c.ledger.tag_supported is not None for c in caches
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no head poll answered")


async def call(
    http: aiohttp.ClientSession,
    server: RouterServer,
    method: str,
    params: Any,
    *,
    id: Any = 1,
    headers: dict[str, str] | None = None,
) -> tuple[Any, str | None]:
    url = server.url + "/rpc/ethereum?include_meta=headers"
    _, body, resp = await rpc(http, url, method, params, id=id, headers=headers)
    return body, resp.headers.get("X-Lasso-Cache")


async def test_a_finalized_block_goes_upstream_once(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_router(routing=QUIET, extra=CACHE)
    await ready(server)
    reset(fleet)
    first, status = await call(http, server, "eth_getBlockByNumber", ["0x10", False])
    assert status == "MISS"
    assert first["result"]["hash"] == fleet.chain.block(16).hash  # type: ignore[union-attr]
    for i in range(5):
        again, status = await call(http, server, "eth_getBlockByNumber", ["0x10", False], id=i)
        assert status == "HIT" and again["id"] == i and again["result"] == first["result"]
    assert upstream(fleet, "eth_getBlockByNumber") == 1
    # The bypass header skips the read (and refreshes the entry).
    _, status = await call(
        http, server, "eth_getBlockByNumber", ["0x10", False], headers={"X-Lasso-Cache-Bypass": "1"}
    )
    assert status == "BYPASS" and upstream(fleet, "eth_getBlockByNumber") == 2


async def test_errors_nulls_and_lagging_providers_are_never_cached(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_router(routing=QUIET, extra=CACHE)
    await ready(server)
    reset(fleet)
    beyond = hex(fleet.chain.head_number + 50)
    for _ in range(2):
        body, status = await call(http, server, "eth_getBlockByNumber", [beyond, False])
        assert body["result"] is None and status == "MISS"
    revert = [{"to": "0x" + "11" * 20, "data": "0xdeadbeef"}, "0x10"]
    for _ in range(2):
        body, status = await call(http, server, "eth_call", revert)
        assert body["error"]["code"] == 3 and status == "MISS"
    assert upstream(fleet, "eth_getBlockByNumber") == 2
    assert upstream(fleet, "eth_call") == 2


async def test_lagging_answers_are_not_kept(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    fleet["alpha"].configure(lag_blocks=2)
    fleet["beta"].configure(lag_blocks=2)
    fleet["gamma"].configure(lag_blocks=2)
    server = await make_router(
        routing={"head_poll_ms": 100, "default_strategy": "priority"}, extra=CACHE
    )
    await ready(server)
    fleet["beta"].configure(lag_blocks=0)  # beta leads: alpha and gamma lag by 2
    for _ in range(100):
        if server.router.chains()[0].providers["alpha"].lag == 2:
            break
        await asyncio.sleep(0.02)
    reset(fleet)
    url = server.url + "/rpc/provider/alpha/ethereum?include_meta=headers"
    for _ in range(2):  # pinned to the lagging alpha: answered, never cached
        _, body, _ = await rpc(http, url, "eth_getBlockByNumber", ["0x10", False])
        assert body["result"]["number"] == "0x10"
    assert fleet["alpha"].method_counts["eth_getBlockByNumber"] == 2


async def test_hundred_clients_asking_for_latest_at_once_make_one_upstream_call(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    for p in fleet:
        p.configure(latency_ms=100)
    server = await make_router(routing=QUIET)  # dedup is on by default, no cache needed
    await ready(server)
    reset(fleet)
    replies = await asyncio.gather(
        *(call(http, server, "eth_getBlockByNumber", ["latest", False], id=i) for i in range(100))
    )
    assert upstream(fleet, "eth_getBlockByNumber") == 1
    assert sorted(r[0]["id"] for r in replies) == list(range(100))  # each its own id
    assert len({orjson.dumps(r[0]["result"]) for r in replies}) == 1
    text = await (await http.get(server.url + "/metrics")).text()
    assert 'lasso_dedup_coalesced_total{chain="ethereum"} 99.0' in text


async def test_a_reorg_is_never_served_from_the_cache(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """Block, receipt and logs of a recent (unfinalized) block are cached; the chain reorgs;
    the very next answers are the new chain's (head_check_ms 0: no window at all)."""
    server = await make_router(
        routing={"head_poll_ms": 100}, extra={"cache": {"enabled": True, "head_check_ms": 0}}
    )
    await ready(server)
    chain = fleet.chain
    tx = chain.send_raw_transaction("0xf86c0a85")
    chain.mine(2)
    n = chain.head_number - 1  # holds tx
    old = chain.block(n)
    assert old is not None and any(t.hash == tx for t in old.txs)
    logs = [{"fromBlock": hex(n), "toBlock": hex(n)}]
    for _ in range(2):
        block, _ = await call(http, server, "eth_getBlockByNumber", [hex(n), False])
        receipt, _ = await call(http, server, "eth_getTransactionReceipt", [tx])
        got, status = await call(http, server, "eth_getLogs", logs)
    assert status == "HIT"
    assert block["result"]["hash"] == old.hash and receipt["result"]["blockHash"] == old.hash
    assert {lg["blockHash"] for lg in got["result"]} == {old.hash}

    chain.reorg(3)
    new = chain.block(n)
    assert new is not None and new.hash != old.hash
    block, _ = await call(http, server, "eth_getBlockByNumber", [hex(n), False])
    receipt, _ = await call(http, server, "eth_getTransactionReceipt", [tx])
    got, _ = await call(http, server, "eth_getLogs", logs)
    assert block["result"]["hash"] == new.hash
    assert receipt["result"]["blockHash"] == new.hash  # included again, in the new block
    assert {lg["blockHash"] for lg in got["result"]} == {new.hash}
    text = await (await http.get(server.url + "/metrics")).text()
    assert 'lasso_chain_reorgs_total{chain="ethereum"} 1.0' in text


async def test_with_reorg_safety_off_the_old_block_is_served(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """The test mode the battle uses to prove its stale-answer count can fail."""
    server = await make_router(
        routing={"head_poll_ms": 100}, extra={"cache": {"enabled": True, "head_check_ms": 0}}
    )
    await ready(server)
    n = fleet.chain.head_number - 1
    old = fleet.chain.block(n)
    assert old is not None
    with reorg_safety(False):
        await call(http, server, "eth_getBlockByNumber", [hex(n), False])
        fleet.chain.reorg(3)
        block, status = await call(http, server, "eth_getBlockByNumber", [hex(n), False])
    assert status == "HIT" and block["result"]["hash"] == old.hash


async def test_get_logs_over_the_providers_limit_is_split_and_merged_in_order(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    for p in fleet:
        p.configure(max_logs_range=10)
    limits = {pid: {"logs_max_block_range": 10} for pid in ("alpha", "beta", "gamma")}
    server = await make_router(routing=QUIET, providers=limits)
    await ready(server)
    lo, hi = 20, 86  # 67 blocks: 7 pieces
    flt = [{"fromBlock": hex(lo), "toBlock": hex(hi)}]
    body, _ = await call(http, server, "eth_getLogs", flt)
    truth = [lg.to_rpc() for lg in fleet.chain.logs(lo, hi)]
    assert body["result"] == truth and len(truth) > 100
    assert upstream(fleet, "eth_getLogs") == 7
    # The same when no limit is configured: the refusals make the router halve the range.
    reset(fleet)
    server2 = await make_router(routing=QUIET)
    await ready(server2)
    body, _ = await call(http, server2, "eth_getLogs", flt)
    assert body["result"] == truth


async def test_get_logs_over_the_hard_maximum_is_refused_clearly(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_router(routing={**QUIET, "shaping": {"logs_max_block_range": 50}})
    await ready(server)
    reset(fleet)
    body, _ = await call(http, server, "eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x64"}])
    assert body["error"]["code"] == -32602
    assert "100 blocks exceeds this chain's limit of 50" in body["error"]["message"]
    assert upstream(fleet, "eth_getLogs") == 0


async def test_block_number_never_goes_backwards_across_lagging_providers(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    fleet["beta"].configure(lag_blocks=1)
    server = await make_router(routing={"head_poll_ms": 100, "default_strategy": "round-robin"})
    await ready(server)
    seen = []
    for i in range(30):
        body, _ = await call(http, server, "eth_blockNumber", [], id=i)
        seen.append(int(body["result"], 16))
    assert seen == sorted(seen)
    assert max(seen) == fleet.chain.head_number
    assert fleet["beta"].method_counts.get("eth_blockNumber", 0) > 0  # the lagging one answered


async def test_cache_over_websocket_and_in_metrics(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_router(routing=QUIET, extra=CACHE)
    await ready(server)
    reset(fleet)
    async with http.ws_connect(server.url + "/ws/rpc/ethereum") as ws:
        for i in range(3):
            await ws.send_bytes(
                orjson.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": i,
                        "method": "eth_getBlockByNumber",
                        "params": ["0x11", False],
                    }
                )
            )
            reply = orjson.loads((await ws.receive()).data)
            assert reply["id"] == i and reply["result"]["number"] == "0x11"
    assert upstream(fleet, "eth_getBlockByNumber") == 1
    text = await (await http.get(server.url + "/metrics")).text()
    assert 'lasso_cache_hits_total{chain="ethereum",finality="finalized"} 2.0' in text
    # The bypass header on the handshake holds for every call on that socket.
    bypass = {"X-Lasso-Cache-Bypass": "1"}
    async with http.ws_connect(server.url + "/ws/rpc/ethereum", headers=bypass) as ws:
        for i in range(2):
            msg = {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_getBlockByNumber",
                "params": ["0x11", False],
            }
            await ws.send_bytes(orjson.dumps(msg))
            assert orjson.loads((await ws.receive()).data)["result"]["number"] == "0x11"
    assert upstream(fleet, "eth_getBlockByNumber") == 3
    assert 'lasso_cache_misses_total{chain="ethereum",finality="finalized"} 1.0' in text
    assert 'lasso_cache_bytes{profile="local"}' in text


async def test_old_state_goes_to_the_archive_provider_while_it_is_usable(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    server = await make_router(
        routing={"head_poll_ms": 100, "default_strategy": "round-robin"},
        providers={"alpha": {"archive": True}},
    )
    await ready(server)
    addr = "0x" + "33" * 20
    old, recent = hex(fleet.chain.head_number - 129), hex(fleet.chain.head_number - 2)
    reset(fleet)
    for i in range(12):
        await call(http, server, "eth_getBalance", [addr, old], id=i)
    assert fleet["alpha"].method_counts["eth_getBalance"] == 12
    reset(fleet)
    for i in range(12):
        await call(http, server, "eth_getBalance", [addr, recent], id=i)
    assert all(p.method_counts.get("eth_getBalance", 0) == 4 for p in fleet)  # spread
    server.router.cordon("ethereum", "alpha", True)  # no archive left: everyone again
    reset(fleet)
    for i in range(6):
        body, _ = await call(http, server, "eth_getBalance", [addr, old], id=i)
        assert "result" in body
    assert fleet["alpha"].method_counts.get("eth_getBalance", 0) == 0
