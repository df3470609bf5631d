"""Chaos actions (SPEC §6): which fault, on which provider, when, and for how long.

Actions are frozen values made by the ``Chaos`` factory (or ``chaos_from_dict`` for YAML) and run
against a ``ChaosContext``, the small seam the scenario implements::

    await Chaos.kill_provider("alpha", at_s=10, duration_s=5).run(ctx)

``run`` sleeps until ``at_s`` (seconds since the scenario start), applies the fault, records it
(``chaos.injected``), waits ``duration_s``, reverts it and records that (``chaos.reverted``).
Without ``duration_s`` the fault stays for the rest of the run and ``run`` returns once it is
applied (the record's ``end_s`` stays None). Cancelled inside its window (the scenario ended
early, Ctrl-C), an action still reverts and records the revert before the cancellation goes on.

Where each fault lands, for a MockProvider (``ctx.mock``) or a real node behind a FaultProxy
(``ctx.proxy``; a mock may sit behind one too):

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
provider compose: each is a layer over the knobs the provider had before the first one, and a
revert removes only its own layer (the last one restores the original knobs exactly).

``random_failures`` draws exponential gaps (mean ``mtbf_s``) from ``random.Random(seed)``; each
failure is a random kind on a random provider, reverted after ``mttr_s``. A provider already
failing is never picked again, and a failure that would leave no provider healthy is skipped
unless ``allow_all_down=True``. The plan (``plan()``) depends on the seed and the providers only;
when run, a failure whose provider is not yet back (a revert ending late) waits for it rather
than break the rule, so real times may slip by a few milliseconds, never the order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import random
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self, TypeVar

from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.spec import FailureMode
from lasso_rpc.battle.records import ChaosRecord
from lasso_rpc.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    import aiohttp

    from lasso_rpc.battle.providers.fleet import MockFleet
    from lasso_rpc.battle.providers.mock import MockProvider
    from lasso_rpc.observability.events import EventBus

__all__ = [
    "BasicChaosContext",
    "Blackhole",
    "Chaos",
    "ChaosAction",
    "ChaosContext",
    "DegradeProvider",
    "DropWebsockets",
    "ErrorRate",
    "FlapProvider",
    "InjectLatency",
    "KillProvider",
    "LagProvider",
    "NetworkFault",
    "OpenCircuitBreaker",
    "PlannedFailure",
    "RandomFailures",
    "chaos_from_dict",
    "http_control",
]

T = TypeVar("T")
Revert = Callable[[], Awaitable[None]]
ControlFn = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
Needs = Literal["mock", "proxy", "either", "nothing"]


class ChaosContext(Protocol):
    """What an action needs from the scenario running it.

    A context may also offer ``provider_ids`` (a sequence of every provider id): ``check`` then
    validates against it, and ``random_failures`` without ``providers=`` picks from it.
    """

    @property
    def rng(self) -> random.Random: ...

    def now_s(self) -> float:
        """Seconds since the scenario start."""
        ...

    async def sleep_until(self, t_s: float, /) -> None: ...

    def mock(self, provider_id: str, /) -> MockProvider | None:
        """The provider's MockProvider; None for a real node."""
        ...

    def proxy(self, provider_id: str, /) -> FaultProxy | None:
        """The FaultProxy between the router and the provider, if any."""
        ...

    async def control(self, path: str, body: dict[str, Any], /) -> dict[str, Any]:
        """POST to the router's control API (with its token); the decoded JSON answer."""
        ...

    def record(self, record: ChaosRecord, reverted: bool, /) -> None:
        """Keep it in the timeline; publish a ChaosEvent when the router is in-process."""
        ...


def _provider_ids(ctx: ChaosContext) -> Sequence[str] | None:
    ids = getattr(ctx, "provider_ids", None)
    return list(ids) if ids is not None else None


# -- the base action --------------------------------------------------------------------------


