"""Every chaos action on a live MockFleet (and the router): the effect shows, then goes away.

Each action runs on a short timeline (at 0.1 s, for 0.3 s or so). Probes wait for the injection
record instead of guessing times, and only generous time bounds are asserted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.chaos.base import ChaosAction
from lasso_rpc.battle.chaos.basic_context import BasicChaosContext, http_control
from lasso_rpc.battle.chaos.factory import Chaos
from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.faults import Faults
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.mock import MockProvider
from lasso_rpc.battle.providers.spec import Knobs
from lasso_rpc.observability.events import ChaosEvent, Event
from tests.conftest import RouterFactory, rpc

pytestmark = pytest.mark.chaos


@pytest.fixture
async def fresh() -> AsyncIterator[aiohttp.ClientSession]:
    """A client without keep-alive: every request opens a new connection."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def call(
    session: aiohttp.ClientSession,
    url: str,
    method: str = "eth_blockNumber",
    *,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
    async with session.post(
        url,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as r:
        raw = await r.read()
        return r.status, orjson.loads(raw) if r.status == 200 else raw


class Live:
    """Runs one action in the background; ``injected()`` waits for its first record."""

    def __init__(self, ctx: BasicChaosContext, action: ChaosAction) -> None:
        self.ctx, self.action = ctx, action
        ctx.restart_clock()
        self.task = asyncio.create_task(action.run(ctx))

    async def injected(self, n: int = 1) -> None:
        await until(lambda: sum(not r for _, r in self.ctx.records) >= n or self.task.done())
        if self.task.done():
            self.task.result()  # surfaces an error

    async def done(self) -> None:
        await asyncio.wait_for(self.task, 10.0)
        timeline = self.ctx.timeline()
        assert timeline and all(r.end_s is not None for r in timeline), timeline


async def test_kill_provider_refuses_then_restarts_on_the_same_port(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    alpha = fleet["alpha"]
    port = alpha.port
    live = Live(BasicChaosContext.for_fleet(fleet), Chaos.kill_provider("alpha", 0.1, 0.3))
    await live.injected()
    with pytest.raises(aiohttp.ClientConnectorError):
        await call(fresh, alpha.url)
    assert (await call(fresh, fleet["beta"].url))[0] == 200  # the others are untouched
    await live.done()
    assert alpha.state == "running" and alpha.port == port
    assert (await call(fresh, alpha.url))[0] == 200
    (rec,) = live.ctx.timeline()
    assert rec.action == "kill_provider" and rec.target == "alpha"
    assert rec.end_s is not None and rec.end_s - rec.at_s >= 0.3


async def test_flap_provider_goes_down_and_up_count_times(fleet: MockFleet) -> None:
    gamma = fleet["gamma"]
    states: list[str] = []
    live = Live(
        BasicChaosContext.for_fleet(fleet),
        Chaos.flap_provider("gamma", down_s=0.15, up_s=0.15, count=2, at_s=0.1),
    )
    while not live.task.done():
        if not states or states[-1] != gamma.state:
            states.append(gamma.state)
        await asyncio.sleep(0.005)
    await live.done()
    assert states == ["running", "stopped", "running", "stopped", "running"][: len(states)]
    assert len(states) >= 4 and gamma.state == "running"
    assert [r.details["cycle"] for r in live.ctx.timeline()] == [1, 2]


async def test_degrade_provider_slows_answers_then_restores_the_knobs(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    alpha = fleet["alpha"]
    alpha.set_latency(5.0, 1.0)
    before = alpha.knobs
    live = Live(BasicChaosContext.for_fleet(fleet), Chaos.degrade_provider("alpha", 250, 0.1, 0.4))
    await live.injected()
    t0 = time.monotonic()
    assert (await call(fresh, alpha.url))[0] == 200
    assert time.monotonic() - t0 >= 0.25
    await live.done()
    assert alpha.knobs == before
    t0 = time.monotonic()
    await call(fresh, alpha.url)
    assert time.monotonic() - t0 < 0.25


async def test_inject_latency_goes_through_the_fault_proxy(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    beta = fleet["beta"]
    async with FaultProxy("127.0.0.1", beta.port) as proxy:
        ctx = BasicChaosContext(mocks=fleet.providers, proxies={"beta": proxy})
        live = Live(ctx, Chaos.inject_latency("beta", 300, at_s=0.1, duration_s=0.5))
        await live.injected()
        assert proxy.faults.latency_ms == 150 and beta.knobs == Knobs()  # half each way
        t0 = time.monotonic()
        assert (await call(fresh, proxy.url))[0] == 200
        assert time.monotonic() - t0 >= 0.3
        await live.done()
        assert proxy.faults == Faults()
        t0 = time.monotonic()
        await call(fresh, proxy.url)
        assert time.monotonic() - t0 < 0.3


async def test_inject_latency_without_a_proxy_adds_to_the_mock_latency(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    alpha = fleet["alpha"]
    alpha.set_latency(50.0)
    live = Live(BasicChaosContext.for_fleet(fleet), Chaos.inject_latency("alpha", 200, 0.1, 0.3))
    await live.injected()
    assert alpha.knobs.latency_ms == 250
    await live.done()
    assert alpha.knobs == Knobs(latency_ms=50.0)


async def test_error_rate_fails_requests_then_stops(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    alpha = fleet["alpha"]
    live = Live(
        BasicChaosContext.for_fleet(fleet),
        Chaos.error_rate("alpha", 1.0, 0.1, 0.3, http_status=503),
    )
    await live.injected()
    assert [(await call(fresh, alpha.url))[0] for _ in range(3)] == [503] * 3
    await live.done()
    assert [(await call(fresh, alpha.url))[0] for _ in range(3)] == [200] * 3
    assert alpha.knobs == Knobs()


async def test_error_rate_with_a_json_rpc_mode(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    live = Live(
        BasicChaosContext.for_fleet(fleet),
        Chaos.error_rate("beta", 1.0, 0.1, 0.3, mode="rate_limit"),
    )
    await live.injected()
    status, _ = await call(fresh, fleet["beta"].url)
    assert status == 429
    await live.done()


async def test_blackhole_on_a_mock_hangs_requests_until_reverted(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    alpha = fleet["alpha"]
    live = Live(BasicChaosContext.for_fleet(fleet), Chaos.blackhole("alpha", 0.1, 0.5))
    await live.injected()
    with pytest.raises(TimeoutError):
        await call(fresh, alpha.url, timeout=0.2)
    await live.done()
    assert (await call(fresh, alpha.url))[0] == 200


async def test_blackhole_on_a_real_node_uses_the_proxy(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    gamma = fleet["gamma"]  # stands in for a real node: the context knows only its proxy
    async with FaultProxy("127.0.0.1", gamma.port) as proxy:
        ctx = BasicChaosContext(proxies={"gamma": proxy})
        before = gamma.requests_total
        live = Live(ctx, Chaos.blackhole("gamma", 0.1, 0.5))
        await live.injected()
        with pytest.raises(TimeoutError):
            await call(fresh, proxy.url, timeout=0.2)
        assert gamma.requests_total == before
        await live.done()
        assert (await call(fresh, proxy.url))[0] == 200
        assert live.ctx.timeline()[0].details["via"] == "proxy"


async def test_kill_on_a_real_node_refuses_at_the_proxy(
    fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    gamma = fleet["gamma"]
    async with FaultProxy("127.0.0.1", gamma.port) as proxy:
        assert (await call(http, proxy.url))[0] == 200  # a keep-alive connection is open
        live = Live(
            BasicChaosContext(proxies={"gamma": proxy}), Chaos.kill_provider("gamma", 0.1, 0.3)
        )
        await live.injected()
        await asyncio.sleep(0.02)  # the client pool sees its connection reset
        with pytest.raises(aiohttp.ClientConnectorError):
            await call(http, proxy.url)
        await live.done()
        assert proxy.state == "listening"
        assert (await call(http, proxy.url))[0] == 200


async def test_lag_provider_holds_the_head_back(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    beta = fleet["beta"]
    head = fleet.chain.head_number
    live = Live(BasicChaosContext.for_fleet(fleet), Chaos.lag_provider("beta", 3, 0.1, 0.3))
    await live.injected()
    _, body = await call(fresh, beta.url)
    assert int(body["result"], 16) == head - 3
    await live.done()
    _, body = await call(fresh, beta.url)
    assert int(body["result"], 16) == head


async def test_drop_websockets_closes_open_sockets(
    fleet: MockFleet, http: aiohttp.ClientSession
) -> None:
    alpha = fleet["alpha"]
    async with http.ws_connect(alpha.ws_url) as ws:
        await until(lambda: alpha.ws_connections == 1)
        live = Live(BasicChaosContext.for_fleet(fleet), Chaos.drop_websockets("alpha", 0.1))
        msg = await asyncio.wait_for(ws.receive(), 5.0)
        assert msg.type in (
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
            aiohttp.WSMsgType.CLOSE,
        )
        await live.done()
    (rec,) = live.ctx.timeline()
    assert rec.details["dropped"] == 1 and rec.end_s == rec.at_s
    async with http.ws_connect(alpha.ws_url) as ws:  # new sockets are fine
        await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}')
        assert "result" in orjson.loads((await asyncio.wait_for(ws.receive(), 5.0)).data)


async def _breaker(http: aiohttp.ClientSession, url: str, pid: str) -> str:
    async with http.get(url + "/api/providers?chain=ethereum") as r:
        providers = (await r.json())["providers"]
    state: str = next(p["breaker"]["state"] for p in providers if p["id"] == pid)
    return state


async def test_open_circuit_breaker_through_the_control_api(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(server={"control": {"enabled": True, "token": "t"}})
    events: list[Event] = []
    s.router.bus.subscribe(events.append)
    ctx = BasicChaosContext.for_fleet(
        fleet, control=http_control(s.url, "t", http), bus=s.router.bus
    )
    assert await _breaker(http, s.url, "alpha") == "closed"
    live = Live(ctx, Chaos.open_circuit_breaker("alpha", 0.1, 0.3))
    await live.injected()
    assert await _breaker(http, s.url, "alpha") == "open"
    for _ in range(5):  # the router routes around it meanwhile
        status, _, resp = await rpc(http, s.url + "/rpc/priority/ethereum?include_meta=headers")
        assert status == 200 and resp.headers["X-Lasso-Provider"] != "alpha"
    await live.done()
    assert await _breaker(http, s.url, "alpha") == "closed"
    chaos = [e for e in events if isinstance(e, ChaosEvent)]
    assert [(e.action, e.target, e.reverted) for e in chaos] == [
        ("open_circuit_breaker", "alpha", False),
        ("open_circuit_breaker", "alpha", True),
    ]


async def test_network_faults_on_a_proxied_provider(fleet: MockFleet) -> None:
    alpha = fleet["alpha"]
    async with FaultProxy("127.0.0.1", alpha.port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        ctx = BasicChaosContext(mocks=fleet.providers, proxies={"alpha": proxy})
        live = Live(ctx, Chaos.network("alpha", 0.1, 0.3, latency_ms=20, reset=True))
        await live.injected()
        with pytest.raises(ConnectionResetError):  # the open connection was reset...
            await asyncio.wait_for(reader.read(10), 5.0)
        writer.close()
        with pytest.raises(ConnectionResetError):  # ...and so are new ones, during the window
            r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
            try:
                await asyncio.wait_for(r2.read(10), 5.0)
            finally:
                w2.close()
        assert proxy.faults == Faults(latency_ms=20, reset_new=True)
        await live.done()
        assert proxy.faults == Faults()
        async with aiohttp.ClientSession() as session:
            assert (await call(session, proxy.url))[0] == 200
        (rec,) = live.ctx.timeline()
        assert rec.details["reset_connections"] == 1


async def test_random_failures_never_take_the_whole_fleet_down(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    def failing(p: MockProvider) -> bool:
        return p.state != "running" or p.knobs != Knobs()

    worst = 0
    ctx = BasicChaosContext.for_fleet(fleet)
    live = Live(
        ctx, Chaos.random_failures(mtbf_s=0.05, seed=4, at_s=0.0, duration_s=0.8, mttr_s=0.2)
    )
    while not live.task.done():
        worst = max(worst, sum(failing(p) for p in fleet))
        await asyncio.sleep(0.003)
    await live.done()
    assert 1 <= worst <= 2
    assert len(ctx.timeline()) >= 4
    assert not any(failing(p) for p in fleet)
    for p in fleet:
        assert (await call(fresh, p.url))[0] == 200


async def test_cancelling_a_running_action_reverts_it(
    fleet: MockFleet, fresh: aiohttp.ClientSession
) -> None:
    beta = fleet["beta"]
    live = Live(BasicChaosContext.for_fleet(fleet), Chaos.kill_provider("beta", 0.05, 60))
    await live.injected()
    assert beta.state == "stopped"
    live.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await live.task
    assert beta.state == "running"
    assert (await call(fresh, beta.url))[0] == 200
    (rec,) = live.ctx.timeline()
    assert rec.end_s is not None and rec.end_s < 5


async def test_router_keeps_answering_while_a_provider_is_killed(
    fleet: MockFleet, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    live = Live(BasicChaosContext.for_fleet(fleet), Chaos.kill_provider("alpha", 0.05, 0.4))
    await live.injected()
    for _ in range(20):
        status, body, _ = await rpc(http, s.url + "/rpc/priority/ethereum")
        assert status == 200 and "result" in body, body
    await live.done()
