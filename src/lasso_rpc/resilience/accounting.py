"""What a finished (or cancelled) attempt teaches: stats, breaker, outliers, capabilities.

``account`` is called once per attempt that ended with an answer or a fault; ``censor`` once
per attempt cancelled unanswered (a hedge race lost, the request's deadline). The table of what
feeds what is in ``routing/latency.py`` (stats) and ``resilience/outliers.py`` (ejection).
"""

from __future__ import annotations

from lasso_rpc.jsonrpc.codec import Call
from lasso_rpc.resilience.attempts import Try
from lasso_rpc.resilience.call import CallContext
from lasso_rpc.resilience.classify import ErrorClass

__all__ = ["account", "censor"]

_RATE_LIMIT_BACKOFF_MS = 1000.0
_MAX_BACKOFF_MS = 60_000.0


def account(tr: Try, call: Call, ctx: CallContext, now: float) -> None:
    """Feed a finished attempt to stats, breaker, outlier detection and capability memory."""
    p = tr.provider
    tr.accounted = True
    transport = ctx.route.transport
    if tr.kind == "ok" or tr.kind == "client":
        p.stats.record(call.method, transport, tr.latency_ms, True, now)
        outcome = None if tr.kind == "ok" else ErrorClass.CLIENT
        p.breaker.record(outcome, fresh=tr.past_open_breaker)
        ctx.chain.outliers.ok(p, call.method, transport, tr.latency_ms, now)
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
        p.backoff_until_ms = now + min(back, _MAX_BACKOFF_MS)
    elif cls is not ErrorClass.LAGGING:
        p.stats.record(call.method, transport, tr.latency_ms, False, now, timed_out=tr.timed_out)
        if tr.timed_out:
            ctx.chain.outliers.slow(p, now, f"timed out after {tr.latency_ms:.0f} ms")
        else:
            ctx.chain.outliers.fault(p, now)


def censor(tr: Try, call: Call, ctx: CallContext, why: str, slow: bool, now: float) -> None:
    """End ``tr`` unanswered. ``slow``: it lost a race it had a head start in, or the request's
    deadline cut it, so the provider was slow rather than merely second."""
    tr.kind = "cancelled"
    tr.error = why
    tr.latency_ms = now - tr.started_ms
    p = tr.provider
    p.breaker.release()
    # At least this slow: a censored sample moves the latency estimate up (never down), so a
    # provider that hangs stops looking fast; the outlier detector hears of it too.
    p.stats.censored(call.method, ctx.route.transport, tr.latency_ms, now)
    if slow:
        ctx.chain.outliers.slow(p, now, f"{why} after {tr.latency_ms:.0f} ms")
