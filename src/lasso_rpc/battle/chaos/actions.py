"""The built-in chaos actions. Where each fault lands, for a MockProvider (``ctx.mock``) or a
real node behind a FaultProxy (``ctx.proxy``; a mock may sit behind one too):

==================  ===============================================  =========================
action              mock                                             proxy (real node)
==================  ===============================================  =========================
kill_provider       stopped, restarted on the same port              refuses + resets (both)
flap_provider       kill_provider ``count`` times                    same
degrade_provider    latency knob becomes ``latency_ms`` (+ jitter)   round trip +``latency_ms``
inject_latency      latency knob + ``latency_ms``                    round trip +``latency_ms``
                    (the proxy is preferred when there is one)
error_rate          ``error_rate=p`` with failure ``mode``           (mock only)
blackhole           HANG: requests never answered                    blackhole
lag_provider        head ``blocks`` behind                           (mock only)
drop_websockets     every WebSocket aborted                          every connection reset
network             (proxy only: latency, jitter, bandwidth, reset, blackhole, slow close)
==================  ===============================================  =========================

``open_circuit_breaker`` goes through the router's control API. Overlapping actions on one
provider compose (``chaos.layers``). Field order = the positional order of the ``Chaos``
factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from lasso_rpc.battle.chaos.base import ChaosAction, ChaosContext, Needs, Revert
from lasso_rpc.battle.providers.spec import FailureMode

__all__ = [
    "Blackhole",
    "DegradeProvider",
    "DropWebsockets",
    "ErrorRate",
    "FlapProvider",
    "InjectLatency",
    "KillProvider",
    "LagProvider",
    "NetworkFault",
    "OpenCircuitBreaker",
]


async def _kill(ctx: ChaosContext, pid: str) -> tuple[Revert, dict[str, Any]]:
    mock, proxy = ctx.mock(pid), ctx.proxy(pid)
    undo_proxy = ctx.layers.overlay(proxy, {"refuse": True}) if proxy is not None else None
    if proxy is not None:
        proxy.reset()
    restart = await ctx.layers.stop(mock) if mock is not None else None

    async def revert() -> None:
        if restart is not None:
            await restart()  # the provider first, then the way to it
        if undo_proxy is not None:
            await undo_proxy()

    return revert, {"via": "mock" if mock is not None else "proxy"}


@dataclass(frozen=True, slots=True)
class KillProvider(ChaosAction):
    """Connection refused; restarted on the same port after ``duration_s``."""

    action: ClassVar[str] = "kill_provider"
    provider: str
    at_s: float
    duration_s: float | None = None

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        return await _kill(ctx, self.provider)


@dataclass(frozen=True, slots=True)
class FlapProvider(ChaosAction):
    """Killed for ``down_s``, back for ``up_s``, ``count`` times; one record per down period."""

    action: ClassVar[str] = "flap_provider"
    provider: str
    down_s: float
    up_s: float
    count: int
    at_s: float

    def _check(self) -> None:
        if self.count < 1 or self.down_s <= 0:
            raise ValueError("flap_provider: count must be >= 1 and down_s > 0")

    @property
    def span_s(self) -> float | None:
        return self.count * self.down_s + (self.count - 1) * self.up_s

    async def run(self, ctx: ChaosContext) -> None:
        self.check(ctx)
        for i in range(self.count):
            await ctx.sleep_until(self.at_s + i * (self.down_s + self.up_s))
            extra = {"cycle": i + 1}
            await self._window(ctx, lambda c: _kill(c, self.provider), self.down_s, extra)


@dataclass(frozen=True, slots=True)
class DegradeProvider(ChaosAction):
    """The provider answers after ``latency_ms`` (+ jitter) instead of its usual latency."""

    action: ClassVar[str] = "degrade_provider"
    prefer: ClassVar[str] = "mock"
    provider: str
    latency_ms: float
    at_s: float
    duration_s: float | None = None
    jitter_ms: float = 0.0

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        mock, proxy = ctx.mock(self.provider), ctx.proxy(self.provider)
        if mock is not None and (self.prefer == "mock" or proxy is None):
            latency, jitter = self.latency_ms, self.jitter_ms
            if self.prefer != "mock":  # added to what the provider already has
                latency += mock.knobs.latency_ms
                jitter += mock.knobs.jitter_ms
            changes = {"latency_ms": latency, "jitter_ms": jitter}
            return ctx.layers.overlay(mock, changes), {"via": "mock"}
        assert proxy is not None
        # The proxy delays each direction: half there, half back.
        half = {"latency_ms": self.latency_ms / 2, "jitter_ms": self.jitter_ms / 2}
        return ctx.layers.overlay(proxy, half), {"via": "proxy"}


@dataclass(frozen=True, slots=True)
class InjectLatency(DegradeProvider):
    """Every request takes ``latency_ms`` longer (network latency; the proxy when there is one)."""

    action: ClassVar[str] = "inject_latency"
    prefer: ClassVar[str] = "proxy"


@dataclass(frozen=True, slots=True)
class ErrorRate(ChaosAction):
    """A fraction ``p`` of the requests fail with ``mode`` (a MockProvider FailureMode)."""

    action: ClassVar[str] = "error_rate"
    needs: ClassVar[Needs] = "mock"
    provider: str
    p: float
    at_s: float
    duration_s: float | None = None
    mode: str = "http_500"
    http_status: int = 500

    def _check(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError("error_rate: p must be within 0..1")
        object.__setattr__(self, "mode", str(self.mode))  # a FailureMode is a str too
        valid = [m.value for m in FailureMode if m is not FailureMode.NONE]
        if self.mode not in valid:
            raise ValueError(f"error_rate: unknown mode {self.mode!r}; valid: {', '.join(valid)}")

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        mock = ctx.mock(self.provider)
        assert mock is not None
        changes = {"error_rate": self.p, "failure_mode": self.mode, "http_status": self.http_status}
        return ctx.layers.overlay(mock, changes), {}


@dataclass(frozen=True, slots=True)
class Blackhole(ChaosAction):
    """Connections are accepted, requests never answered."""

    action: ClassVar[str] = "blackhole"
    provider: str
    at_s: float
    duration_s: float | None = None

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        mock = ctx.mock(self.provider)
        if mock is not None:
            hang = {"failure_mode": "hang", "error_rate": None}
            return ctx.layers.overlay(mock, hang), {"via": "mock"}
        proxy = ctx.proxy(self.provider)
        assert proxy is not None
        return ctx.layers.overlay(proxy, {"blackhole": True}), {"via": "proxy"}


@dataclass(frozen=True, slots=True)
class LagProvider(ChaosAction):
    """The provider's head stays ``blocks`` behind the chain."""

    action: ClassVar[str] = "lag_provider"
    needs: ClassVar[Needs] = "mock"
    provider: str
    blocks: int
    at_s: float
    duration_s: float | None = None

    def _check(self) -> None:
        if self.blocks < 1:
            raise ValueError("lag_provider: blocks must be >= 1")

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        mock = ctx.mock(self.provider)
        assert mock is not None
        return ctx.layers.overlay(mock, {"lag_blocks": self.blocks}), {}


