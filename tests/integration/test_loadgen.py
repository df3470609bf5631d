"""The open-loop runner against a real router in front of the mock fleet."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter

import orjson
import pytest

from lasso_rpc.battle.load.loadgen import LoadStats, run_workload
from lasso_rpc.battle.load.replies import classify_reply, meta_url
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.records import RequestRecord
from tests.conftest import RouterFactory

REVERT_CALL = [{"to": "0x" + "55" * 20, "data": "0xdeadbeef"}, "latest"]


async def run(
    w: Workload, url: str, *, stop: asyncio.Event | None = None, seed: int = 1
) -> tuple[LoadStats, list[RequestRecord]]:
    records: list[RequestRecord] = []
    loop = asyncio.get_running_loop()
    stats = await run_workload(
        w,
        base_url=url,
        clock_start=loop.time(),
        rng=random.Random(seed),
        on_record=records.append,
        stop=stop,
    )
    return stats, records


def max_overlap(records: list[RequestRecord]) -> int:
    edges = sorted([(r.start_s, 1) for r in records] + [(r.end_s, -1) for r in records])
    depth = peak = 0
    for _, step in edges:
        depth += step
        peak = max(peak, depth)
    return peak


async def test_every_send_ends_in_one_record_filled_from_include_meta(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    # No dedup: every call makes exactly one attempt of its own (a coalesced one makes none).
    s = await make_router(routing={"shaping": {"dedup": False}})
    fleet.reset_counters()
    mix = {"eth_blockNumber": 4, "eth_getBalance": 3, "eth_call": 2, "eth_chainId": 1}
    w = Workload.constant(400, 1).mix(mix).path("/rpc/round-robin/ethereum?failover=true")
    progress: list[int] = []
    records: list[RequestRecord] = []
    stats = await run_workload(
        w,
        base_url=s.url,
        clock_start=asyncio.get_running_loop().time(),
        rng=random.Random(3),
        on_record=records.append,
        progress=progress.append,
    )
    assert stats.sent == stats.completed == len(records) == 400
    assert stats.cancelled == stats.delayed_by_cap == 0
    assert progress[-1] == 400 and progress == sorted(progress)
    assert all(r.outcome == "ok" and r.error_class is None for r in records), Counter(
        r.error_class for r in records
    )
    # Intended times follow the schedule; latency counts from them.
    intended = sorted(r.intended_s for r in records)
    assert intended[0] == 0.0 and intended[-1] == pytest.approx(0.9975)
    assert all(r.end_s >= r.start_s >= r.intended_s for r in records)
    assert all(r.latency_ms >= r.service_ms for r in records)
    # Routed calls: provider and attempts from lasso_meta; eth_chainId is answered locally.
    routed = [r for r in records if r.method != "eth_chainId"]
    assert {r.provider for r in routed} == set(fleet.ids)
    assert all(r.attempts == 1 and not r.hedged and not r.failover for r in routed)
    assert all(r.provider is None and r.attempts == 0 for r in records if r.method == "eth_chainId")
    # Ground truth: what the providers counted (eth_blockNumber also serves the head polls).
    for method in ("eth_getBalance", "eth_call"):
        got = Counter(r.provider for r in routed if r.method == method)
        counted = {p.id: p.method_counts.get(method, 0) for p in fleet}
        assert {pid: got.get(pid, 0) for pid in fleet.ids} == counted
    assert stats.generator_lag_ms_p99 < 200  # shares its loop with router and fleet here


async def test_hedged_flag_comes_from_meta(make_router: RouterFactory, fleet: MockFleet) -> None:
    # Every call hedged and making its own attempts: no budget cap, alpha not ejected after its
    # first lost races, no dedup of these identical calls.
    s = await make_router(
        routing={
            "hedge": {"enabled": True, "after": 50, "budget_percent": 100},
            "ejection": {"enabled": False},
            "shaping": {"dedup": False},
        }
    )
    fleet["alpha"].set_failure("hang")  # priority tries alpha first; the hedge to beta answers
    w = Workload.constant(40, 0.25, "eth_getBalance").path("/rpc/priority/ethereum")
    _, records = await run(w, s.url)
    assert len(records) == 10
    assert {(r.outcome, r.provider, r.attempts, r.hedged, r.failover) for r in records} == {
        ("ok", "beta", 2, True, False)  # a hedge that won is no failover
    }
    assert all(r.latency_ms >= 50 for r in records)


async def test_failover_flag_comes_from_meta(make_router: RouterFactory, fleet: MockFleet) -> None:
    s = await make_router(routing={"breaker": {"failure_threshold": 1000}})
    fleet["alpha"].set_failure("http_500")
    w = Workload.constant(40, 0.25, "eth_getBalance").path("/rpc/priority/ethereum")
    _, records = await run(w, s.url)
    assert {(r.outcome, r.provider, r.attempts, r.failover) for r in records} == {
        ("ok", "beta", 2, True)
    }


async def test_outcomes_and_error_classes(make_router: RouterFactory, fleet: MockFleet) -> None:
    s = await make_router()
    tiny = Workload.constant(20, 0.25)  # 5 requests

    # An upstream client error (execution reverted, code 3) is passed through with meta.
    _, recs = await run(tiny.method("eth_call", REVERT_CALL), s.url)
    assert {(r.outcome, r.error_class, r.attempts) for r in recs} == {
        ("client_error", "upstream:3", 1)
    }
    assert {r.provider for r in recs} <= set(fleet.ids) and all(r.ok for r in recs)

    # The router's own errors, named from its error table.
    _, recs = await run(tiny.path("/rpc/polygon"), s.url)
    assert {(r.outcome, r.error_class, r.provider) for r in recs} == {
        ("error", "invalid_params", None)
    }
    _, recs = await run(tiny.method("eth_sign", ["0x" + "11" * 20, "0x00"]), s.url)
    assert {r.error_class for r in recs} == {"method_not_allowed"}

    # Nothing listening: a transport error, by class.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    _, recs = await run(tiny, dead)
    assert {(r.outcome, r.error_class) for r in recs} == {("error", "transport:ConnectError")}


async def test_failing_providers_give_router_errors_with_attempts(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router()
    for p in fleet:
        p.set_failure("http_500")
    _, recs = await run(Workload.constant(20, 0.5), s.url)
    classes = Counter(r.error_class for r in recs)
    assert set(classes) <= {"all_attempts_failed", "no_provider_available"}  # breakers open
    assert classes["all_attempts_failed"] >= 1 and not any(r.ok for r in recs)
    # Every provider was tried once: counted from error.data.attempts.
    failed = [r for r in recs if r.error_class == "all_attempts_failed"]
    assert {(r.attempts, r.failover) for r in failed} == {(3, True)}
    assert {r.attempts for r in recs if r.error_class == "no_provider_available"} <= {0}


async def test_client_timeout(make_router: RouterFactory, fleet: MockFleet) -> None:
    s = await make_router()
    for p in fleet:
        p.set_failure("hang")
    stats, recs = await run(Workload.constant(20, 0.25).timeout_s(0.2), s.url)
    assert {(r.outcome, r.error_class) for r in recs} == {("error", "timeout")}
    assert all(200 <= r.service_ms < 1000 for r in recs)
    assert stats.completed == 5
    fleet.heal()  # the hung handlers answer and the fleet closes at once


async def test_concurrency_cap_is_respected_and_waiting_counts_as_latency(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router()
    for p in fleet:
        p.set_latency(50)
    stats, recs = await run(Workload.constant(200, 0.3).concurrency(4), s.url)
    assert stats.sent == len(recs) == 60 and all(r.outcome == "ok" for r in recs)
    assert stats.max_in_flight == 4 and max_overlap(recs) <= 4
    assert stats.delayed_by_cap >= 50
    # 60 requests, 4 at a time, ≥ 50 ms each: ≥ 0.75 s in all, though the last was due at 0.295 s.
    last = max(recs, key=lambda r: r.end_s)
    assert last.end_s >= 0.7 and last.latency_ms >= 400 and last.service_ms < 300
    waited = [r for r in recs if r.start_s - r.intended_s > 0.1]
    assert len(waited) >= 40


@pytest.mark.parametrize("how", ["stop", "cancel"])
async def test_unfinished_requests_are_recorded_as_cancelled(
    make_router: RouterFactory, fleet: MockFleet, how: str
) -> None:
    s = await make_router()
    for p in fleet:
        p.set_failure("hang")
    stop = asyncio.Event()
    records: list[RequestRecord] = []
    loop = asyncio.get_running_loop()
    w = Workload.constant(100, 10).concurrency(5)
    t0 = loop.time()
    task = asyncio.create_task(
        run_workload(
            w,
            base_url=s.url,
            clock_start=t0,
            rng=random.Random(1),
            on_record=records.append,
            stop=stop,
        )
    )
    await asyncio.sleep(0.3)
    t_stop = loop.time() - t0
    if how == "stop":
        stop.set()
        stats = await asyncio.wait_for(task, 2)
        assert stats.cancelled == len(records) == stats.sent
        assert stats.completed == 0 and stats.max_in_flight == 5
    else:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
    assert 25 <= len(records) <= 40  # ≈ 0.3 s at 100/s, all released, none answered
    assert {(r.outcome, r.error_class) for r in records} == {("error", "cancelled")}
    assert sum(r.service_ms > 0 for r in records) == 5  # the five in flight; the rest queued
    ends = {r.end_s for r in records}
    assert len(ends) == 1 and t_stop - 0.01 <= ends.pop() < t_stop + 0.2  # one cancel time
    fleet.heal()


async def test_an_on_record_error_stops_the_run(make_router: RouterFactory) -> None:
    s = await make_router()

    def boom(_: RequestRecord) -> None:
        raise RuntimeError("collector broke")

    loop = asyncio.get_running_loop()
    with pytest.raises(RuntimeError, match="collector broke"):
        await asyncio.wait_for(
            run_workload(
                Workload.constant(50, 10),
                base_url=s.url,
                clock_start=loop.time(),
                rng=random.Random(1),
                on_record=boom,
            ),
            2,
        )


async def test_unary_calls_over_websocket_end_in_records_filled_from_include_meta(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    # No dedup: every call makes exactly one attempt of its own (a coalesced one makes none).
    s = await make_router(routing={"shaping": {"dedup": False}})
    fleet.reset_counters()
    mix = {"eth_getBalance": 3, "eth_call": 2, "eth_chainId": 1}
    # 130 may be in flight: three sockets (64 calls each is the router's per-socket cap)
    w = Workload.constant(300, 1).mix(mix).over("ws").concurrency(130)
    stats, records = await run(w, s.url, seed=5)
    assert stats.sent == stats.completed == len(records) == 300
    assert all(r.transport == "ws" and r.outcome == "ok" for r in records), Counter(
        r.error_class for r in records
    )
    routed = [r for r in records if r.method != "eth_chainId"]
    assert {r.provider for r in routed} <= set(fleet.ids) and all(r.attempts == 1 for r in routed)
    # what the providers counted is what the records say the router sent them
    for method in ("eth_getBalance", "eth_call"):
        got = Counter(r.provider for r in routed if r.method == method)
        counted = {p.id: p.method_counts.get(method, 0) for p in fleet}
        assert {pid: got.get(pid, 0) for pid in fleet.ids} == counted
    assert all(r.end_s >= r.start_s >= r.intended_s for r in records)


async def test_a_websocket_that_drops_fails_its_calls_and_the_next_ones_reconnect(
    make_router: RouterFactory, fleet: MockFleet
) -> None:
    s = await make_router()
    fleet["alpha"].set_failure("hang")  # calls routed to alpha wait until the socket drops
    stop_router = asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(
        s.aclose()))  # fmt: skip
    w = Workload.constant(20, 1.0, "eth_getBalance").path("/rpc/priority/ethereum").over("ws")
    w = w.timeout_s(3)
    stats, records = await run(w, s.url)
    stop_router.cancel()
    assert stats.sent == len(records) == 20
    classes = Counter(r.error_class for r in records)
    # in flight when the router went away: lost; sent after it: no socket to open
    assert classes["transport:ConnectionLost"] >= 1, classes
    assert classes["transport:ConnectError"] >= 5, classes
    assert set(classes) <= {"transport:ConnectionLost", "transport:ConnectError"}, classes


# -- pure helpers ------------------------------------------------------------------------


def _body(**members: object) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, **members})


META = {"provider": "alpha", "attempts": 2, "hedged": True, "failover": False, "strategy": "x"}
FAILED_OVER = {**META, "hedged": False, "failover": True}
THREE_FAILED = {"attempts": [{"error_class": "provider"}, {"error_class": "timeout"}, {}]}
ONE_FAILED = {"attempts": [{"provider": "alpha", "error_class": "rate_limited"}]}


def _err(code: int, **extra: object) -> dict[str, object]:
    return {"code": code, "message": "m", **extra}


# expected: outcome, error_class, provider, attempts, hedged, failover
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, _body(result="0x1", lasso_meta=META), ("ok", None, "alpha", 2, True, False)),
        (200, _body(result=None, lasso_meta=FAILED_OVER), ("ok", None, "alpha", 2, False, True)),
        (200, _body(result="0x1"), ("ok", None, None, 0, False, False)),  # answered locally
        (
            200,
            _body(error=_err(3), lasso_meta=META),
            ("client_error", "upstream:3", "alpha", 2, True, False),
        ),
        # An upstream -32602 passed through: the meta says it came from a provider.
        (
            200,
            _body(error=_err(-32602), lasso_meta=META),
            ("client_error", "upstream:-32602", "alpha", 2, True, False),
        ),
        (200, _body(error=_err(-32602)), ("error", "invalid_params", None, 0, False, False)),
        (
            200,
            _body(error=_err(-32002, data=THREE_FAILED)),
            ("error", "all_attempts_failed", None, 3, False, True),
        ),
        (
            200,
            _body(error=_err(-32002, data=ONE_FAILED)),
            ("error", "all_attempts_failed", None, 1, False, False),
        ),
        (
            200,
            _body(error=_err(-32001, data={"skipped": []})),
            ("error", "no_provider_available", None, 0, False, False),
        ),
        (
            200,
            _body(error=_err(-32003, data="odd")),
            ("error", "deadline_exceeded", None, 0, False, False),
        ),
        (429, _body(error=_err(-32005)), ("error", "rate_limited", None, 0, False, False)),
        (413, _body(error=_err(-32004)), ("error", "body_too_large", None, 0, False, False)),
        (
            200,
            _body(error=_err(-32000)),
            ("client_error", "upstream:-32000", None, 0, False, False),
        ),
        (
            200,
            b'{"jsonrpc":"2.0","id":1,"result":',
            ("error", "malformed_response", None, 0, False, False),
        ),
        (200, _body(), ("error", "malformed_response", None, 0, False, False)),
        (502, b"<html>bad gateway</html>", ("error", "http:502", None, 0, False, False)),
    ],
)
def test_classify_reply(status: int, body: bytes, expected: tuple[object, ...]) -> None:
    r = classify_reply(status, body)
    assert (r.outcome, r.error_class, r.provider, r.attempts, r.hedged, r.failover) == expected


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://h:1", "/rpc/ethereum", "http://h:1/rpc/ethereum?include_meta=body"),
        (
            "http://h:1/",
            "/rpc/eth?failover=true",
            "http://h:1/rpc/eth?failover=true&include_meta=body",
        ),
        (
            "http://h:1",
            "/rpc/eth?include_meta=headers&a=b",
            "http://h:1/rpc/eth?a=b&include_meta=body",
        ),
    ],
)
def test_meta_url(base: str, path: str, url: str) -> None:
    assert meta_url(base, path) == url
