"""A configured chain at run time: its providers, its strategies and its head tracker.

The jobs live elsewhere; this class only owns and wires them for one chain of one profile:
providers are built by ``upstream.provider.build_provider`` (transport, breaker events), calls
are filtered and ranked by ``routing.candidates.decide`` with the chain's strategy instances,
heads are polled by ``upstream.heads.HeadTracker``; the chain's hedge budget
(``resilience.budget``) and outlier detector (``resilience.outliers``) live here because they
weigh its providers against each other.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from lasso_rpc.clock import Clock
from lasso_rpc.config.models import ChainConfig
from lasso_rpc.observability.events import EventBus, ProviderHealth
from lasso_rpc.resilience.budget import HedgeBudget
from lasso_rpc.resilience.outliers import OutlierDetector
from lasso_rpc.routing.candidates import decide
from lasso_rpc.routing.decision import Decision
from lasso_rpc.routing.request import RouteRequest
from lasso_rpc.routing.strategies import RoutingStrategy, make_strategy
from lasso_rpc.upstream.heads import BlockListener, HeadTracker
from lasso_rpc.upstream.provider import ProviderRuntime, build_provider

__all__ = ["ChainRuntime"]


class ChainRuntime:
    """Owns the providers of one chain of one profile and a head-tracking task."""

    def __init__(
        self,
        profile: str,
        name: str,
        config: ChainConfig,
        *,
        bus: EventBus,
        clock: Clock,
        rng: random.Random,
        transport_impl: str = "fast",
    ) -> None:
        self.profile = profile
        self.name = name
        self.config = config
        self.routing = config.routing
        self._bus = bus
        self._clock = clock
        self.providers: dict[str, ProviderRuntime] = {}
        for pc in config.providers:
            self.providers[pc.id] = build_provider(
                name,
                pc,
                self.routing,
                bus=bus,
                clock=clock,
                rng=random.Random(rng.random()),
                transport_impl=transport_impl,
                profile=profile,
            )
        self._strategies: dict[str, RoutingStrategy] = {}
        self._rng = rng
        hedge = self.routing.hedge
        self.hedge_budget = HedgeBudget(
            percent=hedge.budget_percent,
            min_per_second=hedge.min_per_second,
            window_ms=hedge.budget_window_ms,
        )
        self.outliers = OutlierDetector(self.providers, self.routing.ejection)
        self._heads = HeadTracker(
            name,
            self.providers,
            poll_ms=self.routing.head_poll_ms,
            publish_health=self._publish_health,
            clock=clock,
        )

    def watch_blocks(self, listener: BlockListener) -> None:
        """Head polls fetch the head block and report it (the response cache's reorg watch)."""
        self._heads.watch_blocks(listener)

    @property
    def consensus_head(self) -> int | None:
        """The highest head any provider reported (None before the first poll answered)."""
        return self._heads.consensus_head

    @property
    def heads(self) -> HeadTracker:
        """The head-polling task's owner (``poll_round``, ``rounds``)."""
        return self._heads

    # -- routing -------------------------------------------------------------------------

    def strategy(self, name: str) -> RoutingStrategy:
        s = self._strategies.get(name)
        if s is None:
            s = self._strategies[name] = make_strategy(name, rng=self._rng, clock=self._clock)
        return s

    def decide(self, req: RouteRequest, method: str, head_sensitive: bool) -> Decision:
        """Who gets ``method``: the candidates filtered and ranked (``routing/candidates.py``)."""
        providers: Iterable[ProviderRuntime] = self.providers.values()
        if req.avoid:
            kept = [p for p in providers if p.id not in req.avoid]
            providers = kept or providers  # avoiding everyone would answer nothing at all
        return decide(
            providers,
            self.strategy(req.strategy),
            req,
            method,
            head_sensitive=head_sensitive,
            max_lag=self.routing.max_lag_blocks,
            now_ms=self._clock.now_ms(),
            pinned=None if req.pin is None else self.providers[req.pin],
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._heads.start()

    def stop(self) -> None:
        """Stop background work now (head polling); transports stay open for calls in flight."""
        self._heads.stop()

    async def aclose(self) -> None:
        await self._heads.aclose()
        for p in self.providers.values():
            await p.transport.aclose()

    # -- operator state ------------------------------------------------------------------

    def _publish_health(self, p: ProviderRuntime) -> None:
        self._bus.publish(
            ProviderHealth(
                ts=self._clock.wall_s(),
                chain=self.name,
                provider=p.id,
                head=p.head,
                lag=p.lag,
                cordoned=p.cordoned,
                profile=self.profile,
            )
        )

    def set_cordoned(self, provider_id: str, cordoned: bool) -> None:
        p = self.providers[provider_id]
        if p.cordoned != cordoned:
            p.cordoned = cordoned
            self._publish_health(p)

    def __repr__(self) -> str:
        return (
            f"ChainRuntime({self.profile}/{self.name} providers={list(self.providers)}"
            f" head={self.consensus_head})"
        )
