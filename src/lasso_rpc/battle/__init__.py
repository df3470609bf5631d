"""The battle-testing framework (SPEC §6).

Layers, each using only the ones listed before it:

- ``records``: the values flowing between the parts (requests, chaos, subscriptions, samples);
- ``providers/``: mock providers, the simulated chain, anvil nodes, the fault proxy, router
  processes and where a scenario's router runs;
- ``load/``: workloads and the open-loop load generator; ``chaos/``: fault actions;
- ``measure/``: collector → analysis → SLO verdicts, baselines; ``report/``: the result JSON
  and what is rendered from it;
- ``context`` (what a running scenario hands to hooks and chaos), ``spec`` (a scenario as a
  value), ``result``, ``runner`` (runs a spec), ``scenario`` (``Scenario``: a spec that runs);
- ``catalogue`` (built-in scenarios), ``cli`` (``lasso-rpc battle``), ``testing/`` (pytest).

Names are imported lazily, so ``import lasso_rpc.battle`` stays cheap for the router and the CLI;
add a part by adding its names to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lasso_rpc.battle.chaos.factory import Chaos
    from lasso_rpc.battle.chaos.parse import chaos_from_dict
    from lasso_rpc.battle.contenders.choice import Contender
    from lasso_rpc.battle.context import ScenarioContext
    from lasso_rpc.battle.load.workload import Workload
    from lasso_rpc.battle.measure.analyzer import analyze
    from lasso_rpc.battle.measure.collector import Collector
    from lasso_rpc.battle.measure.slo import SLO
    from lasso_rpc.battle.providers.anvil import AnvilNode
    from lasso_rpc.battle.providers.chain import SimulatedChain
    from lasso_rpc.battle.providers.faultproxy import FaultProxy
    from lasso_rpc.battle.providers.faults import Faults
    from lasso_rpc.battle.providers.fleet import MockFleet, run_mock_fleet
    from lasso_rpc.battle.providers.lockstep import AnvilLockstep
    from lasso_rpc.battle.providers.mock import MockProvider
    from lasso_rpc.battle.providers.spec import FailureMode, Knobs, MockFleetSpec
    from lasso_rpc.battle.result import BattleResult
    from lasso_rpc.battle.scenario import Scenario
    from lasso_rpc.battle.testing.helpers import direct_request, seed_benchmarks, wait_until_ready

__all__ = [
    "SLO",
    "BattleResult",
    "Chaos",
    "Collector",
    "Contender",
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
    "BattleResult": "lasso_rpc.battle.result",
    "Workload": "lasso_rpc.battle.load.workload",
    "Chaos": "lasso_rpc.battle.chaos.factory",
    "chaos_from_dict": "lasso_rpc.battle.chaos.parse",
    "FaultProxy": "lasso_rpc.battle.providers.faultproxy",
    "Faults": "lasso_rpc.battle.providers.faults",
    "SLO": "lasso_rpc.battle.measure.slo",
    "Collector": "lasso_rpc.battle.measure.collector",
    "analyze": "lasso_rpc.battle.measure.analyzer",
    "seed_benchmarks": "lasso_rpc.battle.testing.helpers",
    "direct_request": "lasso_rpc.battle.testing.helpers",
    "wait_until_ready": "lasso_rpc.battle.testing.helpers",
    "ScenarioContext": "lasso_rpc.battle.context",
    "Contender": "lasso_rpc.battle.contenders.choice",
    "AnvilNode": "lasso_rpc.battle.providers.anvil",
    "AnvilLockstep": "lasso_rpc.battle.providers.lockstep",
    "SimulatedChain": "lasso_rpc.battle.providers.chain",
    "FailureMode": "lasso_rpc.battle.providers.spec",
    "Knobs": "lasso_rpc.battle.providers.spec",
    "MockProvider": "lasso_rpc.battle.providers.mock",
    "MockFleet": "lasso_rpc.battle.providers.fleet",
    "MockFleetSpec": "lasso_rpc.battle.providers.spec",
    "run_mock_fleet": "lasso_rpc.battle.providers.fleet",
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
