"""``random_failures``: faults at exponential intervals, never taking every provider down.

Gaps are drawn (mean ``mtbf_s``) from ``random.Random(seed)``; each failure is a random kind on
a random provider, reverted after ``mttr_s``. A provider already failing is never picked again,
and a failure that would leave no provider healthy is skipped unless ``allow_all_down=True``.
The plan (``plan()``) depends on the seed and the providers only; when run, a failure whose
provider is not yet back (a revert ending late) waits for it rather than break the rule, so real
times may slip by a few milliseconds, never the order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lasso_rpc.battle.chaos.actions import (
    Blackhole,
    DegradeProvider,
    ErrorRate,
    InjectLatency,
    KillProvider,
    LagProvider,
    NetworkFault,
)
from lasso_rpc.battle.chaos.base import (
    ChaosAction,
    ChaosContext,
    Needs,
    context_provider_ids,
    require,
)
from lasso_rpc.battle.records import ChaosRecord

__all__ = ["DEFAULT_KINDS", "PlannedFailure", "RandomFailures"]

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
        ids = context_provider_ids(ctx)
        if ids is not None:
            self.validate(ids)
        for pid in self._pool(ids):
            for kind in self.kinds:
                probe = _RANDOM_KINDS[kind](pid, 0.0, 1.0)
                require(f"random_failures ({kind})", probe.needs, ctx, pid)

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
        ids = context_provider_ids(ctx)
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
        self.layers = inner.layers

    def record(self, record: ChaosRecord, reverted: bool, /) -> None:
        tagged = dataclasses.replace(record, details={**record.details, **self._tags})
        self._inner.record(tagged, reverted)
