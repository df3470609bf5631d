"""Chaos actions (SPEC §6): which fault, on which provider, when, and for how long.

Actions are frozen values made by the ``Chaos`` factory (``chaos.factory``; ``chaos_from_dict``
in ``chaos.parse`` for YAML) and run against a ``ChaosContext``, the small seam the scenario
implements::

    await Chaos.kill_provider("alpha", at_s=10, duration_s=5).run(ctx)

``run`` sleeps until ``at_s`` (seconds since the scenario start), applies the fault, records it
(``chaos.injected``), waits ``duration_s``, reverts it and records that (``chaos.reverted``).
Without ``duration_s`` the fault stays for the rest of the run and ``run`` returns once it is
applied (the record's ``end_s`` stays None). Cancelled inside its window (the scenario ended
early, Ctrl-C), an action still reverts and records the revert before the cancellation goes on.

A new action is a frozen dataclass subclassing ``ChaosAction`` with an ``action`` name, its
``needs`` (a mock, a proxy, either or nothing) and ``_apply`` (apply the fault, return how to
revert it); ``chaos.actions`` holds the built-in ones, ``chaos.factory`` names them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, ClassVar, Literal, Protocol, Self, TypeVar

from lasso_rpc.battle.chaos.layers import ChaosLayers, Revert
from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.mock import MockProvider
from lasso_rpc.battle.records import ChaosRecord

__all__ = [
    "ChaosAction",
    "ChaosContext",
    "Needs",
    "Revert",
    "context_provider_ids",
    "finish",
    "require",
]

T = TypeVar("T")
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

    @property
    def layers(self) -> ChaosLayers:
        """The faults applied so far, per provider: overlapping actions compose through it."""
        ...

    def record(self, record: ChaosRecord, reverted: bool, /) -> None:
        """Keep it in the timeline; publish a ChaosEvent when the router is in-process."""
        ...


def context_provider_ids(ctx: ChaosContext) -> Sequence[str] | None:
    ids = getattr(ctx, "provider_ids", None)
    return list(ids) if ids is not None else None


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
        ids = context_provider_ids(ctx)
        if ids is not None:
            self.validate(ids)
        for pid in self.targets():
            require(self.action, self.needs, ctx, pid)

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
        (revert, applied), cancelled = await finish(apply(ctx))
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
                        _, cancelled = await finish(revert())
                    finally:
                        ctx.record(dataclasses.replace(rec, end_s=ctx.now_s()), True)
        if cancelled:
            raise asyncio.CancelledError


async def finish(aw: Awaitable[T]) -> tuple[T, bool]:
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


def require(action: str, needs: Needs, ctx: ChaosContext, pid: str) -> None:
    mock, proxy = ctx.mock(pid), ctx.proxy(pid)
    if needs == "mock" and mock is None:
        raise ValueError(f"{action} on {pid!r} needs a MockProvider ({pid} is a real node)")
    if needs == "proxy" and proxy is None:
        raise ValueError(f"{action} on {pid!r} needs a FaultProxy in front of {pid}")
    if needs == "either" and mock is None and proxy is None:
        raise ValueError(f"{action} on {pid!r} needs a MockProvider or a FaultProxy")
