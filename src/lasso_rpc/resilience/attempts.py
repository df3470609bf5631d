"""One upstream attempt while it runs, and what a finished list of attempts says."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from lasso_rpc.observability.events import Attempt, is_provider_fault
from lasso_rpc.resilience.classify import ErrorClass
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["Try", "failed_over"]


def failed_over(attempts: tuple[Attempt, ...]) -> bool:
    """An attempt failed and another provider was tried (a hedge that merely won is not)."""
    return len(attempts) > 1 and any(is_provider_fault(a.outcome) for a in attempts)


@dataclass(slots=True)
class Try:
    """One attempt: filled in by ``Pipeline.attempt``, fed to stats and breaker by ``account``."""

    provider: ProviderRuntime
    hedged: bool
    started_ms: float
    kind: str = "fault"  # ok | client | fault
    payload: bytes | msgspec.Raw = b""
    error_class: ErrorClass | None = None
    error: str | None = None
    latency_ms: float = 0.0
    never_sent: bool = False
    timed_out: bool = False
    skipped: bool = False  # never sent (breaker): nothing to learn from it
    unsupported: bool = False  # the provider does not serve this method at all
    last_resort: bool = False  # every candidate is half-open: send even without a probe slot
    retry_after_s: float | None = None
    accounted: bool = False  # fed to stats and breaker already
    hedge_denied: bool = False  # its hedge was due but the chain's hedge budget was empty
    #: Sent although its breaker was open (panic mode): an answer is fresh news, not a late one.
    past_open_breaker: bool = False

    def as_attempt(self) -> Attempt:
        if self.kind in ("ok", "cancelled"):
            outcome = self.kind
        elif self.kind == "client":
            outcome = "client_error"
        else:
            outcome = str(self.error_class or "provider")
        return Attempt(
            self.provider.id, outcome, round(self.latency_ms, 3), self.hedged, self.error
        )
