"""The battle-testing framework (SPEC §6).

Names are imported lazily, so ``import lasso_rpc.battle`` stays cheap for the router and the CLI;
add a part by adding its names to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lasso_rpc.battle.analyzer import analyze
    from lasso_rpc.battle.anvil import AnvilLockstep, AnvilNode
    from lasso_rpc.battle.chain import SimulatedChain
    from lasso_rpc.battle.chaos import Chaos, chaos_from_dict
    from lasso_rpc.battle.collector import Collector
    from lasso_rpc.battle.context import ScenarioContext
    from lasso_rpc.battle.faultproxy import FaultProxy, Faults
    from lasso_rpc.battle.helpers import direct_request, seed_benchmarks, wait_until_ready
    from lasso_rpc.battle.mock_fleet import MockFleet, MockFleetSpec, run_mock_fleet
    from lasso_rpc.battle.mock_provider import FailureMode, Knobs, MockProvider
    from lasso_rpc.battle.scenario import BattleResult, Scenario
    from lasso_rpc.battle.slo import SLO
    from lasso_rpc.battle.workload import Workload

__all__ = [
    "SLO",
    "BattleResult",
    "Chaos",
    "Collector",
    "FaultProxy",
    "Faults",
    "Scenario",
    "ScenarioContext",
    "Workload",
    "analyze",
    "chaos_from_dict",
    "direct_request",
    "seed_benchmarks",
    "wait_until_ready",
    "AnvilLockstep",
    "AnvilNode",
    "FailureMode",
    "Knobs",
    "MockFleet",
    "MockFleetSpec",
    "MockProvider",
    "SimulatedChain",
    "run_mock_fleet",
]

_EXPORTS: dict[str, str] = {
    "Scenario": "lasso_rpc.battle.scenario",
    "BattleResult": "lasso_rpc.battle.scenario",
    "Workload": "lasso_rpc.battle.workload",
    "Chaos": "lasso_rpc.battle.chaos",
    "chaos_from_dict": "lasso_rpc.battle.chaos",
    "FaultProxy": "lasso_rpc.battle.faultproxy",
    "Faults": "lasso_rpc.battle.faultproxy",
    "SLO": "lasso_rpc.battle.slo",
    "Collector": "lasso_rpc.battle.collector",
    "analyze": "lasso_rpc.battle.analyzer",
    "seed_benchmarks": "lasso_rpc.battle.helpers",
    "direct_request": "lasso_rpc.battle.helpers",
    "wait_until_ready": "lasso_rpc.battle.helpers",
    "ScenarioContext": "lasso_rpc.battle.context",
    "AnvilNode": "lasso_rpc.battle.anvil",
    "AnvilLockstep": "lasso_rpc.battle.anvil",
    "SimulatedChain": "lasso_rpc.battle.chain",
    "FailureMode": "lasso_rpc.battle.mock_provider",
    "Knobs": "lasso_rpc.battle.mock_provider",
    "MockProvider": "lasso_rpc.battle.mock_provider",
    "MockFleet": "lasso_rpc.battle.mock_fleet",
    "MockFleetSpec": "lasso_rpc.battle.mock_fleet",
    "run_mock_fleet": "lasso_rpc.battle.mock_fleet",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