class ChaosAction:
    """Base of the actions: frozen dataclasses whose fields follow their ``Chaos`` factory."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every subclass is one
    action: ClassVar[str] = "chaos"
    needs: ClassVar[Needs] = "either"
    at_s: float

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_s", "_ms")) and value is not None and value < 0:
                raise ValueError(f"{self.action}: {f.name} must be >= 0")
        duration = getattr(self, "duration_s", None)
        if duration is not None and not duration > 0:
            raise ValueError(f"{self.action}: duration_s must be None or > 0")
        self._check()

    def _check(self) -> None:
        """Field checks of a subclass (ValueError)."""

    @property
    def target(self) -> str | None:
        provider = getattr(self, "provider", None)
        return provider if isinstance(provider, str) else None

    @property
    def span_s(self) -> float | None:
        """How long the fault lasts (None: to the end of the run)."""
        duration = getattr(self, "duration_s", None)
        return float(duration) if duration is not None else None

    def targets(self) -> tuple[str, ...]:
        """The providers this action names."""
        return (self.target,) if self.target is not None else ()

    def proxied_targets(self) -> tuple[str, ...]:
        """The providers that must sit behind a FaultProxy for this action."""
        return self.targets() if self.needs == "proxy" else ()

    def scaled(self, factor: float) -> Self:
        """Every scheduling time (the ``*_s`` fields, not rates) multiplied by ``factor``."""
        changes = {
            f.name: getattr(self, f.name) * factor
            for f in dataclasses.fields(self)
            if f.name.endswith("_s")
            and not f.name.endswith("per_s")
            and getattr(self, f.name) is not None
        }
        return dataclasses.replace(self, **changes)

    def validate(self, provider_ids: Collection[str]) -> None:
        """Raise ValueError if the action names a provider the scenario does not have."""
        for pid in self.targets():
            if pid not in provider_ids:
                known = ", ".join(sorted(provider_ids)) or "none"
                raise ValueError(f"{self.action}: unknown provider {pid!r}; known: {known}")

    def check(self, ctx: ChaosContext) -> None:
        """``validate`` plus: can this fault be applied to these providers? (ValueError)."""
        ids = _provider_ids(ctx)
        if ids is not None:
            self.validate(ids)
        for pid in self.targets():
            _require(self.action, self.needs, ctx, pid)

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.details().items())
        what = f"{self.action} {self.target}" if self.target else self.action
        return f"{what}{f' ({params})' if params else ''} {self._when()}"

    def _when(self) -> str:
        span = self.span_s
        return f"at {self.at_s:g}s " + (f"for {span:g}s" if span else "until the end")

    def details(self) -> dict[str, Any]:
        """The action's parameters, for records and descriptions."""
        d = self.to_dict()
        for key in ("action", "provider", "at_s", "duration_s"):
            d.pop(key, None)
        return d

    def to_dict(self) -> dict[str, Any]:
        """YAML-friendly: the action name and every field that differs from its default."""
        out: dict[str, Any] = {"action": self.action}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    async def run(self, ctx: ChaosContext) -> None:
        """Check, wait for ``at_s``, apply, record, wait ``duration_s``, revert, record."""
        self.check(ctx)
        await ctx.sleep_until(self.at_s)
        await self._window(ctx, self._apply, self.span_s, {})

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        """Apply the fault; how to revert it (None: nothing to revert) and extra details."""
        raise NotImplementedError

    async def _window(
        self,
        ctx: ChaosContext,
        apply: Callable[[ChaosContext], Awaitable[tuple[Revert | None, dict[str, Any]]]],
        span_s: float | None,
        extra: dict[str, Any],
    ) -> None:
        (revert, applied), cancelled = await _finish(apply(ctx))
        start = ctx.now_s()
        rec = ChaosRecord(self.action, self.target, start, None, self.details() | applied | extra)
        if revert is None:  # an instant action
            ctx.record(dataclasses.replace(rec, end_s=start), False)
        else:
            ctx.record(rec, False)
            if span_s is not None or cancelled:
                try:
                    if cancelled:
                        raise asyncio.CancelledError
                    assert span_s is not None
                    await ctx.sleep_until(start + span_s)
                finally:
                    try:
                        _, cancelled = await _finish(revert())
                    finally:
                        ctx.record(dataclasses.replace(rec, end_s=ctx.now_s()), True)
        if cancelled:
            raise asyncio.CancelledError


async def _finish(aw: Awaitable[T]) -> tuple[T, bool]:
    """Run ``aw`` to its end even if the caller is cancelled meanwhile (a half-applied or
    half-reverted fault is worse than a late cancellation); (result, whether one arrived)."""
    task = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True


