"""Readiness that tells the truth: which providers of a chain are usable right now, and why not.

A provider is usable when it is not cordoned, its breaker is not open, and its most recent
health poll (``upstream/heads.py``) answered no longer than its window ago
(``probe.health_window_ms``). A provider that refuses connections never answers, so it is never
usable, whatever it looked like before the first client request. A chain is ready when at least
one provider is usable; ``/ready`` is 503 while any chain is not, and says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lasso_rpc.upstream.probe import health_window_ms

if TYPE_CHECKING:
    from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["ChainReadiness", "ProviderReadiness", "chain_readiness", "provider_readiness"]


@dataclass(frozen=True, slots=True)
class ProviderReadiness:
    provider: str
    usable: bool
    #: Plain words: "answered a health poll 0.4 s ago", or why it is not usable.
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReadiness:
    profile: str
    chain: str
    window_ms: int
    providers: tuple[ProviderReadiness, ...]

    @property
    def usable(self) -> list[str]:
        return [p.provider for p in self.providers if p.usable]

    @property
    def ready(self) -> bool:
        return any(p.usable for p in self.providers)

    @property
    def reason(self) -> str | None:
        """Why the chain is not ready (None when it is)."""
        if self.ready:
            return None
        why = "; ".join(f"{p.provider}: {p.reason}" for p in self.providers)
        return (
            f"{self.profile}/{self.chain}: no provider answered a health poll within "
            f"{self.window_ms / 1000:g} s ({why})"
        )


def _ago(now_ms: float, at_ms: float) -> str:
    return f"{max(0.0, now_ms - at_ms) / 1000:.1f} s ago"


def provider_readiness(p: ProviderRuntime, *, now_ms: float, window_ms: int) -> ProviderReadiness:
    probe = p.probe
    if p.cordoned:
        return ProviderReadiness(p.id, False, "cordoned")
    if p.breaker.state == "open":
        last = p.breaker.snapshot().last_reason
        return ProviderReadiness(p.id, False, "breaker open" + (f" ({last})" if last else ""))
    if probe.last_failed and probe.last_failed_ms is not None:
        polls = "poll" if probe.failures == 1 else f"{probe.failures} polls"
        return ProviderReadiness(
            p.id,
            False,
            f"health {polls} failed, last {_ago(now_ms, probe.last_failed_ms)}: {probe.last_error}",
        )
    if probe.last_ok_ms is None:
        return ProviderReadiness(p.id, False, "no health poll answered yet")
    if now_ms - probe.last_ok_ms > window_ms:
        return ProviderReadiness(
            p.id, False, f"last answered health poll {_ago(now_ms, probe.last_ok_ms)}"
        )
    return ProviderReadiness(p.id, True, f"answered a health poll {_ago(now_ms, probe.last_ok_ms)}")


def chain_readiness(
    profile: str,
    chain: str,
    providers: Iterable[ProviderRuntime],
    *,
    poll_ms: int,
    now_ms: float,
) -> ChainReadiness:
    """The readiness of one chain whose providers are polled every ``poll_ms``."""
    window = health_window_ms(poll_ms)
    return ChainReadiness(
        profile,
        chain,
        window,
        tuple(provider_readiness(p, now_ms=now_ms, window_ms=window) for p in providers),
    )