@dataclass(frozen=True, slots=True)
class DropWebsockets(ChaosAction):
    """Instant: every WebSocket to the provider is aborted (through a proxy: every connection)."""

    action: ClassVar[str] = "drop_websockets"
    provider: str
    at_s: float

    def _when(self) -> str:
        return f"at {self.at_s:g}s"

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        mock = ctx.mock(self.provider)
        if mock is not None:
            return None, {"via": "mock", "dropped": await mock.drop_websockets()}
        proxy = ctx.proxy(self.provider)
        assert proxy is not None
        return None, {"via": "proxy", "dropped": proxy.reset()}


@dataclass(frozen=True, slots=True)
class OpenCircuitBreaker(ChaosAction):
    """Opens the router's breaker through the control API; closes it again after the window.

    The router applies its normal recovery delay to a forced open breaker, so a window longer
    than that delay sees the breaker probe and possibly close on its own.
    """

    action: ClassVar[str] = "open_circuit_breaker"
    needs: ClassVar[Needs] = "nothing"
    provider: str
    at_s: float
    duration_s: float | None = None
    chain: str = "ethereum"

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        body = {"chain": self.chain, "provider": self.provider}
        # Held open for the whole window: no recovery probe closes it behind the scenario's back.
        answer = await ctx.control("/api/control/breaker/open", {**body, "hold": True})

        async def revert() -> None:
            await ctx.control("/api/control/breaker/close", body)

        return revert, {"state": answer.get("state")}


@dataclass(frozen=True, slots=True)
class NetworkFault(ChaosAction):
    """FaultProxy faults (see ``lasso_rpc.battle.providers.faultproxy``); ``reset`` also resets
    the open connections at ``at_s`` and every new one during the window."""

    action: ClassVar[str] = "network"
    needs: ClassVar[Needs] = "proxy"
    provider: str
    at_s: float
    duration_s: float | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_bytes_per_s: float | None = None
    reset: bool = False
    blackhole: bool = False
    slow_close_ms: float = 0.0

    def _check(self) -> None:
        if not self.details():
            raise ValueError(
                "network: no fault given (latency_ms, jitter_ms, bandwidth_bytes_per_s, reset, "
                "blackhole, slow_close_ms)"
            )
        if self.bandwidth_bytes_per_s is not None and self.bandwidth_bytes_per_s <= 0:
            raise ValueError("network: bandwidth_bytes_per_s must be > 0")

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        proxy = ctx.proxy(self.provider)
        assert proxy is not None
        changes = self.details()
        if changes.pop("reset", False):
            changes["reset_new"] = True
        revert = ctx.layers.overlay(proxy, changes)
        return revert, ({"reset_connections": proxy.reset()} if self.reset else {})
