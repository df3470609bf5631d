"""MockProvider and MockFleet over real sockets: what a router (or any client) sees."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from lasso_rpc.battle import FailureMode, MockFleet, MockProvider, SimulatedChain
from lasso_rpc.battle.providers.fleet import run_mock_fleet
from lasso_rpc.battle.providers.spec import Knobs
from lasso_rpc.clock import FakeClock
from lasso_rpc.config import load_config_text

ADDR = "0x" + "ab" * 20


@pytest.fixture
async def fleet() -> AsyncIterator[MockFleet]:
    chain = SimulatedChain(1, block_time_ms=0, clock=FakeClock())  # blocks only from mine()
    async with await MockFleet.start(2, chain=chain) as f:
        yield f


@pytest.fixture
def alpha(fleet: MockFleet) -> MockProvider:
    return fleet["alpha"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: object, timeout: float = 5.0
) -> tuple[int, bytes, dict[str, str]]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with http.post(url, data=data, headers=headers, timeout=client_timeout) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def rpc(
    http: aiohttp.ClientSession, url: str, method: str, params: list[Any] | None = None
) -> Any:
    status, body, _ = await post(
        http, url, {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []}
    )
    assert status == 200
    reply = orjson.loads(body)
    assert reply["id"] == 7 and reply["jsonrpc"] == "2.0"
    return reply


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait for a condition another task brings about (the mock exposes counters, not events)."""
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