def _require(action: str, needs: Needs, ctx: ChaosContext, pid: str) -> None:
    mock, proxy = ctx.mock(pid), ctx.proxy(pid)
    if needs == "mock" and mock is None:
        raise ValueError(f"{action} on {pid!r} needs a MockProvider ({pid} is a real node)")
    if needs == "proxy" and proxy is None:
        raise ValueError(f"{action} on {pid!r} needs a FaultProxy in front of {pid}")
    if needs == "either" and mock is None and proxy is None:
        raise ValueError(f"{action} on {pid!r} needs a MockProvider or a FaultProxy")


# -- layered knobs and faults -----------------------------------------------------------------


@dataclass(slots=True)
class _Stack:
    base: Any  # Knobs or Faults before the first layer
    layers: dict[int, dict[str, Any]] = field(default_factory=dict)

    def effective(self) -> Any:
        merged: dict[str, Any] = {}
        for changes in self.layers.values():
            merged.update(changes)
        return self.base.with_changes(**merged)


_STACKS: weakref.WeakKeyDictionary[Any, _Stack] = weakref.WeakKeyDictionary()
_DOWN: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()
_TOKENS = itertools.count(1)


def _overlay(target: MockProvider | FaultProxy, changes: Mapping[str, Any]) -> Revert:
    """Apply ``changes`` as a layer of ``target``'s knobs (or faults); the revert removes it."""
    if isinstance(target, FaultProxy):
        get: Callable[[], Any] = lambda: target.faults  # noqa: E731
        put: Callable[[Any], Any] = target.set_faults
    else:
        get, put = (lambda: target.knobs), target.set_knobs
    stack = _STACKS.get(target)
    if stack is None:
        stack = _STACKS[target] = _Stack(get())
    token = next(_TOKENS)
    stack.layers[token] = dict(changes)
    try:
        put(stack.effective())
    except BaseException:
        del stack.layers[token]
        raise

    async def revert() -> None:
        stack.layers.pop(token, None)
        if stack.layers:
            put(stack.effective())
        else:
            if _STACKS.get(target) is stack:
                del _STACKS[target]
            put(stack.base)

    return revert


async def _stop(mock: MockProvider) -> Revert:
    """Stop a mock (nested kills count); the revert restarts it on the same port."""
    down = _DOWN.get(mock)
    if down is None:
        down = _DOWN[mock] = [0, int(mock.state == "running")]
        await mock.stop()
    down[0] += 1

    async def revert() -> None:
        down[0] -= 1
        if down[0] == 0:
            _DOWN.pop(mock, None)
            if down[1]:
                await mock.start()

    return revert


async def _kill(ctx: ChaosContext, pid: str) -> tuple[Revert, dict[str, Any]]:
    mock, proxy = ctx.mock(pid), ctx.proxy(pid)
    undo_proxy = _overlay(proxy, {"refuse": True}) if proxy is not None else None
    if proxy is not None:
        proxy.reset()
    restart = await _stop(mock) if mock is not None else None

    async def revert() -> None:
        if restart is not None:
            await restart()  # the provider first, then the way to it
        if undo_proxy is not None:
            await undo_proxy()

    return revert, {"via": "mock" if mock is not None else "proxy"}


# -- the actions (field order = the positional order of the ``Chaos`` factory) ---------------


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
            return _overlay(mock, {"latency_ms": latency, "jitter_ms": jitter}), {"via": "mock"}
        assert proxy is not None
        # The proxy delays each direction: half there, half back.
        half = {"latency_ms": self.latency_ms / 2, "jitter_ms": self.jitter_ms / 2}
        return _overlay(proxy, half), {"via": "proxy"}


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
        return _overlay(mock, changes), {}


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
            return _overlay(mock, {"failure_mode": "hang", "error_rate": None}), {"via": "mock"}
        proxy = ctx.proxy(self.provider)
        assert proxy is not None
        return _overlay(proxy, {"blackhole": True}), {"via": "proxy"}


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
        return _overlay(mock, {"lag_blocks": self.blocks}), {}


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
        revert = _overlay(proxy, changes)
        return revert, ({"reset_connections": proxy.reset()} if self.reset else {})


# -- random failures --------------------------------------------------------------------------

_RANDOM_KINDS: dict[str, Callable[[str, float, float], ChaosAction]] = {
    "kill_provider": lambda p, t, d: KillProvider(p, t, d),
    "blackhole": lambda p, t, d: Blackhole(p, t, d),
    "error_rate": lambda p, t, d: ErrorRate(p, 0.5, t, d),
    "degrade_provider": lambda p, t, d: DegradeProvider(p, 1000.0, t, d),
    "inject_latency": lambda p, t, d: InjectLatency(p, 500.0, t, d, jitter_ms=100.0),
    "lag_provider": lambda p, t, d: LagProvider(p, 20, t, d),
    "network_reset": lambda p, t, d: NetworkFault(p, t, d, reset=True),
}
DEFAULT_KINDS = ("kill_provider", "blackhole", "error_rate", "degrade_provider")


