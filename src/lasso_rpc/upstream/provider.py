"""One upstream provider as the router sees it: identity, transport, stats, breaker, head.

``build_provider`` wires one from its config: the transport (``transport/factory.py``), the
breaker's transitions published on the event bus as ``breaker.changed`` (``BreakerEvents``) and
its ejection's changes as ``provider.ejection`` (``EjectionEvents``).
Which providers may take a call is decided in ``routing/candidates.py``; heads and lag are
kept up to date by ``upstream/heads.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from lasso_rpc.clock import Clock
from lasso_rpc.config.models import ProviderConfig, RoutingConfig
from lasso_rpc.observability.events import BreakerChanged, EventBus, ProviderEjection
from lasso_rpc.observability.redact import mask_url
from lasso_rpc.resilience.breaker import BreakerTransition, CircuitBreaker
from lasso_rpc.resilience.budget import TokenBucket
from lasso_rpc.resilience.ejection import Ejection, EjectionSnapshot
from lasso_rpc.routing.stats import ProviderStats
from lasso_rpc.transport.base import UpstreamTransport
from lasso_rpc.transport.factory import provider_transport
from lasso_rpc.upstream.probe import ProbeRecord

__all__ = ["BreakerEvents", "EjectionEvents", "ProviderRuntime", "build_provider"]


class ProviderRuntime:
    """Mutable runtime state of one provider; everything routing needs to skip or rank it."""

    __slots__ = (
        "_permits",
        "backoff_until_ms",
        "breaker",
        "chain",
        "config",
        "cordoned",
        "ejection",
        "head",
        "id",
        "in_flight",
        "lag",
        "last_answer_ms",
        "masked_url",
        "probe",
        "rate_cap",
        "stats",
        "transport",
        "unsupported",
    )

    def __init__(
        self,
        chain: str,
        config: ProviderConfig,
        routing: RoutingConfig,
        transport: UpstreamTransport,
        *,
        clock: Clock,
        rng: random.Random,
        on_breaker_change: Callable[[BreakerTransition], None] | None = None,
        on_ejection_change: Callable[[EjectionSnapshot], None] | None = None,
    ) -> None:
        self.chain = chain
        self.id = config.id
        self.config = config
        self.transport = transport
        self.stats = ProviderStats()
        self.breaker = CircuitBreaker(
            routing.breaker,
            clock=clock,
            rng=rng,
            on_change=on_breaker_change,
            name=f"{chain}/{config.id}/http",
        )
        self.ejection = Ejection(routing.ejection, clock=clock, on_change=on_ejection_change)
        rps = config.rate_limit_rps
        #: The provider's own rate (rate_limit_rps), spent by every send and head poll.
        self.rate_cap = (
            None
            if rps is None
            else TokenBucket(rps, config.rate_limit_burst or max(1.0, rps), clock=clock)
        )
        self.cordoned = False
        self.unsupported: set[str] = set()
        self.head: int | None = None
        self.lag: int | None = None
        self.in_flight = 0
        #: When it last answered a call (any HTTP answer), on the router's clock.
        self.last_answer_ms = -float("inf")
        self.backoff_until_ms = 0.0
        self.masked_url = mask_url(config.url)
        #: The health poll's last answer and failure (``upstream/readiness.py`` reads it).
        self.probe = ProbeRecord()
        self._permits: dict[str, bool] = {}

    @property
    def priority(self) -> int:
        return self.config.priority

    @property
    def weight(self) -> float:
        return self.config.weight

    def eject(self, until_ms: float, reason: str) -> None:
        """Leave this provider out until ``until_ms`` (``resilience/ejection.py``)."""
        self.ejection.eject(until_ms, reason)

    def restore(self, reason: str = "restored") -> None:
        """End an ejection now."""
        self.ejection.restore(reason)

    def permits(self, method: str) -> bool:
        """The configured capability globs allow ``method`` (memoised: asked per request)."""
        ok = self._permits.get(method)
        if ok is None:
            ok = self.config.methods.permits(method)
            if len(self._permits) < 4096:  # clients choose method names: stay bounded
                self._permits[method] = ok
        return ok

    def __repr__(self) -> str:
        return (
            f"ProviderRuntime({self.chain}/{self.id} {self.masked_url} breaker={self.breaker.state}"
            f" head={self.head} lag={self.lag} cordoned={self.cordoned} in_flight={self.in_flight}"
            f" ejected={self.ejection.ejected})"
        )


class _ProviderHook:
    """A state's ``on_change`` hook publishing events about one provider."""

    __slots__ = ("_bus", "_chain", "_clock", "_profile", "_provider")

    def __init__(
        self, bus: EventBus, clock: Clock, chain: str, provider: str, profile: str = ""
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._chain = chain
        self._provider = provider
        self._profile = profile

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._chain}/{self._provider})"


class BreakerEvents(_ProviderHook):
    """A breaker's ``on_change`` hook: each transition becomes a ``breaker.changed`` event."""

    __slots__ = ()

    def __call__(self, tr: BreakerTransition) -> None:
        self._bus.publish(
            BreakerChanged(
                ts=self._clock.wall_s(),
                chain=self._chain,
                provider=self._provider,
                transport="http",
                from_state=str(tr.from_state),
                to_state=str(tr.to_state),
                reason=tr.reason,
                profile=self._profile,
            )
        )


class EjectionEvents(_ProviderHook):
    """An ejection's ``on_change`` hook: each change becomes a ``provider.ejection`` event."""

    __slots__ = ()

    def __call__(self, snap: EjectionSnapshot) -> None:
        wall = self._clock.wall_s()
        left = None if snap.until_ms is None else snap.until_ms - self._clock.now_ms()
        self._bus.publish(
            ProviderEjection(
                ts=wall,
                chain=self._chain,
                provider=self._provider,
                ejected=snap.ejected,
                reason=snap.reason or "",
                until_s=None if left is None else wall + left / 1000.0,
                duration_ms=left,
                streak=snap.streak,
                profile=self._profile,
            )
        )


def build_provider(
    chain: str,
    config: ProviderConfig,
    routing: RoutingConfig,
    *,
    bus: EventBus,
    clock: Clock,
    rng: random.Random,
    transport_impl: str = "fast",
    profile: str = "",
) -> ProviderRuntime:
    """A provider of ``chain`` with its transport, and its breaker's events on ``bus``."""
    transport = provider_transport(
        config, max_response_bytes=routing.max_response_bytes, impl=transport_impl
    )
    return ProviderRuntime(
        chain,
        config,
        routing,
        transport,
        clock=clock,
        rng=rng,
        on_breaker_change=BreakerEvents(bus, clock, chain, config.id, profile),
        on_ejection_change=EjectionEvents(bus, clock, chain, config.id, profile),
    )
