"""One upstream provider as the router sees it: identity, transport, stats, breaker, head."""

from __future__ import annotations

import random

from lasso_rpc.clock import Clock
from lasso_rpc.config.models import ProviderConfig, RoutingConfig
from lasso_rpc.observability.redact import mask_url
from lasso_rpc.resilience.breaker import CircuitBreaker
from lasso_rpc.routing.stats import ProviderStats
from lasso_rpc.transport.base import UpstreamTransport

__all__ = ["ProviderRuntime"]


class ProviderRuntime:
    """Mutable runtime state of one provider; everything routing needs to skip or rank it."""

    __slots__ = (
        "_permits",
        "backoff_until_ms",
        "breaker",
        "chain",
        "config",
        "cordoned",
        "head",
        "id",
        "in_flight",
        "lag",
        "masked_url",
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
        on_breaker_change: object = None,
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
            on_change=on_breaker_change,  # type: ignore[arg-type]
            name=f"{chain}/{config.id}/http",
        )
        self.cordoned = False
        self.unsupported: set[str] = set()
        self.head: int | None = None
        self.lag: int | None = None
        self.in_flight = 0
        self.backoff_until_ms = 0.0
        self.masked_url = mask_url(config.url)
        self._permits: dict[str, bool] = {}

    @property
    def priority(self) -> int:
        return self.config.priority

    @property
    def weight(self) -> float:
        return self.config.weight

    def permits(self, method: str) -> bool:
        """The configured capability globs allow ``method`` (memoised: asked per request)."""
        ok = self._permits.get(method)
        if ok is None:
            ok = self.config.methods.permits(method)
            if len(self._permits) < 4096:  # clients choose method names: stay bounded
                self._permits[method] = ok
        return ok

    def skip_reason(
        self, method: str, *, head_sensitive: bool, max_lag: int, now_ms: float
    ) -> str | None:
        """Why this provider must not get ``method`` now, or None when it may."""
        if self.cordoned:
            return "cordoned"
        if not self.permits(method) or method in self.unsupported:
            return "method not supported"
        if not self.breaker.admits():
            return f"breaker {self.breaker.state}"
        if now_ms < self.backoff_until_ms:
            return "rate limited (backing off)"
        if head_sensitive and self.lag is not None and self.lag > max_lag:
            return f"lagging {self.lag} blocks"
        return None

    def __repr__(self) -> str:
        return (
            f"ProviderRuntime({self.chain}/{self.id} {self.masked_url} breaker={self.breaker.state}"
            f" head={self.head} lag={self.lag} cordoned={self.cordoned} in_flight={self.in_flight})"
        )
