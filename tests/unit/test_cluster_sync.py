"""Provider state kept in step between router processes (``cluster/sync.py``), on a fake clock
and an in-process network: no sockets, no sleeps."""

from __future__ import annotations

import random

import pytest

from lasso_rpc.clock import FakeClock
from lasso_rpc.cluster.peers import LoopbackNetwork
from lasso_rpc.cluster.records import StateRecord, decode_message, encode_message, newer
from lasso_rpc.cluster.sync import StateSync
from lasso_rpc.config import load_config_text
from lasso_rpc.resilience.breaker import BreakerState
from lasso_rpc.resilience.classify import ErrorClass
from lasso_rpc.router import Router

CONFIG = """
name: T
slug: default
routing: {breaker: {failure_threshold: 2, recovery_ms: 10000, jitter: 0}}
chains:
  ethereum:
    chain_id: 1
    providers:
      - {id: alpha, url: "http://127.0.0.1:9/a"}
      - {id: beta, url: "http://127.0.0.1:9/b"}
"""


class Node:
    def __init__(self, net: LoopbackNetwork, clock: FakeClock, name: str) -> None:
        self.config = load_config_text([("t.yaml", CONFIG)])
        self.router = Router(self.config, clock=clock, rng=random.Random(1))
        self.peers = net.peers()
        self.reloads = 0

        def reloader() -> object:
            self.reloads += 1
            return self.config

        self.sync = StateSync(self.router, self.peers, node_id=name, reloader=reloader)

    def breaker(self, pid: str = "alpha") -> BreakerState:
        return self.router.resolve("ethereum").providers[pid].breaker.state

    def cordoned(self, pid: str = "alpha") -> bool:
        return self.router.resolve("ethereum").providers[pid].cordoned


@pytest.fixture
async def trio() -> tuple[FakeClock, LoopbackNetwork, list[Node]]:
    clock = FakeClock()
    net = LoopbackNetwork()
    nodes = [Node(net, clock, n) for n in ("a", "b", "c")]
    for n in nodes:
        await n.sync.start()
    return clock, net, nodes


async def test_an_operator_open_and_close_reach_every_process(trio) -> None:  # type: ignore[no-untyped-def]
    _, _, (a, b, c) = trio
    a.router.open_breaker("ethereum", "alpha", hold=True)
    assert b.breaker() is BreakerState.OPEN and c.breaker() is BreakerState.OPEN
    assert b.router.resolve("ethereum").providers["alpha"].breaker.snapshot().held
    assert b.breaker("beta") is BreakerState.CLOSED
    b.router.close_breaker("ethereum", "alpha")  # closed from another process
    assert a.breaker() is BreakerState.CLOSED and c.breaker() is BreakerState.CLOSED
    # every change crossed once: no echo between processes
    assert (a.sync.published, b.sync.published, c.sync.published) == (1, 1, 0)


async def test_a_breaker_tripped_by_faults_opens_elsewhere_with_the_same_deadline(trio) -> None:  # type: ignore[no-untyped-def]
    clock, _, (a, b, _) = trio
    br = a.router.resolve("ethereum").providers["alpha"].breaker
    br.record(ErrorClass.PROVIDER)
    assert b.breaker() is BreakerState.CLOSED
    br.record(ErrorClass.PROVIDER)
    assert b.breaker() is BreakerState.OPEN
    snap = b.router.resolve("ethereum").providers["alpha"].breaker.snapshot()
    assert snap.open_until_ms == pytest.approx(10_000, abs=1) and not snap.held
    assert "shared by a" in (snap.last_reason or "")
    clock.advance(10_001)
    assert b.breaker() is BreakerState.HALF_OPEN  # reached by itself; it probes by itself
    assert a.breaker() is BreakerState.HALF_OPEN
    b.router.resolve("ethereum").providers["alpha"].breaker.record(None)
    b.router.resolve("ethereum").providers["alpha"].breaker.record(None)
    assert b.breaker() is BreakerState.CLOSED and a.breaker() is BreakerState.CLOSED


async def test_cordon_is_shared_and_survives_a_reload(trio) -> None:  # type: ignore[no-untyped-def]
    _, _, (a, b, c) = trio
    a.router.cordon("ethereum", "beta", True)
    assert b.cordoned("beta") and c.cordoned("beta") and not b.cordoned("alpha")
    await b.router.reload(b.config, "SIGHUP")  # new runtimes start uncordoned
    assert b.cordoned("beta")
    a.router.cordon("ethereum", "beta", False)
    assert not b.cordoned("beta") and not c.cordoned("beta")
    await b.router.aclose()


