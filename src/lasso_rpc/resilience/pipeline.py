"""One client call → upstream attempts: routing order, failover budget, hedging, write safety.

The pipeline never answers the client itself: it returns a ``CallOutcome`` (a result, or an
upstream client error passed through as is) or raises a ``RequestRejected`` that the server
turns into a JSON-RPC error. Every call ends in exactly one ``request.finished`` event.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from lasso_rpc.clock import Clock
from lasso_rpc.errors import (
    AllAttemptsFailed,
    DeadlineExceeded,
    NoProviderAvailable,
    RateLimited,
    RequestRejected,
    ResponseTooLarge,
    TransportError,
    UpstreamTimeout,
    error_name,
)
from lasso_rpc.jsonrpc.codec import Call, encode_upstream_request
from lasso_rpc.observability.events import Attempt, EventBus, RequestFinished
from lasso_rpc.observability.redact import redact
from lasso_rpc.resilience.accounting import account, censor
from lasso_rpc.resilience.answer import read_answer
from lasso_rpc.resilience.attempts import Try, failed_over
from lasso_rpc.resilience.breaker import BreakerState
from lasso_rpc.resilience.call import CallContext, CallOutcome
from lasso_rpc.resilience.classify import ErrorClass, classify_exception
from lasso_rpc.resilience.hedging import HedgedRun
from lasso_rpc.resilience.methods import is_head_sensitive, is_write_method
from lasso_rpc.routing.candidates import SkipReason
from lasso_rpc.routing.decision import Decision
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["Pipeline"]

_NO_DATA_HEDGE_MS = 500.0
_OVER_RATE = SkipReason.OVER_RATE.value
_MIN_ATTEMPT_TIMEOUT_MS = 1000.0
_TOO_LARGE = b'{"code":-32004,"message":"upstream response larger than max_response_bytes (%d)"}'


class Pipeline:
    def __init__(self, *, bus: EventBus, clock: Clock) -> None:
        self._bus = bus
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, looked up once: on CPython 3.11 each lookup is a getpid() call."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    async def execute(self, ctx: CallContext, call: Call) -> CallOutcome:
        t0 = self.clock.now_ms()
        tries: list[Try] = []
        decision: Decision | None = None
        try:
            decision = ctx.chain.decide(
                ctx.route, call.method, is_head_sensitive(call.method, call.params)
            )
            if not decision.order:
                data = {"skipped": [{"provider": p, "reason": r} for p, r in decision.skipped]}
                if decision.skipped and all(r == _OVER_RATE for _, r in decision.skipped):
                    raise RateLimited(
                        f"every provider of {ctx.chain.name} is at its rate_limit_rps", data=data
                    )
                raise NoProviderAvailable(
                    f"no provider available for {call.method} on {ctx.chain.name}", data=data
                )
            winner = await self._run(ctx, call, decision, t0, tries)
        except RequestRejected as exc:
            attempts = tuple([t.as_attempt() for t in tries])
            error = error_name(type(exc))
            denied = _denied(tries)
            self._bus.publish(
                self._event(ctx, call, t0, attempts, decision, "error", error, None, denied)
            )
            raise
        attempts = tuple([t.as_attempt() for t in tries])
        ok = winner.kind == "ok"
        status = "ok" if ok else "client_error"
        event = self._event(
            ctx, call, t0, attempts, decision, status, None, winner.provider.id, _denied(tries)
        )
        # The answer goes out first: stats, breaker and event subscribers run right after it
        # (the next loop iteration), not between the upstream's answer and the client.
        self.loop().call_soon(self._after, winner, call, ctx, event)
        return CallOutcome(
            ok,
            winner.payload,
            winner.provider.id,
            attempts,
            event.hedged,  # a hedge was sent (it may have lost): what it cost, not who won
            event.latency_ms,
            decision,
            hedge_denied=event.hedge_denied,
        )

    def _after(self, winner: Try, call: Call, ctx: CallContext, event: RequestFinished) -> None:
        if not winner.accounted:
            self.account(winner, call, ctx)
        self._bus.publish(event)

    def publish_local(
        self, ctx: CallContext, call: Call, error: RequestRejected | None = None
    ) -> None:
        """The event for a call answered or refused by the router itself."""
        t0 = self.clock.now_ms()
        if error is None:
            event = self._event(ctx, call, t0, (), None, "ok", None, None)
        else:
            event = self._event(ctx, call, t0, (), None, "error", error_name(type(error)), None)
        self._bus.publish(event)

    def _event(
        self,
        ctx: CallContext,
        call: Call,
        t0: float,
        attempts: tuple[Attempt, ...],
        decision: Decision | None,
        status: str,
        error_class: str | None,
        provider: str | None,
        denied: bool = False,
    ) -> RequestFinished:
        latency_ms = self.clock.now_ms() - t0
        return RequestFinished(
            ts=self.clock.wall_s(),
            request_id=ctx.request_id,
            profile=ctx.chain.profile,
            chain=ctx.chain.name,
            method=call.method,
            strategy=ctx.route.strategy if ctx.route.pin is None else "provider",
            transport=ctx.route.transport,
            status=status,
            error_class=error_class,
            latency_ms=latency_ms,
            attempts=attempts,
            hedged=any(a.hedged for a in attempts),
            failover=failed_over(attempts),
            provider=provider,
            decision=decision,
            hedge_denied=denied,
        )

    async def _run(
        self, ctx: CallContext, call: Call, decision: Decision, t0: float, tries: list[Try]
    ) -> Try:
        """The winning attempt (an answer: ``ok`` or ``client``), or a RequestRejected."""
        chain = ctx.chain
        routing = chain.routing
        write = is_write_method(call.method)
        hedge = routing.hedge
        order = decision.order
        # With one candidate a hedge has nobody to go to: no concurrency, no Task, no wait.
        if write or not hedge.enabled or hedge.max_extra <= 0 or len(order) == 1:
            winner = await self._run_sequential(ctx, call, decision, t0, tries, write)
        else:
            chain.hedge_budget.deposit(t0)
            winner = await HedgedRun(self, ctx, call, decision, t0, tries).run()
        if winner is not None:
            return winner
        if self.clock.now_ms() >= t0 + routing.request_timeout_ms:
            raise DeadlineExceeded(
                f"request deadline of {routing.request_timeout_ms} ms exceeded",
                data={"attempts": _attempts_data(tries)},
            )
        raise AllAttemptsFailed(
            f"all {len(tries)} attempt(s) failed for {call.method}",
            data={"attempts": _attempts_data(tries)},
        )

    async def _run_sequential(
        self,
        ctx: CallContext,
        call: Call,
        decision: Decision,
        t0: float,
        tries: list[Try],
        write: bool,
    ) -> Try | None:
        """One attempt at a time, each awaited in place: the common case and every write."""
        chain = ctx.chain
        routing = chain.routing
        providers = chain.providers
        order = decision.order
        max_attempts = routing.max_attempts
        budget = 1 if write else max_attempts
        deadline = t0 + routing.request_timeout_ms
        clock = self.clock
        n = 0
        while True:
            # The same provider again only when it is the only one.
            pid = order[n] if n < len(order) else order[0] if len(order) == 1 else None
            if pid is None:
                return None
            p = providers[pid]
            now = clock.now_ms()
            tr = Try(p, False, now, last_resort=decision.last_resort)
            tries.append(tr)
            remaining = deadline - now
            timeout_ms = self.attempt_timeout(p, call, ctx, remaining)
            await self.attempt(tr, call, ctx, timeout_ms / 1000.0, write)
            if self.cut_by_deadline(tr, call, ctx, timeout_ms, remaining):
                return None
            n += 1
            if tr.kind != "fault":
                return tr  # accounted by execute, once the answer is on its way
            self.account(tr, call, ctx)
            if write:
                if not tr.never_sent:
                    return None  # may have reached a provider: never broadcast twice
                budget = min(budget + 1, max_attempts)
            if n >= budget or clock.now_ms() >= deadline:
                return None

    def cut_by_deadline(
        self, tr: Try, call: Call, ctx: CallContext, timeout_ms: float, remaining_ms: float
    ) -> bool:
        """True when ``tr`` timed out on the request's deadline, not the provider's own timeout.

        Like a hedge loser, such an attempt is cancelled rather than charged as a fault.
        """
        if tr.timed_out and timeout_ms >= remaining_ms:
            self.cancel_try(tr, call, ctx, "cancelled (request deadline)", slow=True)
            return True
        return False

    def cancel_try(
        self, tr: Try, call: Call, ctx: CallContext, why: str, *, slow: bool = False
    ) -> None:
        censor(tr, call, ctx, why, slow, self.clock.now_ms())

    def attempt_timeout(
        self, p: ProviderRuntime, call: Call, ctx: CallContext, remaining_ms: float
    ) -> float:
        routing = ctx.chain.routing
        cap = float(p.config.timeout_ms or routing.attempt_timeout_ms or routing.request_timeout_ms)
        p99 = p.stats.percentile_hint(call.method, ctx.route.transport, 0.99)
        if p99 is not None:
            cap = min(cap, max(_MIN_ATTEMPT_TIMEOUT_MS, 4.0 * p99))
        return max(min(cap, remaining_ms), 1.0)

    def hedge_delay(self, p: ProviderRuntime, call: Call, ctx: CallContext) -> float:
        """The provider's tail for the method, at least ``median_factor`` x its median and
        ``min_delay_ms``: only a call that is late for this provider is hedged."""
        hedge = ctx.chain.routing.hedge
        after = hedge.after
        if isinstance(after, int):
            return float(after)
        stats, transport = p.stats, ctx.route.transport
        tail = stats.percentile_hint(call.method, transport, int(after[1:]) / 100.0)
        if tail is None:
            return _NO_DATA_HEDGE_MS
        median = stats.percentile_hint(call.method, transport, 0.5) or 0.0
        return max(float(hedge.min_delay_ms), tail, hedge.median_factor * median)

    async def attempt(
        self, tr: Try, call: Call, ctx: CallContext, timeout_s: float, write: bool
    ) -> None:
        p = tr.provider
        uid = next(self._ids)
        pinned = ctx.route.pin == p.id
        if not p.breaker.acquire() and not pinned:
            # Open (it tripped while this call was on its way) or half-open with its probe
            # slot taken. Sent only in panic mode: as decided then, or as decided now.
            if not tr.last_resort and not self._panic_now(ctx, call, p):
                return _skip(tr, "breaker open or probe busy")
            tr.last_resort = True
            tr.past_open_breaker = p.breaker.state is BreakerState.OPEN
        cap = p.rate_cap
        if cap is not None:
            if pinned:
                cap.charge()  # a pin is the client's explicit choice: sent, and counted
            elif not cap.take():
                p.breaker.release()  # the probe slot acquire() may have taken
                return _skip(tr, "at its rate_limit_rps")
        p.in_flight += 1
        try:
            resp = await p.transport.post(encode_upstream_request(uid, call), timeout_s=timeout_s)
        except ResponseTooLarge:
            # Our own cap, the same for every provider: failing over would only repeat it, and
            # no provider is sick. The client learns why.
            tr.kind, tr.payload = "client", _TOO_LARGE % ctx.chain.routing.max_response_bytes
            return
        except TransportError as exc:
            tr.error_class = classify_exception(exc)
            tr.error = redact(f"{type(exc).__name__}: {exc}")
            tr.never_sent = exc.never_sent
            tr.timed_out = isinstance(exc, UpstreamTimeout)
            return
        finally:
            p.in_flight -= 1
            tr.latency_ms = self.clock.now_ms() - tr.started_ms
        p.last_answer_ms = tr.started_ms + tr.latency_ms
        read_answer(tr, resp, call, uid, write)

    def _panic_now(self, ctx: CallContext, call: Call, p: ProviderRuntime) -> bool:
        """Would the call be sent to ``p`` in panic mode if it were decided now?"""
        d = ctx.chain.decide(ctx.route, call.method, is_head_sensitive(call.method, call.params))
        return d.last_resort and p.id in d.order

    def account(self, tr: Try, call: Call, ctx: CallContext) -> None:
        account(tr, call, ctx, self.clock.now_ms())


def _skip(tr: Try, why: str) -> None:
    """``tr`` is not sent at all: nothing to learn from it, and the next provider follows."""
    tr.error_class, tr.error, tr.never_sent, tr.skipped = ErrorClass.PROVIDER, why, True, True


def _denied(tries: list[Try]) -> bool:
    for t in tries:  # noqa: SIM110 (any() with a generator costs more than the whole loop)
        if t.hedge_denied:
            return True
    return False


def _attempts_data(tries: list[Try]) -> list[dict[str, Any]]:
    return [
        {
            "provider": t.provider.id,
            "error_class": t.as_attempt().outcome,
            "latency_ms": round(t.latency_ms, 1),
            **({"error": t.error} if t.error else {}),
        }
        for t in tries
    ]
