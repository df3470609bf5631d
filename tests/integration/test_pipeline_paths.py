"""The pipeline's two paths (in place, and hedged with tasks) through fake transports at the
transport seam: no sockets, real time in milliseconds."""

from __future__ import annotations

import asyncio
import re

import pytest

from lasso_rpc.config import load_config_text
from lasso_rpc.errors import AllAttemptsFailed, ConnectError, DeadlineExceeded, UpstreamTimeout
from lasso_rpc.jsonrpc.codec import Call
from lasso_rpc.observability.events import Event, RequestFinished
from lasso_rpc.resilience.call import CallContext, CallOutcome
from lasso_rpc.router import Router
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.transport.base import UpstreamResponse

pytestmark = pytest.mark.asyncio
_ID = re.compile(rb'"id":(\d+)')

#: One behaviour of a fake provider: (delay in seconds, body template or an exception).
Step = tuple[float, "bytes | Exception"]
OK: Step = (0.0, b'{"jsonrpc":"2.0","id":%s,"result":"0x1"}')


class FakeTransport:
    """Answers each post with the next scripted step (the last one repeats)."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.sent = 0
        self.cancelled = 0

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        delay, what = self.steps[min(self.sent, len(self.steps) - 1)]
        self.sent += 1
        try:
            if delay > timeout_s:
                await asyncio.sleep(timeout_s)
                raise UpstreamTimeout(f"no answer within {timeout_s:g}s")
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(what, Exception):
            raise what
        m = _ID.search(body)
        assert m is not None
        return UpstreamResponse(200, what.replace(b"%s", m.group(1)))

    async def aclose(self) -> None:
        return None


def _router(providers: dict[str, list[Step]], routing: str = "{}") -> Router:
    lines = [
        f"      - {{id: {p}, url: 'http://127.0.0.1:1/{p}', priority: {i}}}"
        for i, p in enumerate(providers)
    ]
    text = (
        "name: T\nslug: t\nchains:\n  eth:\n    chain_id: 1\n    providers:\n"
        + "\n".join(lines)
        + f"\nrouting: {routing}\n"
    )
    router = Router(load_config_text([("t.yaml", text)]))
    for chain in router.chains():
        for pid, steps in providers.items():
            chain.providers[pid].transport = FakeTransport(steps)
    return router


def _fake(router: Router, pid: str) -> FakeTransport:
    t = router.chains()[0].providers[pid].transport
    assert isinstance(t, FakeTransport)
    return t


async def _call(
    router: Router, method: str = "eth_getBalance", params: bytes = b'["0x1","latest"]'
) -> tuple[CallOutcome | Exception, list[RequestFinished]]:
    events: list[Event] = []
    router.bus.subscribe(events.append)
    chain = router.chains()[0]
    ctx = CallContext("r1", chain, RouteRequest("priority"))
    try:
        out: CallOutcome | Exception = await router.pipeline.execute(
            ctx, Call(method, params, b"1")
        )
    except Exception as exc:
        out = exc
    await asyncio.sleep(0)  # let cancelled losers unwind
    return out, [e for e in events if isinstance(e, RequestFinished)]


async def test_an_answer_with_error_null_beside_its_result_is_a_success() -> None:
    body = b'{"jsonrpc":"2.0","id":%s,"result":"0x2a","error":null}'
    router = _router({"a": [(0.0, body)], "b": [OK]}, "{hedge: {enabled: false}}")
    out, events = await _call(router)
    assert isinstance(out, CallOutcome) and out.ok and bytes(out.payload) == b'"0x2a"'
    assert out.provider == "a" and _fake(router, "b").sent == 0
    assert [e.status for e in events] == ["ok"]


@pytest.mark.parametrize("routing", ["{hedge: {enabled: false}}", "{}"])
async def test_a_fault_fails_over_to_the_next_provider(routing: str) -> None:
    router = _router({"a": [(0.0, ConnectError("refused"))], "b": [OK]}, routing)
    out, events = await _call(router)
    assert isinstance(out, CallOutcome) and out.ok and out.provider == "b"
    assert [a.outcome for a in out.attempts] == ["provider", "ok"]
    assert out.failover and events[0].failover and events[0].attempts == out.attempts


async def test_every_attempt_failing_lists_them_all_and_charges_each_breaker() -> None:
    err = (0.0, b"<html>502 Bad Gateway</html>")
    router = _router({"a": [err], "b": [err], "c": [err]}, "{hedge: {enabled: false}}")
    out, events = await _call(router)
    assert isinstance(out, AllAttemptsFailed)
    assert [a["provider"] for a in out.data["attempts"]] == ["a", "b", "c"]
    assert events[0].status == "error" and events[0].error_class == "all_attempts_failed"
    for p in router.chains()[0].providers.values():
        assert p.breaker.snapshot().consecutive_failures == 1


async def test_a_write_is_sent_once_even_when_it_fails() -> None:
    router = _router({"a": [(0.0, b"not json")], "b": [OK]})
    out, _ = await _call(router, "eth_sendRawTransaction", b'["0x02"]')
    assert isinstance(out, AllAttemptsFailed)
    assert (_fake(router, "a").sent, _fake(router, "b").sent) == (1, 0)


async def test_a_write_that_never_left_goes_to_the_next_provider() -> None:
    never = ConnectError("refused")
    never.never_sent = True
    router = _router({"a": [(0.0, never)], "b": [OK]})
    out, _ = await _call(router, "eth_sendRawTransaction", b'["0x02"]')
    assert isinstance(out, CallOutcome) and out.provider == "b"


async def test_a_slow_first_provider_is_hedged_and_the_loser_cancelled() -> None:
    router = _router({"a": [(0.5, OK[1])], "b": [OK]}, "{hedge: {after: 30}}")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out, events = await _call(router)
    assert loop.time() - t0 < 0.3
    assert isinstance(out, CallOutcome) and out.provider == "b" and out.hedged
    assert [(a.provider, a.outcome, a.hedged) for a in out.attempts] == [
        ("a", "cancelled", False),
        ("b", "ok", True),
    ]
    assert not out.failover  # a hedge that merely won is not a failover
    assert events[0].hedged and _fake(router, "a").cancelled == 1


async def test_a_fast_first_provider_never_sends_the_hedge() -> None:
    router = _router({"a": [(0.01, OK[1])], "b": [OK]}, "{hedge: {after: 200}}")
    out, _ = await _call(router)
    assert isinstance(out, CallOutcome) and out.provider == "a" and not out.hedged
    assert _fake(router, "b").sent == 0


@pytest.mark.parametrize("routing", ["{hedge: {enabled: false}}", "{hedge: {after: 50}}"])
async def test_the_request_deadline_cancels_rather_than_charges(routing: str) -> None:
    timeouts = "request_timeout_ms: 150, attempt_timeout_ms: 10000"
    router = _router(
        {"a": [(5.0, OK[1])], "b": [(5.0, OK[1])]}, routing[:-1] + ", " + timeouts + "}"
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out, events = await _call(router)
    assert loop.time() - t0 < 1.0
    assert isinstance(out, DeadlineExceeded)
    assert events[0].error_class == "deadline_exceeded"
    assert all(a.outcome == "cancelled" for a in events[0].attempts)
    for p in router.chains()[0].providers.values():
        assert p.breaker.snapshot().consecutive_failures == 0


async def test_one_candidate_is_tried_again_until_the_budget_is_spent() -> None:
    router = _router({"a": [(0.0, ConnectError("refused")), (0.0, ConnectError("x")), OK]})
    out, _ = await _call(router)
    assert isinstance(out, CallOutcome) and out.ok
    assert [a.provider for a in out.attempts] == ["a", "a", "a"]


async def test_a_hedge_that_fails_leaves_the_first_attempt_to_answer() -> None:
    router = _router({"a": [(0.15, OK[1])], "b": [(0.0, b"junk")]}, "{hedge: {after: 30}}")
    out, _ = await _call(router)
    # hedged: a hedge was sent (it cost a request), although the first attempt answered
    assert isinstance(out, CallOutcome) and out.provider == "a" and out.hedged
    assert [(a.provider, a.outcome, a.hedged) for a in out.attempts] == [
        ("a", "ok", False),
        ("b", "provider", True),
    ]
    b = router.chains()[0].providers["b"]
    assert b.breaker.snapshot().consecutive_failures == 1  # the failed hedge is charged


async def test_when_the_first_attempt_fails_the_hedge_in_flight_answers() -> None:
    router = _router(
        {"a": [(0.1, ConnectError("reset"))], "b": [(0.15, OK[1])], "c": [OK]},
        "{hedge: {after: 30}}",
    )
    out, _ = await _call(router)
    assert isinstance(out, CallOutcome) and out.provider == "b"
    assert [a.outcome for a in out.attempts] == ["provider", "ok"]
    assert _fake(router, "c").sent == 0  # no third attempt while the hedge was on its way


async def test_two_hedges_when_max_extra_allows() -> None:
    router = _router(
        {"a": [(1.0, OK[1])], "b": [(1.0, OK[1])], "c": [OK]},
        "{hedge: {after: 30, max_extra: 2}}",
    )
    out, _ = await _call(router)
    assert isinstance(out, CallOutcome) and out.provider == "c"
    assert [(a.provider, a.outcome) for a in out.attempts] == [
        ("a", "cancelled"),
        ("b", "cancelled"),
        ("c", "ok"),
    ]
    assert (_fake(router, "a").cancelled, _fake(router, "b").cancelled) == (1, 1)


async def test_a_won_hedge_leaves_no_cancellation_behind() -> None:
    router = _router({"a": [(0.5, OK[1])], "b": [OK]}, "{hedge: {after: 20}}")
    out, _ = await _call(router)
    assert isinstance(out, CallOutcome) and out.provider == "b"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # would raise CancelledError if a cancel were still pending


async def test_cancelling_the_caller_during_the_first_attempt_still_cancels() -> None:
    router = _router({"a": [(1.0, OK[1])], "b": [(1.0, OK[1])]}, "{hedge: {after: 20}}")
    chain = router.chains()[0]
    ctx = CallContext("r1", chain, RouteRequest("priority"))
    task = asyncio.create_task(
        router.pipeline.execute(ctx, Call("eth_getBalance", b'["0x1","latest"]', b"1"))
    )
    await asyncio.sleep(0.05)  # the first attempt is in place and the hedge is out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert all(p.in_flight == 0 for p in chain.providers.values())
    assert (_fake(router, "a").cancelled, _fake(router, "b").cancelled) == (1, 1)