async def test_a_partitioned_process_catches_up_when_it_is_back(trio) -> None:  # type: ignore[no-untyped-def]
    clock, net, (a, b, c) = trio
    net.partition(c.peers)
    a.router.open_breaker("ethereum", "alpha", hold=True)
    c.router.cordon("ethereum", "beta", True)  # lost while cut off
    assert c.breaker() is BreakerState.CLOSED and not a.cordoned("beta")
    clock.advance(5)
    net.heal(c.peers)
    assert c.breaker() is BreakerState.OPEN
    assert a.cordoned("beta") and b.cordoned("beta")


async def test_the_newest_change_wins_and_stale_ones_are_ignored(trio) -> None:  # type: ignore[no-untyped-def]
    clock, _, (a, b, _) = trio
    a.router.open_breaker("ethereum", "alpha", hold=True)
    opened = b.sync.records()[0]
    clock.advance(1)
    b.router.close_breaker("ethereum", "alpha")
    a.sync.apply(opened)  # a late copy of the older change changes nothing
    assert a.breaker() is BreakerState.CLOSED
    future = StateRecord(
        aspect="cordon", target="default/ethereum/alpha", state="on", ts=clock.wall_s() + 60,
        origin="z",
    )  # fmt: skip
    a.sync.apply(future)
    assert a.cordoned()
    a.router.cordon("ethereum", "alpha", False)  # a local change beats even a skewed clock
    assert not b.cordoned() and not a.cordoned()
    assert [r.state for r in b.sync.records() if r.aspect == "cordon"] == ["off"]


async def test_an_expired_open_record_is_not_applied(trio) -> None:  # type: ignore[no-untyped-def]
    clock, _, (a, _, _) = trio
    rec = StateRecord(
        aspect="breaker", target="default/ethereum/alpha", state="open", ts=clock.wall_s(),
        origin="z", until=clock.wall_s() - 1,
    )  # fmt: skip
    a.sync.apply(rec)
    assert a.breaker() is BreakerState.CLOSED
    unknown = StateRecord(
        aspect="breaker", target="default/ethereum/nope", state="open", ts=clock.wall_s(),
        origin="z", held=True,
    )  # fmt: skip
    a.sync.apply(unknown)  # kept, harmless
    assert unknown in a.sync.records()


async def test_a_control_api_reload_runs_everywhere_a_sighup_only_here(trio) -> None:  # type: ignore[no-untyped-def]
    _, _, (a, b, c) = trio
    await a.router.reload(a.config, "SIGHUP")
    assert (b.reloads, c.reloads) == (0, 0)
    await a.router.reload(a.config, "control api")
    for _ in range(3):
        await __import__("asyncio").sleep(0)
    assert (a.reloads, b.reloads, c.reloads) == (0, 1, 1)
    for n in (a, b, c):
        await n.sync.aclose()
        await n.router.aclose()


def test_records_cross_the_wire_unchanged() -> None:
    rec = StateRecord(
        aspect="breaker", target="p/c/x", state="open", ts=1.5, origin="h/1/ab", until=9.0,
        held=False, opens=2, reason="5 consecutive provider faults",
    )  # fmt: skip
    assert decode_message(encode_message(rec)) == rec
    later = StateRecord(aspect="breaker", target="p/c/x", state="closed", ts=1.5, origin="h/1/ac")
    assert newer(later, rec) and not newer(rec, later) and newer(rec, None)


async def test_an_outlier_ejection_is_shared_with_its_deadline(trio) -> None:  # type: ignore[no-untyped-def]
    clock, _, (a, b, c) = trio
    pa = a.router.resolve("ethereum").providers["beta"]
    pa.eject(clock.now_ms() + 5_000, "p95 5x the others")
    for n in (b, c):
        ej = n.router.resolve("ethereum").providers["beta"].ejection
        assert ej.active(clock.now_ms())
        assert ej.until_ms == pytest.approx(5_000, abs=1)
        assert "shared by a: p95 5x the others" in (ej.snapshot().reason or "")
    b.router.resolve("ethereum").providers["beta"].restore("operator")
    assert not pa.ejection.active(clock.now_ms())
    assert not c.router.resolve("ethereum").providers["beta"].ejection.active(clock.now_ms())
