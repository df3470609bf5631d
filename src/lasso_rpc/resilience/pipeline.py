"""One client call → upstream attempts: routing order, failover budget, hedging, write safety.

The pipeline never answers the client itself: it returns a ``CallOutcome`` (a result, or an
upstream client error passed through as is) or raises a ``RequestRejected`` that the server
turns into a JSON-RPC error. Every call ends in exactly one ``request.finished`` event.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import msgspec

from lasso_rpc.clock import Clock
from lasso_rpc.errors import (
    AllAttemptsFailed,
    DeadlineExceeded,
    NoProviderAvailable,
    RequestRejected,
    ResponseTooLarge,
    TransportError,
    UpstreamTimeout,
    error_name,
)
from lasso_rpc.jsonrpc.codec import Call, decode_error, decode_upstream, encode_upstream_request
from lasso_rpc.observability.events import Attempt, EventBus, RequestFinished
from lasso_rpc.observability.redact import redact
from lasso_rpc.resilience.attempts import Try, failed_over
from lasso_rpc.resilience.call import CallContext, CallOutcome
from lasso_rpc.resilience.classify import (
    ErrorClass,
    RpcErrorInfo,
    classify_exception,
    classify_response,
    is_already_known,
    is_method_unsupported,
)
from lasso_rpc.resilience.hedging import HedgedRun
from lasso_rpc.resilience.methods import is_head_sensitive, is_write_method
from lasso_rpc.routing.decision import Decision
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["Pipeline"]

_NO_DATA_HEDGE_MS = 500.0
_MIN_ATTEMPT_TIMEOUT_MS = 1000.0
_RATE_LIMIT_BACKOFF_MS = 1000.0
_NULL = msgspec.Raw(b"null")
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
                raise NoProviderAvailable(
                    f"no provider available for {call.method} on {ctx.chain.name}",
                    data={"skipped": [{"provider": p, "reason": r} for p, r in decision.skipped]},
                )
            winner = await self._run(ctx, call, decision, t0, tries)
        except RequestRejected as exc:
            attempts = tuple([t.as_attempt() for t in tries])
            error = error_name(type(exc))
            self._bus.publish(self._event(ctx, call, t0, attempts, decision, "error", error, None))
            raise
        attempts = tuple([t.as_attempt() for t in tries])
        ok = winner.kind == "ok"
        status = "ok" if ok else "client_error"
        event = self._event(ctx, call, t0, attempts, decision, status, None, winner.provider.id)
        # The answer goes out first: stats, breaker and event subscribers run right after it
        # (the next loop iteration), not between the upstream's answer and the client.
        self.loop().call_soon(self._after, winner, call, ctx, event)
        return CallOutcome(
            ok,
            winner.payload,
            winner.provider.id,
            attempts,
            winner.hedged,
            event.latency_ms,
            decision,
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
            self.cancel_try(tr, call, ctx, "cancelled (request deadline)")
            return True
        return False

    def cancel_try(self, tr: Try, call: Call, ctx: CallContext, why: str) -> None:
        now = self.clock.now_ms()
        tr.kind = "cancelled"
        tr.error = why
        tr.latency_ms = now - tr.started_ms
        tr.provider.breaker.release()
        # A loser is known to be at least this slow: a censored sample moves its latency
        # estimate up (never down) so `fastest` stops preferring a provider that hangs.
        tr.provider.stats.censored(call.method, ctx.route.transport, tr.latency_ms, now)

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
        after = ctx.chain.routing.hedge.after
        if isinstance(after, int):
            return float(after)
        q = int(after[1:]) / 100.0
        v = p.stats.percentile_hint(call.method, ctx.route.transport, q)
        if v is None:
            return _NO_DATA_HEDGE_MS
        return max(float(ctx.chain.routing.hedge.min_delay_ms), v)

    async def attempt(
        self, tr: Try, call: Call, ctx: CallContext, timeout_s: float, write: bool
    ) -> None:
        p = tr.provider
        uid = next(self._ids)
        if not p.breaker.acquire() and ctx.route.pin != p.id and not tr.last_resort:
            # Half-open with its probe slot taken: this attempt is not sent at all.
            tr.error_class, tr.error, tr.never_sent = (
                ErrorClass.PROVIDER,
                "breaker probe busy",
                True,
            )
            tr.skipped = True
            return
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
        tr.retry_after_s = resp.retry_after_s
        if resp.status == 429:
            tr.error_class, tr.error = ErrorClass.RATE_LIMITED, "HTTP 429"
            return
        try:
            reply = decode_upstream(resp.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            tr.error_class = ErrorClass.PROVIDER
            tr.error = f"HTTP {resp.status}: malformed JSON-RPC body"
            return
        if reply.error is not msgspec.UNSET and reply.error != _NULL:  # some send "error": null
            raw = bytes(reply.error)
            info = decode_error(raw)
            err = RpcErrorInfo(info.code, info.message, info.data)
            cls = classify_response(
                status=resp.status,
                error=err,
                method=call.method,
                overrides=p.config.error_overrides,
            )
            if write and is_already_known(err):
                # The transaction is in the pool already: success for the client and the stats.
                tr.kind, tr.payload = "client", raw
                return
            if cls is ErrorClass.CLIENT or cls is None:
                tr.kind, tr.payload = "client", raw
                return
            tr.error_class = cls
            tr.unsupported = cls is ErrorClass.CAPABILITY and is_method_unsupported(err)
            tr.error = redact(f"HTTP {resp.status}: {info.code} {info.message}"[:300])
            return
        if reply.id != uid:
            tr.error_class, tr.error = ErrorClass.PROVIDER, "wrong id in upstream answer"
            return
        if reply.result is msgspec.UNSET or resp.status >= 300:
            cls = classify_response(status=resp.status, error=None, method=call.method)
            tr.error_class = cls or ErrorClass.PROVIDER
            tr.error = f"HTTP {resp.status} without result"
            return
        tr.kind, tr.payload = "ok", reply.result

    def account(self, tr: Try, call: Call, ctx: CallContext) -> None:
        """Feed the outcome of a finished attempt to stats, breaker and capability memory."""
        p = tr.provider
        now = self.clock.now_ms()
        tr.accounted = True
        if tr.kind == "ok":
            p.stats.record(call.method, ctx.route.transport, tr.latency_ms, True, now)
            p.breaker.record(None)
            return
        if tr.kind == "client":
            p.stats.record(call.method, ctx.route.transport, tr.latency_ms, True, now)
            p.breaker.record(ErrorClass.CLIENT)
            return
        if tr.skipped:
            return
        cls = tr.error_class or ErrorClass.PROVIDER
        p.breaker.record(cls)
        if cls is ErrorClass.CAPABILITY:
            if tr.unsupported:
                p.unsupported.add(call.method)
        elif cls is ErrorClass.RATE_LIMITED:
            back = (tr.retry_after_s * 1000.0) if tr.retry_after_s else _RATE_LIMIT_BACKOFF_MS
            p.backoff_until_ms = now + min(back, 60_000.0)
        elif cls is not ErrorClass.LAGGING:
            p.stats.record(
                call.method, ctx.route.transport, tr.latency_ms, False, now, timed_out=tr.timed_out
            )


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
