"""Runs a scenario: its own router, then every contender, one after the other (``run_once``),
and assembles the result JSON (schema ``lasso-rpc.battle/2``).

The scenario's own router decides the verdict: ``passed`` when the run is valid (its ground
truth complete, its load generator on time; ``measure.validity``) and every SLO holds. The
other contenders ran the same providers, workload and chaos; their figures and SLO verdicts
sit beside it in ``contenders``. With a baseline the result carries its ``comparison``; with
``notify`` a failed or regressed run is sent on (``battle.notify``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lasso_rpc.battle.measure.baseline import ScenarioMismatch, Thresholds, compare
from lasso_rpc.battle.measure.slo import SloVerdict, all_passed
from lasso_rpc.battle.notify import notify_result
from lasso_rpc.battle.report.schema import SCHEMA
from lasso_rpc.battle.result import BattleResult, new_run_id
from lasso_rpc.battle.router_config import CHAIN, router_config
from lasso_rpc.battle.run_once import RunOutcome, run_once
from lasso_rpc.battle.spec import ProgressFn, ScenarioSpec

__all__ = ["CHAIN", "router_config", "run_scenario"]


async def run_scenario(
    sc: ScenarioSpec,
    *,
    progress: ProgressFn | None = None,
    baseline: Mapping[str, Any] | None = None,
    thresholds: Thresholds | None = None,
    on_router: Callable[[str], None] | None = None,
) -> BattleResult:
    """Run ``sc`` (and its contenders); compare with ``baseline`` when given (it must be a run
    of the same scenario: ``ScenarioMismatch`` before anything starts otherwise).
    ``on_router(url)`` is called each time a run's router listens (``battle run --live`` prints
    ``url/dashboard`` from it)."""
    if baseline is not None and baseline["scenario"]["name"] != sc.name:
        raise ScenarioMismatch(
            f"the baseline {baseline['id']} is a run of {baseline['scenario']['name']!r}, "
            f"not of {sc.name!r}"
        )
    run_id, started_at = new_run_id(sc.slug)
    contenders = sc.runs()
    each = sc.load_s
    outcomes: list[RunOutcome] = []
    for i, contender in enumerate(contenders):
        step = _offset(progress, i * each, each * len(contenders))
        outcomes.append(await run_once(sc, contender, progress=step, on_router=on_router))
    assert sc.slos is not None
    verdicts = [sc.slos.evaluate(o.analysis) for o in outcomes]
    primary, own = outcomes[0], verdicts[0]
    body = primary.analysis.to_dict()
    valid = primary.analysis.validity is None or primary.analysis.validity.valid
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "id": run_id,
        "passed": valid and all_passed(own),
        "scenario": sc.to_dict(),
        "started_at": started_at,
        "started_unix": primary.started_unix,
        "duration_s": round(primary.duration_s, 3),
        "slos": [v.to_dict() for v in own],
        **body,
        "notes": list(primary.notes),
    }
    if len(outcomes) > 1:
        result["contenders"] = [
            _contender(o, v, primary=i == 0)
            for i, (o, v) in enumerate(zip(outcomes, verdicts, strict=True))
        ]
    if baseline is not None:
        result["comparison"] = compare(result, baseline, thresholds).to_dict()
    if sc.notify_config is not None:
        deliveries = await notify_result(sc.notify_config, result)
        result["notifications"] = [d.to_dict() for d in deliveries]
    return BattleResult(result)


def _contender(o: RunOutcome, verdicts: list[SloVerdict], *, primary: bool) -> dict[str, Any]:
    """One contender's figures, side by side with the others (no histogram, no timelines)."""
    d = o.analysis.to_dict()
    valid = o.analysis.validity is None or o.analysis.validity.valid
    return {
        "label": o.label,
        "kind": o.contender.kind,
        "contender": o.contender.to_dict(),
        "primary": primary,
        "passed": valid and all_passed(verdicts),
        "duration_s": round(o.duration_s, 3),
        "slos": [v.to_dict() for v in verdicts],
        "summary": d["summary"],
        "timeseries": d["timeseries"],
        "chaos": d["chaos"],
        "errors_by_class": d["errors_by_class"],
        "providers": d["providers"],
        "upstream": d["upstream"],
        "validity": d["validity"],
        "load": d["load"],
        "notes": list(o.notes),
    }


def _offset(progress: ProgressFn | None, before: float, total: float) -> ProgressFn | None:
    """Progress of one contender's run as progress of the whole battle."""
    if progress is None:
        return None
    report = progress

    def step(done: float, _each: float) -> None:
        report(before + done, total)

    return step
