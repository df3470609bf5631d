"""A configured chain at run time: its providers, routing strategies and head tracking."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING

import msgspec

from lasso_rpc.clock import Clock
from lasso_rpc.config.models import ChainConfig
from lasso_rpc.errors import TransportError
from lasso_rpc.jsonrpc.codec import decode_upstream
from lasso_rpc.observability.events import BreakerChanged, EventBus, ProviderHealth
from lasso_rpc.resilience.classify import ErrorClass
from lasso_rpc.routing.strategies import Decision, RoutingStrategy, make_strategy
from lasso_rpc.transport import create_transport
from lasso_rpc.upstream.provider import ProviderRuntime

if TYPE_CHECKING:
    from lasso_rpc.resilience.pipeline import CallContext

__all__ = ["ChainRuntime"]

log = logging.getLogger("lasso_rpc.chain")
_HEAD_PROBE = b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber","params":[]}'


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
            transport = create_transport(
                pc.url,
                impl=transport_impl,  # type: ignore[arg-type]
                pool_size=pc.pool_size,
                max_response_bytes=self.routing.max_response_bytes,
                headers=pc.headers,
            )
            self.providers[pc.id] = ProviderRuntime(
                name,
                pc,
                self.routing,
                transport,
                clock=clock,
                rng=random.Random(rng.random()),
                on_breaker_change=self._breaker_hook(pc.id),
            )
        self._strategies: dict[str, RoutingStrategy] = {}
        self._rng = rng
        self.consensus_head: int | None = None
        self._task: asyncio.Task[None] | None = None

    # -- routing -------------------------------------------------------------------------

    def strategy(self, name: str) -> RoutingStrategy:
        s = self._strategies.get(name)
        if s is None:
            s = self._strategies[name] = make_strategy(name, rng=self._rng, clock=self._clock)
        return s

    def decide(self, ctx: CallContext, method: str, head_sensitive: bool) -> Decision:
        now = self._clock.now_ms()
        max_lag = self.routing.max_lag_blocks
        if ctx.pin is not None:
            pinned = self.providers[ctx.pin]
            # An explicit pin is honoured even with an open breaker; only an explicit deny stops it.
            if not pinned.permits(method):
                return Decision(
                    (),
                    "provider",
                    "pinned provider does not serve this method",
                    ((pinned.id, "method not supported"),),
                )
            if not ctx.failover:
                return Decision((pinned.id,), "provider", f"pinned to {pinned.id}")
        usable: list[ProviderRuntime] = []
        probing: list[ProviderRuntime] = []
        skipped: list[tuple[str, str]] = []
        tripped: list[ProviderRuntime] = []
        for p in self.providers.values():
            if ctx.pin is not None and p.id == ctx.pin:
                continue
            why = p.skip_reason(method, head_sensitive=head_sensitive, max_lag=max_lag, now_ms=now)
            if why is not None:
                skipped.append((p.id, why))
                if why == "breaker open" and not p.breaker.snapshot().held:
                    tripped.append(p)
            elif p.breaker.closed:
                usable.append(p)
            else:
                probing.append(p)
        if not usable and not probing and tripped:
            # Panic mode: every provider tripped its breaker (a burst of timeouts from one
            # stall trips them all at once). Trying them beats refusing every client for the
            # whole recovery delay; an operator's held-open breaker is still respected.
            probing = tripped
            skipped = [(pid, why) for pid, why in skipped if why != "breaker open"]
        last_resort = not usable and bool(probing)
        if last_resort:
            # Half-open providers get user traffic only when nothing healthy is left.
            usable = probing
        else:
            skipped.extend((p.id, "breaker half_open (background probe)") for p in probing)
        d = self.strategy(ctx.strategy).rank(usable, method, ctx.transport, now)
        if last_resort:
            d = msgspec.structs.replace(d, last_resort=True)
        if ctx.pin is not None:
            d = Decision((ctx.pin, *d.order), "provider", f"pinned to {ctx.pin}, failover allowed")
        return d.with_skipped(tuple(skipped)) if skipped else d

    # -- breaker events ------------------------------------------------------------------

    def _breaker_hook(self, provider_id: str):  # type: ignore[no-untyped-def]
        def on_change(tr) -> None:  # type: ignore[no-untyped-def]
            self._bus.publish(
                BreakerChanged(
                    ts=self._clock.wall_s(),
                    chain=self.name,
                    provider=provider_id,
                    transport="http",
                    from_state=str(tr.from_state),
                    to_state=str(tr.to_state),
                    reason=tr.reason,
                )
            )

        return on_change

    # -- head tracking and background probes ---------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._track_heads(), name=f"heads:{self.name}")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for p in self.providers.values():
            await p.transport.aclose()

    async def _track_heads(self) -> None:
        interval = self.routing.head_poll_ms / 1000.0
        while True:
            await asyncio.gather(*(self._probe(p) for p in self.providers.values()))
            self._update_lag()
            await asyncio.sleep(interval)

    async def _probe(self, p: ProviderRuntime) -> None:
        """Polls the head. The poll is also a health check: a provider that stops answering
        opens its breaker with no user traffic, and the poll is the probe that closes it."""
        breaker = p.breaker
        if breaker.state != "closed" and not breaker.acquire():
            return
        timeout = min(self.routing.head_poll_ms, 5000) / 1000.0
        try:
            resp = await p.transport.post(_HEAD_PROBE, timeout_s=timeout)
            reply = decode_upstream(resp.body)
            if resp.status != 200 or not isinstance(reply.result, msgspec.Raw):
                raise ValueError(f"HTTP {resp.status}")
            head = int(msgspec.json.decode(bytes(reply.result)), 16)
        except (
            TransportError,
            ValueError,
            TypeError,
            msgspec.DecodeError,
            msgspec.ValidationError,
        ):
            breaker.record(ErrorClass.PROVIDER)
            return
        breaker.record(None)
        p.head = head

    def _update_lag(self) -> None:
        heads = [p.head for p in self.providers.values() if p.head is not None]
        if not heads:
            return
        self.consensus_head = max(heads)
        for p in self.providers.values():
            lag = None if p.head is None else self.consensus_head - p.head
            if lag != p.lag:
                p.lag = lag
                self._publish_health(p)

    def _publish_health(self, p: ProviderRuntime) -> None:
        self._bus.publish(
            ProviderHealth(
                ts=self._clock.wall_s(),
                chain=self.name,
                provider=p.id,
                head=p.head,
                lag=p.lag,
                cordoned=p.cordoned,
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