@dataclass(frozen=True, slots=True)
class PlannedFailure:
    at_s: float
    provider: str
    kind: str
    duration_s: float

    def action(self) -> ChaosAction:
        return _RANDOM_KINDS[self.kind](self.provider, self.at_s, self.duration_s)


@dataclass(frozen=True, slots=True)
class RandomFailures(ChaosAction):
    """Failures at exponential intervals (see the module docstring for the never-all-down rule).

    Kinds: ``kill_provider``, ``blackhole``, ``error_rate`` (p=0.5), ``degrade_provider``
    (1000 ms), ``inject_latency`` (500±100 ms), ``lag_provider`` (20 blocks), ``network_reset``.
    """

    action: ClassVar[str] = "random_failures"
    needs: ClassVar[Needs] = "nothing"
    mtbf_s: float
    seed: int
    at_s: float = 0.0
    duration_s: float | None = None
    mttr_s: float = 5.0
    providers: tuple[str, ...] | None = None
    kinds: tuple[str, ...] = DEFAULT_KINDS
    allow_all_down: bool = False

    def _check(self) -> None:
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(self.providers))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        if not self.mtbf_s > 0 or not self.mttr_s > 0:
            raise ValueError("random_failures: mtbf_s and mttr_s must be > 0")
        unknown = [k for k in self.kinds if k not in _RANDOM_KINDS]
        if unknown or not self.kinds:
            valid = ", ".join(_RANDOM_KINDS)
            raise ValueError(f"random_failures: unknown kind(s) {unknown}; valid: {valid}")

    def targets(self) -> tuple[str, ...]:
        return self.providers or ()

    def proxied_targets(self) -> tuple[str, ...]:
        return self.targets() if "network_reset" in self.kinds else ()

    def _pool(self, provider_ids: Sequence[str] | None) -> list[str]:
        if self.providers is None and provider_ids is None:
            raise ValueError(
                "random_failures without providers= needs a context that offers provider_ids"
            )
        pool = list(self.providers or provider_ids or ())
        if len(pool) < 2 and not self.allow_all_down:
            raise ValueError(
                "random_failures: with fewer than 2 providers every failure would take all of "
                "them down; name more providers or set allow_all_down=True"
            )
        return pool

    def validate(self, provider_ids: Collection[str]) -> None:
        ChaosAction.validate(self, provider_ids)
        self._pool(list(provider_ids))

    def check(self, ctx: ChaosContext) -> None:
        ids = _provider_ids(ctx)
        if ids is not None:
            self.validate(ids)
        for pid in self._pool(ids):
            for kind in self.kinds:
                probe = _RANDOM_KINDS[kind](pid, 0.0, 1.0)
                _require(f"random_failures ({kind})", probe.needs, ctx, pid)

    def plan(self, provider_ids: Sequence[str] | None = None) -> Iterator[PlannedFailure]:
        """The failures, in time order (endless without ``duration_s``); seed-determined."""
        rng = random.Random(self.seed)
        pool = self._pool(provider_ids)
        end = self.at_s + self.duration_s if self.duration_s is not None else math.inf
        busy: dict[str, float] = {}  # provider -> when its failure ends
        t = self.at_s
        while True:
            t += rng.expovariate(1.0 / self.mtbf_s)
            if t >= end:
                return
            free = [p for p in pool if busy.get(p, -1.0) <= t]
            if not free or (len(free) == 1 and not self.allow_all_down):
                continue  # would take the last healthy provider down: skipped
            provider, kind = rng.choice(free), rng.choice(self.kinds)
            duration = min(self.mttr_s, end - t)
            busy[provider] = t + duration
            yield PlannedFailure(t, provider, kind, duration)

    def describe(self) -> str:
        pool = ", ".join(self.providers) if self.providers else "any provider"
        return (
            f"random_failures on {pool} (mtbf {self.mtbf_s:g}s, mttr {self.mttr_s:g}s, "
            f"seed {self.seed}, kinds {', '.join(self.kinds)}) {self._when()}"
        )

    async def run(self, ctx: ChaosContext) -> None:
        """Each failure runs (and is recorded) as its own action, tagged with this one."""
        self.check(ctx)
        ids = _provider_ids(ctx)
        size = len(self._pool(ids))
        tagged = _Tagged(ctx, {"source": "random_failures", "seed": self.seed})
        active: dict[asyncio.Task[None], str] = {}
        async with asyncio.TaskGroup() as tg:
            for failure in self.plan(ids):
                await ctx.sleep_until(failure.at_s)
                # Real reverts end a little after their planned time: wait for them rather than
                # break the rule (the plan's order stays; only real times slip).
                while failing := {p for t, p in active.items() if not t.done()}:
                    crowded = not self.allow_all_down and len(failing | {failure.provider}) >= size
                    if failure.provider not in failing and not crowded:
                        break
                    await asyncio.wait(list(active), return_when=asyncio.FIRST_COMPLETED)
                task = tg.create_task(failure.action().run(tagged))
                active[task] = failure.provider
                task.add_done_callback(lambda t: active.pop(t, None))


