"""Scenario: the fluent battle API (SPEC §6), a ``ScenarioSpec`` that can run itself.

setup → providers → router → (workload ∥ chaos) → collect → analyze → SLOs → result; the run
is ``battle.runner.run_scenario``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lasso_rpc.aio import run_coro
from lasso_rpc.battle.measure.baseline import Thresholds
from lasso_rpc.battle.result import BattleResult
from lasso_rpc.battle.runner import run_scenario
from lasso_rpc.battle.spec import ProgressFn, ScenarioSpec

__all__ = ["Scenario"]


@dataclass(frozen=True, slots=True)
class Scenario(ScenarioSpec):
    """An immutable builder (see ``ScenarioSpec``) with ``run()``:

    ``await Scenario("x").providers(...).workload(...).chaos(...).slo(...).run()``.
    """

    async def run(
        self,
        *,
        progress: ProgressFn | None = None,
        baseline: Mapping[str, Any] | None = None,
        thresholds: Thresholds | None = None,
        on_router: Callable[[str], None] | None = None,
    ) -> BattleResult:
        """Validate, then run everything; ``progress(elapsed_s, total_s)`` while it runs,
        ``on_router(url)`` once a router listens. With a ``baseline`` (a result of the same
        scenario) the result carries its comparison."""
        self.validate()
        return await run_scenario(
            self, progress=progress, baseline=baseline, thresholds=thresholds, on_router=on_router
        )

    def run_sync(
        self,
        *,
        progress: ProgressFn | None = None,
        baseline: Mapping[str, Any] | None = None,
    ) -> BattleResult:
        """``run()`` from synchronous code, on its own event loop."""
        return run_coro(self.run(progress=progress, baseline=baseline))