async def result(http: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    reply = await rpc(http, url, method, list(params))
    assert "error" not in reply, reply
    return reply["result"]


async def error(http: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    reply = await rpc(http, url, method, list(params))
    assert "result" not in reply, reply
    return reply["error"]


# -- methods -----------------------------------------------------------------------------------


async def test_identity_methods(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    assert await result(http, alpha.url, "eth_blockNumber") == hex(alpha.chain.head_number)
    assert await result(http, alpha.url, "eth_chainId") == "0x1"
    assert await result(http, alpha.url, "net_version") == "1"
    assert "alpha" in await result(http, alpha.url, "web3_clientVersion")
    assert await result(http, alpha.url, "eth_syncing") is False
    assert int(await result(http, alpha.url, "eth_gasPrice"), 16) > 0


async def test_any_path_is_served(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    assert await result(http, alpha.url + "v2/SECRET", "eth_chainId") == "0x1"


async def test_get_block_by_number(fleet: MockFleet, http: aiohttp.ClientSession) -> None:
    url, chain = fleet["alpha"].url, fleet.chain
    head = chain.head_number
    latest = await result(http, url, "eth_getBlockByNumber", "latest", False)
    assert latest["hash"] == chain.head.hash and latest["number"] == hex(head)
    assert isinstance(latest["transactions"][0], str)
    by_number = await result(http, url, "eth_getBlockByNumber", hex(head - 3), True)
    assert by_number["hash"] == chain.block(head - 3).hash  # type: ignore[union-attr]
    assert by_number["transactions"][0]["blockNumber"] == hex(head - 3)
    assert (await result(http, url, "eth_getBlockByNumber", "earliest", False))["number"] == "0x0"
    for tag, number in [("pending", head), ("safe", head - 32), ("finalized", head - 64)]:
        block = await result(http, url, "eth_getBlockByNumber", tag, False)
        assert block["number"] == hex(number)
    assert await result(http, url, "eth_getBlockByNumber", hex(head + 1), False) is None
    assert (await error(http, url, "eth_getBlockByNumber", "0xzz", False))["code"] == -32602
    assert (await error(http, url, "eth_getBlockByNumber"))["code"] == -32602


async def test_every_provider_serves_the_same_chain(
    fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    fleet.chain.mine(2)
    blocks = [await result(http, p.url, "eth_getBlockByNumber", "latest", False) for p in fleet]
    assert blocks[0] == blocks[1]
    by_hash = await result(http, fleet["beta"].url, "eth_getBlockByHash", blocks[0]["hash"], False)
    assert by_hash == blocks[0]
    assert await result(http, fleet["beta"].url, "eth_getBlockByHash", "0x" + "00" * 32) is None


async def test_balance_nonce_code(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    chain = alpha.chain
    assert await result(http, alpha.url, "eth_getBalance", ADDR, "latest") == hex(
        chain.balance(ADDR)
    )
    assert await result(http, alpha.url, "eth_getTransactionCount", ADDR, "0x5") == hex(
        chain.nonce(ADDR)
    )
    assert await result(http, alpha.url, "eth_getCode", chain.contracts[0], "latest") != "0x"
    future = hex(chain.head_number + 1)
    assert await error(http, alpha.url, "eth_getBalance", ADDR, future) == {
        "code": -32000,
        "message": "header not found",
    }
    assert (await error(http, alpha.url, "eth_getBalance", "0x12", "latest"))["code"] == -32602


async def test_eth_call_is_deterministic_and_reverts_like_geth(
    fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    call = {"to": ADDR, "data": "0x70a08231" + "00" * 32}
    answers = {await result(http, p.url, "eth_call", call, "latest") for p in fleet}
    assert len(answers) == 1
    answer = answers.pop()
    assert answer.startswith("0x") and len(answer) == 66
    other = await result(http, fleet["alpha"].url, "eth_call", {"to": ADDR, "data": "0x01"})
    assert other != answer
    revert = await error(http, fleet["alpha"].url, "eth_call", {"to": ADDR, "data": "0xdeadbeef"})
    assert revert["code"] == 3 and revert["message"] == "execution reverted"
    assert revert["data"].startswith("0x08c379a0")
    gas = await result(http, fleet["alpha"].url, "eth_estimateGas", {"to": ADDR, "data": "0x01"})
    assert int(gas, 16) >= 21_000
    assert (await error(http, fleet["alpha"].url, "eth_call", "notanobject"))["code"] == -32602


async def test_get_logs_filters(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    chain = alpha.chain
    head = chain.head_number
    contract = chain.contracts[1]
    spec = {"fromBlock": hex(head - 9), "toBlock": "latest", "address": contract}
    logs = await result(http, alpha.url, "eth_getLogs", spec)
    assert logs and all(lg["address"] == contract for lg in logs)
    assert {int(lg["blockNumber"], 16) for lg in logs} <= set(range(head - 9, head + 1))
    assert logs == [lg.to_rpc() for lg in chain.logs(head - 9, head) if lg.address == contract]
    topic = logs[0]["topics"][0]
    by_topic = await result(
        http, alpha.url, "eth_getLogs", {"fromBlock": hex(head - 9), "topics": [topic]}
    )
    assert by_topic and all(lg["topics"][0] == topic for lg in by_topic)
    by_hash = await result(http, alpha.url, "eth_getLogs", {"blockHash": chain.head.hash})
    assert by_hash == [lg.to_rpc() for lg in chain.head.logs]
    both = {"blockHash": chain.head.hash, "fromBlock": "0x1"}
    assert (await error(http, alpha.url, "eth_getLogs", both))["code"] == -32602
    backwards = {"fromBlock": hex(head), "toBlock": hex(head - 1)}
    assert (await error(http, alpha.url, "eth_getLogs", backwards))["code"] == -32602
    bad = {"address": "0x1"}
    assert (await error(http, alpha.url, "eth_getLogs", bad))["code"] == -32602


async def test_raw_transactions_and_receipts(fleet: MockFleet, http: aiohttp.ClientSession) -> None:
    url = fleet["alpha"].url
    tx_hash = await result(http, url, "eth_sendRawTransaction", "0xf86c0a8502540be400")
    assert await result(http, url, "eth_getTransactionReceipt", tx_hash) is None
    again = await error(http, fleet["beta"].url, "eth_sendRawTransaction", "0xf86c0a8502540be400")
    assert again == {"code": -32000, "message": "already known"}
    block = fleet.chain.mine()
    receipt = await result(http, fleet["beta"].url, "eth_getTransactionReceipt", tx_hash)
    assert receipt["blockHash"] == block.hash and receipt["status"] == "0x1"
    tx = await result(http, url, "eth_getTransactionByHash", tx_hash)
    assert tx["hash"] == tx_hash and tx["blockNumber"] == hex(block.number)
    assert (await error(http, url, "eth_sendRawTransaction", "nothex"))["code"] == -32602


async def test_unknown_and_unsupported_methods(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    assert await error(http, alpha.url, "debug_traceTransaction", "0x00") == {
        "code": -32601,
        "message": "the method debug_traceTransaction does not exist/is not available",
    }
    alpha.set_unsupported(["eth_getLogs"])
    assert (await error(http, alpha.url, "eth_getLogs", {}))["code"] == -32601
    assert (await error(http, alpha.url, "eth_subscribe", "newHeads"))["code"] == -32601


async def test_envelope_errors(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, alpha.url, b"{not json")
    assert status == 200
    assert orjson.loads(body)["error"]["code"] == -32700
    assert orjson.loads((await post(http, alpha.url, []))[1])["error"] == {
        "code": -32600,
        "message": "empty batch",
    }
    invalid = orjson.loads((await post(http, alpha.url, {"id": 3, "jsonrpc": "2.0"}))[1])
    assert invalid["id"] == 3 and invalid["error"]["code"] == -32600
    named = {"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": {"a": 1}}
    assert orjson.loads((await post(http, alpha.url, named))[1])["error"]["code"] == -32602


async def test_batch_answers_in_order_and_skips_notifications(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "nope_nope"},
        {"jsonrpc": "2.0", "id": None, "method": "net_version", "params": []},
        5,
    ]
    status, body, _ = await post(http, alpha.url, batch)
    replies = orjson.loads(body)
    assert status == 200
    assert [r["id"] for r in replies] == ["a", 2, None, None]
    assert replies[0]["result"] == "0x1"
    assert replies[1]["error"]["code"] == -32601
    assert replies[2]["result"] == "1"
    assert replies[3]["error"]["code"] == -32600
    assert alpha.requests_total == 1 and alpha.requests_received == 5
    status, body, _ = await post(http, alpha.url, {"jsonrpc": "2.0", "method": "eth_chainId"})
    assert status == 200 and body == b""


async def test_counters(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    await result(http, alpha.url, "eth_chainId")
    await result(http, alpha.url, "eth_chainId")
    await post(http, alpha.url, [{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}] * 3)
    await post(http, alpha.url, b"garbage")
    assert alpha.method_counts == {"eth_chainId": 2, "eth_blockNumber": 3, "<invalid>": 1}
    assert (alpha.requests_total, alpha.requests_received) == (4, 6)
    alpha.reset_counters()
    assert alpha.method_counts == {} and alpha.requests_total == alpha.requests_received == 0


# -- knobs -------------------------------------------------------------------------------------


async def test_http_error_statuses(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    alpha.set_failure(FailureMode.HTTP_500)
    assert (await post(http, alpha.url, {"id": 1, "method": "eth_chainId"}))[0] == 500
    alpha.configure(http_status=503)
    assert (await post(http, alpha.url, {"id": 1, "method": "eth_chainId"}))[0] == 503
    alpha.heal()
    assert await result(http, alpha.url, "eth_chainId") == "0x1"
    assert alpha.failures_injected == 2


async def test_jsonrpc_error_mode_fails_every_batch_item(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    alpha.configure(failure_mode="jsonrpc_error")
    assert await error(http, alpha.url, "eth_chainId") == {
        "code": -32603,
        "message": "mock failure",
    }
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in (1, 2)]
    replies = orjson.loads((await post(http, alpha.url, batch))[1])
    assert [(r["id"], r["error"]["code"]) for r in replies] == [(1, -32603), (2, -32603)]


async def test_rate_limit_mode(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    alpha.configure(failure_mode=FailureMode.RATE_LIMIT, retry_after_s=3)
    status, body, headers = await post(
        http, alpha.url, {"jsonrpc": "2.0", "id": 9, "method": "eth_chainId"}
    )
    assert status == 429 and headers["Retry-After"] == "3"
    assert orjson.loads(body) == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {"code": -32005, "message": "rate limit exceeded"},
    }


async def test_hang_until_client_gives_up_then_answers_after_heal(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    alpha.set_failure(FailureMode.HANG)
    with pytest.raises(asyncio.TimeoutError):
        await post(http, alpha.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, 0.2)
    pending = asyncio.create_task(result(http, alpha.url, "eth_blockNumber"))
    await eventually(lambda: "eth_blockNumber" in alpha.method_counts)
    assert not pending.done()
    alpha.heal()  # a hung request is released by a mode change and answered normally
    assert await asyncio.wait_for(pending, 5) == hex(alpha.chain.head_number)


async def test_reset_mode_drops_the_connection(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    alpha.set_failure(FailureMode.RESET)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(http, alpha.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    alpha.heal()
    assert await result(http, alpha.url, "eth_chainId") == "0x1"


async def test_malformed_and_wrong_id_modes(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    alpha.set_failure(FailureMode.MALFORMED)
    status, body, _ = await post(
        http, alpha.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    )
    assert status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    alpha.set_failure(FailureMode.WRONG_ID)
    _, body, _ = await post(http, alpha.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    reply = orjson.loads(body)
    assert reply["id"] != 1 and reply["result"] == "0x1"


async def test_error_rate_fails_a_fraction(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    alpha.configure(error_rate=0.5)  # mode NONE: failures are HTTP 500
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    statuses = [(await post(http, alpha.url, body))[0] for _ in range(40)]
    assert set(statuses) == {200, 500}
    assert alpha.failures_injected == statuses.count(500)
    alpha.configure(error_rate=0.0, failure_mode=FailureMode.JSONRPC_ERROR)
    assert all([(await post(http, alpha.url, body))[0] == 200 for _ in range(5)])
    assert alpha.failures_injected == statuses.count(500)


async def test_latency_delays_answers(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    alpha.set_latency(120, jitter_ms=10)
    started = time.monotonic()
    await result(http, alpha.url, "eth_chainId")
    assert time.monotonic() - started >= 0.11


async def test_lagging_provider_serves_an_older_head(
    fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    alpha, beta, chain = fleet["alpha"], fleet["beta"], fleet.chain
    alpha.set_lag(5)
    head = chain.head_number
    assert await result(http, alpha.url, "eth_blockNumber") == hex(head - 5)
    assert await result(http, beta.url, "eth_blockNumber") == hex(head)
    latest = await result(http, alpha.url, "eth_getBlockByNumber", "latest", False)
    assert latest["number"] == hex(head - 5)
    assert await result(http, alpha.url, "eth_getBlockByNumber", hex(head), False) is None
    assert await result(http, alpha.url, "eth_getBlockByHash", chain.head.hash, False) is None
    # Like geth: its "latest" (head - 5) lies before fromBlock, an invalid range to it.
    beyond = await error(http, alpha.url, "eth_getLogs", {"fromBlock": hex(head - 3)})
    assert beyond == {"code": -32602, "message": "invalid block range params"}
    logs = await result(
        http, alpha.url, "eth_getLogs", {"fromBlock": hex(head - 7), "toBlock": hex(head)}
    )
    assert {int(lg["blockNumber"], 16) for lg in logs} == {head - 7, head - 6, head - 5}
    assert (await error(http, alpha.url, "eth_getBalance", ADDR, hex(head)))["code"] == -32000


def test_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown knob"):
        Knobs().with_changes(latency=5)
    with pytest.raises(ValueError):
        Knobs(error_rate=1.5)
    with pytest.raises(ValueError):
        Knobs(failure_mode="explode")  # type: ignore[arg-type]
    assert Knobs(failure_mode="hang").failure_mode is FailureMode.HANG  # type: ignore[arg-type]
    assert Knobs(unsupported_methods=["a"]).unsupported_methods == frozenset({"a"})  # type: ignore[arg-type]


async def test_configure_returns_previous_knobs_and_heal_restores_the_baseline() -> None:
    chain = SimulatedChain(block_time_ms=0, clock=FakeClock())
    provider = MockProvider(chain, "solo", latency_ms=10)
    before = provider.configure(lag_blocks=3)
    assert before == Knobs(latency_ms=10)
    assert provider.knobs == Knobs(latency_ms=10, lag_blocks=3)
    provider.heal()
    assert provider.knobs == Knobs(latency_ms=10)
    assert "solo" in repr(provider) and "state=new" in repr(provider)


# -- lifecycle ---------------------------------------------------------------------------------


async def test_stop_refuses_connections_and_start_reuses_the_port(
    alpha: MockProvider, http: aiohttp.ClientSession
) -> None:
    port = alpha.port
    alpha.set_failure(FailureMode.HANG)
    hung = asyncio.create_task(result(http, alpha.url, "eth_chainId"))
    await eventually(lambda: alpha.requests_total == 1)
    await alpha.stop()
    assert alpha.state == "stopped"
    with pytest.raises(aiohttp.ClientConnectionError):
        await hung  # an in-flight request dies with the process
    with pytest.raises(aiohttp.ClientConnectorError):
        await result(http, alpha.url, "eth_chainId")
    await alpha.start()
    alpha.heal()
    assert alpha.port == port and alpha.state == "running"
    assert await result(http, alpha.url, "eth_chainId") == "0x1"
    assert f"port={port}" in repr(alpha) and "running" in repr(alpha)


async def test_closing_leaves_no_tasks_behind(http: aiohttp.ClientSession) -> None:
    chain = SimulatedChain(block_time_ms=0, clock=FakeClock())
    fleet = await MockFleet.start({"one": {"failure_mode": "hang"}}, chain=chain)
    one = fleet["one"]
    with pytest.raises(asyncio.TimeoutError):
        await post(http, one.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, 0.1)
    hung = asyncio.create_task(result(http, one.url, "eth_chainId"))
    ws = await http.ws_connect(one.ws_url)
    await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    await eventually(lambda: one.requests_total == 3)
    await fleet.aclose()
    with pytest.raises(aiohttp.ClientConnectionError):
        await hung
    assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE)
    await ws.close()
    assert one.state == "closed"
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []


# -- fleet and config --------------------------------------------------------------------------


async def test_fleet_ids_access_and_config(fleet: MockFleet) -> None:
    assert fleet.ids == ["alpha", "beta"] and len(fleet) == 2
    assert [p.id for p in fleet] == ["alpha", "beta"]
    text = fleet.config_yaml(profile_slug="mock", chain_name="ethereum", strategy="fastest")
    config = load_config_text([("mock.yaml", text)])
    profile = config.profiles["mock"]
    assert profile.routing.default_strategy == "fastest"
    chain = profile.chains["ethereum"]
    assert chain.chain_id == 1
    assert [(p.id, p.url, p.ws_url) for p in chain.providers] == [
        (p.id, p.url, p.ws_url) for p in fleet
    ]


async def test_fleet_spec_from_mock_provider() -> None:
    spec = MockProvider.fleet(3, alpha={"latency_ms": 50}, block_time_ms=0)
    assert spec.ids == ["alpha", "beta", "gamma"]
    with pytest.raises(ValueError):
        MockProvider.fleet(alpha={"nope": 1})
    async with await MockFleet.start(spec) as fleet:
        assert fleet["alpha"].knobs.latency_ms == 50
        assert fleet["gamma"].knobs == Knobs()
        assert "alpha" in repr(fleet)


async def test_fleet_produces_blocks_on_its_own(http: aiohttp.ClientSession) -> None:
    async with await MockFleet.start(1, block_time_ms=20) as fleet:
        first = int(await result(http, fleet["alpha"].url, "eth_blockNumber"), 16)
        await eventually(lambda: fleet.chain.head_number >= first + 2)
        assert int(await result(http, fleet["alpha"].url, "eth_blockNumber"), 16) >= first + 2


async def test_run_mock_fleet_prints_a_ready_config(http: aiohttp.ClientSession) -> None:
    out = io.StringIO()
    task = asyncio.create_task(run_mock_fleet(3, block_time_ms=50, out=out))
    await eventually(lambda: "chains" in out.getvalue())
    config = load_config_text([("mock.yaml", out.getvalue())])
    providers = config.profiles["local"].chains["ethereum"].providers
    assert [p.id for p in providers] == ["alpha", "beta", "gamma"]
    assert await result(http, providers[2].url, "eth_chainId") == "0x1"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectorError):
        await result(http, providers[0].url, "eth_chainId")


# -- WebSocket ---------------------------------------------------------------------------------


async def ws_call(ws: aiohttp.ClientWebSocketResponse, method: str, *params: Any) -> Any:
    await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    return await ws.receive_json(timeout=5)


async def test_ws_unary_calls_and_new_heads(fleet: MockFleet, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(fleet["alpha"].ws_url) as ws:
        assert (await ws_call(ws, "eth_chainId"))["result"] == "0x1"
        sub = (await ws_call(ws, "eth_subscribe", "newHeads"))["result"]
        block = fleet.chain.mine()
        note = await ws.receive_json(timeout=5)
        assert note["method"] == "eth_subscription"
        assert note["params"]["subscription"] == sub
        assert note["params"]["result"]["hash"] == block.hash
        assert note["params"]["result"]["number"] == hex(block.number)
        new = fleet.chain.reorg(1)[0]
        note = await ws.receive_json(timeout=5)
        assert note["params"]["result"]["hash"] == new.hash
        assert note["params"]["result"]["number"] == hex(block.number)
        assert (await ws_call(ws, "eth_unsubscribe", sub))["result"] is True
        fleet.chain.mine()
        # Replies and notifications share one FIFO: the next message is the reply.
        assert (await ws_call(ws, "eth_unsubscribe", sub))["result"] is False


async def test_ws_logs_subscription_filters_and_marks_removed(
    fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    contract = fleet.chain.contracts[2]
    async with http.ws_connect(fleet["beta"].ws_url) as ws:
        reply = await ws_call(ws, "eth_subscribe", "logs", {"address": contract})
        sub = reply["result"]
        expected: list[Any] = []
        while not expected:
            block = fleet.chain.mine()
            expected = [lg.to_rpc() for lg in block.logs if lg.address == contract]
        got = [(await ws.receive_json(timeout=5))["params"] for _ in expected]
        assert all(p["subscription"] == sub for p in got)
        assert [p["result"] for p in got] == expected
        new = fleet.chain.reorg(1)[0]
        removed = [(await ws.receive_json(timeout=5))["params"]["result"] for _ in expected]
        assert all(r["removed"] is True for r in removed)
        assert [r["blockHash"] for r in removed] == [block.hash] * len(expected)
        again = [(await ws.receive_json(timeout=5))["params"]["result"] for _ in expected]
        assert {r["blockHash"] for r in again} == {new.hash}
        bad = await ws_call(ws, "eth_subscribe", "logs", {"address": "0x1"})
        assert bad["error"]["code"] == -32602
        assert (await ws_call(ws, "eth_subscribe", "syncing"))["error"]["code"] == -32602


async def test_ws_lagging_provider_delivers_older_heads(
    fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    alpha = fleet["alpha"]
    before = fleet.chain.head_number
    alpha.set_lag(2)  # falls behind: never re-sends a head it already announced
    async with http.ws_connect(alpha.ws_url) as ws:
        await ws_call(ws, "eth_subscribe", "newHeads")
        head = fleet.chain.mine(3).number
        note = await ws.receive_json(timeout=5)
        assert note["params"]["result"]["number"] == hex(head - 2) == hex(before + 1)
        alpha.set_lag(0)  # catches up without a gap
        fleet.chain.mine()
        numbers = [(await ws.receive_json(timeout=5))["params"]["result"]["number"] for _ in "123"]
        assert numbers == [hex(n) for n in range(head - 1, head + 2)]


async def test_ws_failure_modes(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(alpha.ws_url) as ws:
        alpha.set_failure(FailureMode.JSONRPC_ERROR)
        assert (await ws_call(ws, "eth_chainId"))["error"]["code"] == -32603
        alpha.set_failure(FailureMode.WRONG_ID)
        assert (await ws_call(ws, "eth_chainId"))["id"] != 1
        alpha.set_failure(FailureMode.MALFORMED)
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        with pytest.raises(ValueError):
            await ws.receive_json(timeout=5)
        alpha.set_failure(FailureMode.HTTP_500)
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1011
    alpha.set_failure(FailureMode.RESET)
    async with http.ws_connect(alpha.ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_drop_websockets(alpha: MockProvider, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(alpha.ws_url) as ws1, http.ws_connect(alpha.url + "x") as ws2:
        await ws_call(ws1, "eth_chainId")
        await ws_call(ws2, "eth_chainId")
        assert alpha.ws_connections == 2
        assert await alpha.drop_websockets() == 2
        assert alpha.ws_connections == 0
        for ws in (ws1, ws2):
            assert (await ws.receive(timeout=5)).type in (
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            )
    async with http.ws_connect(alpha.ws_url) as ws:  # new connections are welcome
        assert (await ws_call(ws, "eth_chainId"))["result"] == "0x1"