class _Tagged:
    """A ChaosContext adding details to every record."""

    def __init__(self, inner: ChaosContext, tags: dict[str, Any]) -> None:
        self._inner, self._tags = inner, tags
        self.rng = inner.rng
        self.now_s, self.sleep_until = inner.now_s, inner.sleep_until
        self.mock, self.proxy, self.control = inner.mock, inner.proxy, inner.control

    def record(self, record: ChaosRecord, reverted: bool, /) -> None:
        tagged = dataclasses.replace(record, details={**record.details, **self._tags})
        self._inner.record(tagged, reverted)


# -- the factory and YAML ---------------------------------------------------------------------


class Chaos:
    """Factory of chaos actions (SPEC §6); every time in seconds since the scenario start.

    ``Chaos.kill_provider("alpha", at_s=10, duration_s=5)`` and so on: each name is the action's
    class, so the factory's signature is the dataclass's.
    """

    kill_provider = KillProvider  # (provider, at_s, duration_s=None)
    flap_provider = FlapProvider  # (provider, down_s, up_s, count, at_s)
    degrade_provider = DegradeProvider  # (provider, latency_ms, at_s, duration_s=None, jitter_ms=0)
    inject_latency = InjectLatency  # (provider, latency_ms, at_s, duration_s=None, jitter_ms=0)
    error_rate = ErrorRate  # (provider, p, at_s, duration_s=None, mode="http_500", http_status)
    blackhole = Blackhole  # (provider, at_s, duration_s=None)
    lag_provider = LagProvider  # (provider, blocks, at_s, duration_s=None)
    drop_websockets = DropWebsockets  # (provider, at_s)
    open_circuit_breaker = OpenCircuitBreaker  # (provider, at_s, duration_s=None, chain=...)
    random_failures = RandomFailures  # (mtbf_s, seed, at_s=0, duration_s=None, mttr_s=5, ...)
    network = NetworkFault  # (provider, at_s, duration_s=None, latency_ms=0, ...)


_ACTIONS: dict[str, type[ChaosAction]] = {
    cls.action: cls
    for cls in (
        KillProvider, FlapProvider, DegradeProvider, InjectLatency, ErrorRate, Blackhole,
        LagProvider, DropWebsockets, OpenCircuitBreaker, RandomFailures, NetworkFault,
    )
}  # fmt: skip


def chaos_from_dict(d: Mapping[str, Any]) -> ChaosAction:
    """``{"action": "kill_provider", "provider": "alpha", "at_s": 10}`` (or the one-key form
    ``{"kill_provider": {...}}``) → the action; ValueError naming the valid actions or keys."""
    if not isinstance(d, Mapping):
        raise ValueError(f"a chaos action must be a mapping, not {type(d).__name__}")
    data = dict(d)
    if "action" not in data and len(data) == 1 and isinstance(next(iter(data.values())), Mapping):
        name, inner = next(iter(data.items()))
        data = {"action": name, **inner}
    name = data.pop("action", None)
    cls = _ACTIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown chaos action {name!r}; valid: {', '.join(_ACTIONS)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; valid: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in data]
    if missing:
        raise ValueError(f"{name}: missing key(s) {missing}")
    for key, value in list(data.items()):
        data[key] = _coerce(name, key, str(fields[key].type), value)
    return cls(**data)


