"""Candidate filters: which providers of a chain may take a call now, and panic mode.

``decide`` runs before any strategy. Each provider is kept or skipped for one ``SkipReason``
(first that applies, in the order of the enum); the skipped ones go to ``Decision.skipped``
with their human text. What is left is ranked by the chain's strategy
(``routing/strategies.py``).

- A pin (``/rpc/provider/ID/...``) is honoured even with an open breaker; only a method the
  provider does not serve stops it. Without ``failover`` the pinned provider is the whole order.
- Half-open providers (background probe running) get user traffic only when nothing healthy is
  left: the decision is then ``last_resort``.
- Panic mode: when every candidate was skipped because its breaker is open or it was ejected
  as an outlier, those are tried anyway (a burst of timeouts from one stall trips them all at
  once; refusing every client for the whole recovery delay is worse). A breaker held open by an
  operator stays out.
- A provider at its own ``rate_limit_rps`` is skipped for the call (it would answer 429).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import msgspec

from lasso_rpc.resilience.breaker import BreakerState
from lasso_rpc.routing.decision import Decision
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.routing.strategies import RoutingStrategy
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["SkipReason", "decide", "skip_reason", "skip_text"]


class SkipReason(enum.StrEnum):
    """Why a provider is not a candidate; the value is the text ``Decision.skipped`` shows."""

    CORDONED = "cordoned"
    UNSUPPORTED = "method not supported"
    BREAKER_OPEN = "breaker open"
    BREAKER_BUSY = "breaker half_open"  # half-open with every probe slot taken
    EJECTED = "ejected (outlier)"
    RATE_LIMITED = "rate limited (backing off)"
    OVER_RATE = "at its rate_limit_rps"
    LAGGING = "lagging"  # shown with the lag: "lagging 7 blocks"
    PROBING = "breaker half_open (background probe)"  # kept back while healthy ones remain


def skip_reason(
    p: ProviderRuntime, method: str, *, head_sensitive: bool, max_lag: int, now_ms: float
) -> SkipReason | None:
    """Why ``p`` must not get ``method`` now, or None when it may."""
    if p.cordoned:
        return SkipReason.CORDONED
    if not p.permits(method) or method in p.unsupported:
        return SkipReason.UNSUPPORTED
    breaker = p.breaker
    if not breaker.admits():
        if breaker.state is BreakerState.HALF_OPEN:
            return SkipReason.BREAKER_BUSY
        return SkipReason.BREAKER_OPEN
    if p.ejection.ejected and p.ejection.active(now_ms):
        return SkipReason.EJECTED
    if now_ms < p.backoff_until_ms:
        return SkipReason.RATE_LIMITED
    cap = p.rate_cap
    if cap is not None and not cap.available():
        return SkipReason.OVER_RATE
    if head_sensitive and p.lag is not None and p.lag > max_lag:
        return SkipReason.LAGGING
    return None


def skip_text(reason: SkipReason, p: ProviderRuntime) -> str:
    """The text ``Decision.skipped`` shows for ``reason`` (the lag in blocks for LAGGING)."""
    if reason is SkipReason.LAGGING:
        return f"lagging {p.lag} blocks"
    return reason.value


def decide(
    providers: Iterable[ProviderRuntime],
    strategy: RoutingStrategy,
    req: RouteRequest,
    method: str,
    *,
    head_sensitive: bool,
    max_lag: int,
    now_ms: float,
    pinned: ProviderRuntime | None = None,
) -> Decision:
    """The candidates for ``method``, filtered (module docstring) and ranked by ``strategy``.

    ``pinned`` is the provider ``req.pin`` names (the caller looked it up).
    """
    pin = req.pin
    if pinned is not None:
        if not pinned.permits(method):
            return Decision(
                (),
                "provider",
                "pinned provider does not serve this method",
                ((pinned.id, SkipReason.UNSUPPORTED.value),),
            )
        if not req.failover:
            return Decision((pinned.id,), "provider", f"pinned to {pinned.id}")
    usable: list[ProviderRuntime] = []
    probing: list[ProviderRuntime] = []
    skipped: list[tuple[str, SkipReason, ProviderRuntime]] = []
    tripped: list[ProviderRuntime] = []
    for p in providers:
        if pin is not None and p.id == pin:
            continue
        why = skip_reason(p, method, head_sensitive=head_sensitive, max_lag=max_lag, now_ms=now_ms)
        if why is not None:
            skipped.append((p.id, why, p))
            if why is SkipReason.EJECTED or (
                why is SkipReason.BREAKER_OPEN and not p.breaker.snapshot().held
            ):
                tripped.append(p)
        elif p.breaker.closed:
            usable.append(p)
        else:
            probing.append(p)
    if not usable and not probing and tripped:
        probing = tripped  # panic mode (module docstring)
        panic = {p.id for p in tripped}
        skipped = [s for s in skipped if s[0] not in panic]
    last_resort = not usable and bool(probing)
    if last_resort:
        usable = probing
    else:
        skipped.extend((p.id, SkipReason.PROBING, p) for p in probing)
    d = strategy.rank(usable, method, req.transport, now_ms)
    if last_resort:
        d = msgspec.structs.replace(d, last_resort=True)
    if pin is not None:
        d = Decision((pin, *d.order), "provider", f"pinned to {pin}, failover allowed")
    if not skipped:
        return d
    return d.with_skipped([(pid, skip_text(why, p)) for pid, why, p in skipped])
