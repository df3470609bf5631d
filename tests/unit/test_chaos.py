"""Chaos actions without sockets or real sleeps: fake providers and a virtual clock."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

import pytest
import yaml

from lasso_rpc.battle.chaos.base import ChaosAction
from lasso_rpc.battle.chaos.basic_context import BasicChaosContext
from lasso_rpc.battle.chaos.factory import Chaos
from lasso_rpc.battle.chaos.parse import chaos_from_dict
from lasso_rpc.battle.chaos.random_failures import RandomFailures
from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.faults import Faults
from lasso_rpc.battle.providers.spec import FailureMode, Knobs
from lasso_rpc.battle.records import ChaosRecord
from lasso_rpc.clock import FakeClock
from lasso_rpc.observability.events import ChaosEvent, Event, EventBus, event_to_dict

IDS = ("alpha", "beta", "gamma")


class FakeMock:
    """The part of MockProvider chaos uses, with a log of what happened when."""

    def __init__(self, pid: str, ctx: VirtualContext | None = None, **knobs: Any) -> None:
        self.id = pid
        self.baseline = Knobs().with_changes(**knobs)
        self.knobs = self.baseline
        self.state = "running"
        self.ctx = ctx
        self.log: list[tuple[float, str]] = []
        self.ws_dropped = 0

    def _log(self, what: str) -> None:
        self.log.append((self.ctx.now_s() if self.ctx else 0.0, what))

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self._log(f"knobs {knobs.changed()}")

    async def stop(self) -> None:
        assert self.state == "running"
        self.state = "stopped"
        self._log("stop")

    async def start(self) -> None:
        assert self.state == "stopped"
        self.state = "running"
        self._log("start")

    async def drop_websockets(self) -> int:
        self.ws_dropped += 1
        return 2

    @property
    def failing(self) -> bool:
        return self.state != "running" or self.knobs != self.baseline


class VirtualContext(BasicChaosContext):
    """Sleeping advances a fake clock once every runnable task has had its turn (autojump)."""

    def __init__(self, **kw: Any) -> None:
        self.clock = FakeClock()
        super().__init__(clock=self.clock, **kw)
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._jumper: asyncio.Task[None] | None = None

    async def sleep_until(self, t_s: float) -> None:
        if t_s <= self.now_s():
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (t_s, self._seq, fut))
        self._seq += 1
        if self._jumper is None or self._jumper.done():
            self._jumper = asyncio.create_task(self._autojump())
        await fut

    async def _autojump(self) -> None:
        while self._waiters:
            for _ in range(30):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            t, _, fut = heapq.heappop(self._waiters)
            if fut.done():  # cancelled sleeper
                continue
            self.clock.advance(max(0.0, t - self.now_s()) * 1000.0)
            fut.set_result(None)

    async def aclose(self) -> None:
        if self._jumper is not None:
            self._jumper.cancel()
            await asyncio.gather(self._jumper, return_exceptions=True)


@pytest.fixture
async def ctx() -> Any:
    c = VirtualContext(provider_ids=IDS)
    c.mocks = {pid: FakeMock(pid, c) for pid in IDS}
    yield c
    await c.aclose()


EXAMPLES: list[ChaosAction] = [
    Chaos.kill_provider("alpha", 10),
    Chaos.kill_provider("alpha", at_s=10, duration_s=5),
    Chaos.flap_provider("beta", down_s=1, up_s=2, count=3, at_s=4),
    Chaos.degrade_provider("alpha", 500, at_s=1, duration_s=2, jitter_ms=50),
    Chaos.inject_latency("gamma", latency_ms=300, at_s=0.5),
    Chaos.error_rate("alpha", 0.3, at_s=1, duration_s=2, mode=FailureMode.RATE_LIMIT),
    Chaos.error_rate("alpha", 1.0, at_s=1, http_status=503),
    Chaos.blackhole("beta", at_s=2, duration_s=1),
    Chaos.lag_provider("gamma", blocks=5, at_s=3, duration_s=1),
    Chaos.drop_websockets("alpha", at_s=7),
    Chaos.open_circuit_breaker("alpha", at_s=1, duration_s=2, chain="base"),
    Chaos.random_failures(mtbf_s=3, seed=42, duration_s=60, mttr_s=2, providers=["alpha", "beta"]),
    Chaos.random_failures(2.5, 7, kinds=("lag_provider", "network_reset"), allow_all_down=True),
    Chaos.network("alpha", at_s=1, duration_s=3, latency_ms=40, jitter_ms=5),
    Chaos.network("alpha", at_s=1, bandwidth_bytes_per_s=1e5, reset=True, slow_close_ms=200),
]


@pytest.mark.parametrize("action", EXAMPLES, ids=lambda a: a.action)
def test_to_dict_round_trips_through_yaml(action: ChaosAction) -> None:
    d = action.to_dict()
    assert d["action"] == action.action
    assert chaos_from_dict(d) == action
    assert chaos_from_dict(yaml.safe_load(yaml.safe_dump(d))) == action
    assert isinstance(action.describe(), str) and action.action in action.describe()


def test_to_dict_is_minimal_and_the_one_key_form_is_accepted() -> None:
    assert Chaos.kill_provider("alpha", 10).to_dict() == {
        "action": "kill_provider",
        "provider": "alpha",
        "at_s": 10,
    }
    action = chaos_from_dict({"lag_provider": {"provider": "beta", "blocks": 3, "at_s": 1}})
    assert action == Chaos.lag_provider("beta", 3, at_s=1)
    assert Chaos.error_rate("a", 1, 0, mode=FailureMode.HANG).to_dict()["mode"] == "hang"


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"action": "explode", "at_s": 1}, "unknown chaos action 'explode'; valid: kill_provider"),
        ({"at_s": 1}, "unknown chaos action None"),
        ({"action": "kill_provider", "provider": "a", "at_s": 1, "for_s": 2}, "valid: provider"),
        ({"action": "kill_provider", "provider": "a"}, r"missing key\(s\) \['at_s'\]"),
        ({"action": "kill_provider", "provider": "a", "at_s": "soon"}, "at_s: expected float"),
        ({"action": "lag_provider", "provider": "a", "at_s": 1, "blocks": 1.5}, "expected int"),
        ({"action": "network", "provider": "a", "at_s": 1, "reset": "yes"}, "expected bool"),
        ({"action": "kill_provider", "provider": "a", "at_s": -1}, "at_s must be >= 0"),
        ({"action": "kill_provider", "provider": "a", "at_s": 1, "duration_s": 0}, "duration_s"),
        ({"action": "error_rate", "provider": "a", "at_s": 1, "p": 2}, "p must be within"),
        ({"action": "error_rate", "provider": "a", "at_s": 1, "p": 1, "mode": "x"}, "valid: http"),
        ({"action": "network", "provider": "a", "at_s": 1}, "no fault given"),
        (
            {
                "action": "flap_provider",
                "provider": "a",
                "at_s": 1,
                "down_s": 1,
                "up_s": 1,
                "count": 0,
            },
            "count",
        ),
        ({"action": "random_failures", "mtbf_s": 1, "seed": 1, "kinds": ["meteor"]}, "valid: kill"),
        ({"action": "random_failures", "mtbf_s": 0, "seed": 1}, "mtbf_s"),
        (["kill_provider"], "must be a mapping"),
    ],
)
def test_invalid_dicts_say_what_is_valid(d: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chaos_from_dict(d)


def test_validate_names_unknown_providers() -> None:
    with pytest.raises(ValueError, match="unknown provider 'omega'; known: alpha, beta, gamma"):
        Chaos.kill_provider("omega", 1).validate(IDS)
    Chaos.kill_provider("alpha", 1).validate(IDS)
    with pytest.raises(ValueError, match="unknown provider 'omega'"):
        Chaos.random_failures(1, 1, providers=["alpha", "omega"]).validate(IDS)
    with pytest.raises(ValueError, match="allow_all_down"):
        Chaos.random_failures(1, 1).validate(["alpha"])
    Chaos.random_failures(1, 1, allow_all_down=True).validate(["alpha"])


async def test_run_checks_capabilities_before_waiting() -> None:
    proxy = FaultProxy("127.0.0.1", 8545)  # never started: no socket
    c = VirtualContext(proxies={"node": proxy}, mocks={"mock": FakeMock("mock")})  # type: ignore[dict-item]
    try:
        with pytest.raises(ValueError, match="needs a MockProvider"):
            await Chaos.error_rate("node", 1.0, at_s=100).run(c)
        with pytest.raises(ValueError, match="needs a FaultProxy"):
            await Chaos.network("mock", at_s=100, latency_ms=5).run(c)
        with pytest.raises(ValueError, match="unknown provider 'nope'"):
            await Chaos.blackhole("nope", at_s=100).run(c)
        with pytest.raises(ValueError, match=r"random_failures \(lag_provider\) on 'node'"):
            await Chaos.random_failures(1, 1, kinds=["lag_provider"]).run(c)
        assert c.now_s() == 0 and c.records == []
    finally:
        await c.aclose()


async def test_kill_records_and_restarts(ctx: VirtualContext) -> None:
    alpha = ctx.mocks["alpha"]
    await Chaos.kill_provider("alpha", at_s=2, duration_s=3).run(ctx)
    assert alpha.log == [(2.0, "stop"), (5.0, "start")]  # type: ignore[attr-defined]
    injected = ChaosRecord("kill_provider", "alpha", 2.0, None, {"via": "mock"})
    assert ctx.records == [
        (injected, False),
        (ChaosRecord("kill_provider", "alpha", 2.0, 5.0, {"via": "mock"}), True),
    ]
    assert ctx.timeline() == [ChaosRecord("kill_provider", "alpha", 2.0, 5.0, {"via": "mock"})]


async def test_without_duration_the_fault_stays(ctx: VirtualContext) -> None:
    await Chaos.lag_provider("beta", 4, at_s=1).run(ctx)
    assert ctx.mocks["beta"].knobs.lag_blocks == 4
    assert ctx.timeline()[0].end_s is None


async def test_overlapping_actions_restore_exactly_the_previous_knobs(ctx: VirtualContext) -> None:
    alpha = ctx.mocks["alpha"]
    before = Knobs(latency_ms=20, jitter_ms=5, lag_blocks=1)
    alpha.set_knobs(before)
    await ctx.run(
        [
            Chaos.degrade_provider("alpha", 500, at_s=1, duration_s=3),  # 1 .. 4
            Chaos.inject_latency("alpha", 100, at_s=2, duration_s=3),  # 2 .. 5, not nested
            Chaos.error_rate("alpha", 0.5, at_s=3, duration_s=1, mode="jsonrpc_error"),  # 3 .. 4
            Chaos.blackhole("alpha", at_s=3.5, duration_s=10),  # 3.5 .. 13.5
        ]
    )
    assert alpha.knobs == before
    assert len(ctx.timeline()) == 4 and all(r.end_s is not None for r in ctx.timeline())


async def test_layers_seen_while_running(ctx: VirtualContext) -> None:
    alpha = ctx.mocks["alpha"]
    seen: dict[float, Knobs] = {}

    async def probe() -> None:
        for t in (1.5, 2.5, 3.5, 4.5, 5.5):
            await ctx.sleep_until(t)
            seen[t] = alpha.knobs

    async with asyncio.TaskGroup() as tg:
        tg.create_task(Chaos.degrade_provider("alpha", 500, at_s=1, duration_s=3).run(ctx))
        tg.create_task(Chaos.inject_latency("alpha", 100, at_s=2, duration_s=3).run(ctx))
        tg.create_task(Chaos.error_rate("alpha", 0.5, at_s=3, duration_s=1).run(ctx))
        tg.create_task(probe())
    assert seen[1.5].latency_ms == 500
    assert seen[2.5].latency_ms == 600  # +100 over what alpha had when it was injected
    assert (seen[3.5].error_rate, seen[3.5].failure_mode) == (0.5, FailureMode.HTTP_500)
    assert seen[4.5].latency_ms == 600 and seen[4.5].error_rate is None
    assert seen[5.5] == Knobs()


async def test_cancellation_reverts_and_records(ctx: VirtualContext) -> None:
    beta = ctx.mocks["beta"]
    task = asyncio.create_task(Chaos.kill_provider("beta", at_s=1, duration_s=100).run(ctx))
    await ctx.sleep_until(3)
    assert beta.state == "stopped"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert beta.state == "running"
    assert beta.log == [(1.0, "stop"), (3.0, "start")]  # type: ignore[attr-defined]
    assert ctx.records[-1] == (
        ChaosRecord("kill_provider", "beta", 1.0, 3.0, {"via": "mock"}),
        True,
    )


async def test_cancellation_of_a_permanent_fault_before_it_starts_does_nothing(
    ctx: VirtualContext,
) -> None:
    task = asyncio.create_task(Chaos.blackhole("beta", at_s=5).run(ctx))
    await ctx.sleep_until(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ctx.records == [] and ctx.mocks["beta"].knobs == Knobs()


async def test_flap_records_each_down_period(ctx: VirtualContext) -> None:
    await Chaos.flap_provider("gamma", down_s=1, up_s=2, count=3, at_s=1).run(ctx)
    assert [(r.at_s, r.end_s, r.details["cycle"]) for r in ctx.timeline()] == [
        (1.0, 2.0, 1),
        (4.0, 5.0, 2),
        (7.0, 8.0, 3),
    ]
    assert [w for _, w in ctx.mocks["gamma"].log] == ["stop", "start"] * 3  # type: ignore[attr-defined]


async def test_nested_kills_restart_once_at_the_end(ctx: VirtualContext) -> None:
    await ctx.run(
        [
            Chaos.kill_provider("alpha", at_s=1, duration_s=3),
            Chaos.flap_provider("alpha", down_s=1, up_s=1, count=2, at_s=2),  # down 2-3, 4-5
        ]
    )
    assert ctx.mocks["alpha"].log == [(1.0, "stop"), (4.0, "start"), (4.0, "stop"), (5.0, "start")]  # type: ignore[attr-defined]


async def test_instant_and_control_actions(ctx: VirtualContext) -> None:
    calls: list[tuple[float, str, dict[str, Any]]] = []

    async def control(path: str, body: dict[str, Any]) -> dict[str, Any]:
        calls.append((ctx.now_s(), path, body))
        return {"state": "open" if path.endswith("open") else "closed"}

    ctx._control = control
    await ctx.run(
        [
            Chaos.drop_websockets("alpha", at_s=1),
            Chaos.open_circuit_breaker("beta", at_s=2, duration_s=3),
        ]
    )
    body = {"chain": "ethereum", "provider": "beta"}
    assert calls == [
        (2.0, "/api/control/breaker/open", {**body, "hold": True}),
        (5.0, "/api/control/breaker/close", body),
    ]
    drop, breaker = ctx.timeline()
    assert (drop.at_s, drop.end_s, drop.details) == (1.0, 1.0, {"via": "mock", "dropped": 2})
    assert (breaker.at_s, breaker.end_s, breaker.details["state"]) == (2.0, 5.0, "open")


async def test_proxy_faults_for_real_nodes() -> None:
    proxy = FaultProxy("127.0.0.1", 8545)  # never started: faults are just stored
    c = VirtualContext(proxies={"node": proxy})
    seen: dict[float, Faults] = {}

    async def probe() -> None:
        for t in (1.5, 2.5, 3.5):
            await c.sleep_until(t)
            seen[t] = proxy.faults

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(Chaos.inject_latency("node", 200, at_s=1, duration_s=2).run(c))
            tg.create_task(Chaos.network("node", at_s=2, duration_s=1, reset=True).run(c))
            tg.create_task(Chaos.kill_provider("node", at_s=3, duration_s=0.2).run(c))
            tg.create_task(probe())
        assert seen[1.5] == Faults(latency_ms=100)  # half each way: +200 ms round trip
        assert seen[2.5] == Faults(latency_ms=100, reset_new=True)
        assert seen[3.5] == Faults()
        assert proxy.faults == Faults()
        kill = next(r for r in c.timeline() if r.action == "kill_provider")
        assert kill.details == {"via": "proxy"} and kill.end_s == pytest.approx(3.2)
    finally:
        await c.aclose()


def test_scaled_multiplies_schedule_times_only() -> None:
    a = Chaos.degrade_provider("alpha", 500, at_s=10, duration_s=4).scaled(0.1)
    assert (a.at_s, a.duration_s, a.latency_ms) == (1.0, pytest.approx(0.4), 500)
    f = Chaos.flap_provider("a", down_s=2, up_s=4, count=2, at_s=10).scaled(0.5)
    assert (f.down_s, f.up_s, f.at_s, f.count) == (1, 2, 5, 2)
    n = Chaos.network("a", at_s=10, duration_s=10, bandwidth_bytes_per_s=1000).scaled(0.1)
    assert (n.at_s, n.duration_s, n.bandwidth_bytes_per_s) == (1, 1, 1000)


def test_proxied_targets() -> None:
    assert Chaos.network("a", at_s=1, blackhole=True).proxied_targets() == ("a",)
    assert Chaos.kill_provider("a", 1).proxied_targets() == ()


# -- random failures --------------------------------------------------------------------------


def test_random_plan_is_determined_by_the_seed() -> None:
    rf = Chaos.random_failures(mtbf_s=2, seed=11, duration_s=200, mttr_s=1)
    a, b = list(rf.plan(IDS)), list(rf.plan(IDS))
    assert a == b and len(a) > 40
    other = list(Chaos.random_failures(mtbf_s=2, seed=12, duration_s=200, mttr_s=1).plan(IDS))
    assert other != a
    assert {f.kind for f in a} == set(rf.kinds)
    assert {f.provider for f in a} == set(IDS)
    gaps = [y.at_s - x.at_s for x, y in itertools.pairwise(a)]
    assert 1.4 < sum(gaps) / len(gaps) < 2.8  # exponential with mean ~2 s (a few skipped)
    assert all(0 < f.at_s < 200 and f.at_s + f.duration_s <= 200 for f in a)


def _max_down(plan: list[Any]) -> int:
    edges = sorted([(f.at_s, 1) for f in plan] + [(f.at_s + f.duration_s, -1) for f in plan])
    down = peak = 0
    for _, step in edges:
        down += step
        peak = max(peak, down)
    return peak


def test_random_plan_never_takes_every_provider_down_unless_asked() -> None:
    # Failures far more frequent than repairs: without the rule all 3 would be down at once.
    rf = Chaos.random_failures(mtbf_s=0.2, seed=3, duration_s=100, mttr_s=5)
    plan = list(rf.plan(IDS))
    assert _max_down(plan) == 2
    for f in plan:  # a failing provider is never picked again while it fails
        same = [g for g in plan if g.provider == f.provider and g is not f]
        assert all(g.at_s >= f.at_s + f.duration_s or g.at_s + g.duration_s <= f.at_s for g in same)
    everything = RandomFailures(mtbf_s=0.2, seed=3, duration_s=100, mttr_s=5, allow_all_down=True)
    assert _max_down(list(everything.plan(IDS))) == 3


def test_random_plan_uses_only_the_named_providers() -> None:
    rf = Chaos.random_failures(
        mtbf_s=0.5, seed=5, duration_s=50, mttr_s=1, providers=["beta", "gamma"]
    )
    plan = list(rf.plan(IDS))
    assert {f.provider for f in plan} == {"beta", "gamma"} and _max_down(plan) == 1


async def test_random_failures_run_follows_the_plan_and_keeps_one_provider_up(
    ctx: VirtualContext,
) -> None:
    rf = Chaos.random_failures(mtbf_s=1, seed=9, at_s=5, duration_s=60, mttr_s=4)
    worst = 0
    inner_record = ctx.record

    def record(rec: ChaosRecord, reverted: bool) -> None:
        nonlocal worst
        worst = max(worst, sum(m.failing for m in ctx.mocks.values()))  # type: ignore[attr-defined]
        inner_record(rec, reverted)

    ctx.record = record  # type: ignore[method-assign]
    await rf.run(ctx)
    plan = list(rf.plan(IDS))
    got = ctx.timeline()
    assert [(r.action, r.target, r.at_s, r.end_s) for r in got] == [
        (f.kind, f.provider, pytest.approx(f.at_s), pytest.approx(f.at_s + f.duration_s))
        for f in plan
    ]
    assert all(r.details["source"] == "random_failures" and r.details["seed"] == 9 for r in got)
    assert worst == 2
    for m in ctx.mocks.values():  # all healed
        assert m.state == "running" and m.knobs == m.baseline  # type: ignore[attr-defined]


async def test_random_failures_cancelled_reverts_what_is_active(ctx: VirtualContext) -> None:
    task = asyncio.create_task(Chaos.random_failures(mtbf_s=0.5, seed=1, mttr_s=50).run(ctx))
    await ctx.sleep_until(10)
    assert any(m.failing for m in ctx.mocks.values())  # type: ignore[attr-defined]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(m.failing for m in ctx.mocks.values())  # type: ignore[attr-defined]
    assert all(r.end_s == 10.0 for r in ctx.timeline())


# -- the basic context ------------------------------------------------------------------------


async def test_basic_context_publishes_chaos_events_on_a_bus() -> None:
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    c = VirtualContext(mocks={"alpha": FakeMock("alpha")}, bus=bus)  # type: ignore[dict-item]
    try:
        await Chaos.blackhole("alpha", at_s=1, duration_s=1).run(c)
    finally:
        await c.aclose()
    assert [event_to_dict(e)["type"] for e in events] == ["chaos.injected", "chaos.reverted"]
    assert all(isinstance(e, ChaosEvent) and e.target == "alpha" for e in events)
    assert "records=2" in repr(c)