def _coerce(action: str, key: str, kind: str, value: Any) -> Any:
    """Check a YAML value against the field's annotation (a string: postponed annotations)."""
    if value is None and "None" in kind:
        return None
    ok: bool
    if kind.startswith("tuple"):
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif kind.startswith("bool"):
        ok = isinstance(value, bool)
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"{action}.{key}: expected {kind}, got {value!r}")
    return value


# -- a context for tests and simple runs ------------------------------------------------------


class BasicChaosContext:
    """A ChaosContext over dicts of mocks and proxies; real time unless a subclass says otherwise.

    ``records`` keeps every ``(record, reverted)`` in order; ``timeline()`` merges each injection
    with its revert. With a ``bus``, every record is also published as a ``ChaosEvent``.
    """

    def __init__(
        self,
        *,
        mocks: Mapping[str, MockProvider] | None = None,
        proxies: Mapping[str, FaultProxy] | None = None,
        control: ControlFn | None = None,
        provider_ids: Sequence[str] | None = None,
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        self.mocks = dict(mocks or {})
        self.proxies = dict(proxies or {})
        ids = provider_ids if provider_ids is not None else [*self.mocks, *self.proxies]
        self._ids = list(dict.fromkeys(ids))
        self._control = control
        self._rng = rng if rng is not None else random.Random(0)
        self._clock = clock
        self._bus = bus
        self._t0_ms = clock.now_ms()
        self.records: list[tuple[ChaosRecord, bool]] = []

    @classmethod
    def for_fleet(cls, fleet: MockFleet, **kw: Any) -> BasicChaosContext:
        return cls(mocks=fleet.providers, **kw)

    @property
    def rng(self) -> random.Random:
        return self._rng

    @property
    def provider_ids(self) -> Sequence[str]:
        return list(self._ids)

    def restart_clock(self) -> None:
        """Time 0 is now."""
        self._t0_ms = self._clock.now_ms()

    def now_s(self) -> float:
        return (self._clock.now_ms() - self._t0_ms) / 1000.0

    async def sleep_until(self, t_s: float) -> None:
        await asyncio.sleep(max(0.0, t_s - self.now_s()))

    def mock(self, provider_id: str) -> MockProvider | None:
        return self.mocks.get(provider_id)

    def proxy(self, provider_id: str) -> FaultProxy | None:
        return self.proxies.get(provider_id)

    async def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._control is None:
            raise RuntimeError(f"no control API to POST {path} to (give control=...)")
        return await self._control(path, body)

    def record(self, record: ChaosRecord, reverted: bool) -> None:
        self.records.append((record, reverted))
        if self._bus is not None:
            from lasso_rpc.observability.events import ChaosEvent

            ts = self._clock.wall_s()
            self._bus.publish(
                ChaosEvent(
                    ts=ts,
                    action=record.action,
                    target=record.target,
                    reverted=reverted,
                    details=dict(record.details),
                )
            )

    def timeline(self) -> list[ChaosRecord]:
        """One record per injection, replaced by its revert once there is one."""
        out: list[ChaosRecord] = []
        for rec, reverted in self.records:
            key = (rec.action, rec.target, rec.at_s)
            if reverted and (i := next((i for i, r in enumerate(out) if _key(r) == key), -1)) >= 0:
                out[i] = rec
            else:
                out.append(rec)
        return out

    async def run(self, actions: Sequence[ChaosAction]) -> None:
        """Check every action first, then run them all concurrently."""
        for a in actions:
            a.check(self)
        async with asyncio.TaskGroup() as tg:
            for a in actions:
                tg.create_task(a.run(self))

    def __repr__(self) -> str:
        return (
            f"BasicChaosContext(providers={self._ids}, now_s={self.now_s():.3f}, "
            f"records={len(self.records)})"
        )


def _key(rec: ChaosRecord) -> tuple[str, str | None, float]:
    return rec.action, rec.target, rec.at_s


def http_control(base_url: str, token: str, session: aiohttp.ClientSession) -> ControlFn:
    """A ``control`` callable POSTing to a router's control API (``session`` stays yours)."""

    async def control(path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(base_url.rstrip("/") + path, json=body, headers=headers) as r:
            answer = await r.json(content_type=None)
            if r.status >= 400:
                raise RuntimeError(f"control API {path}: HTTP {r.status}: {answer}")
            return dict(answer)

    return control
