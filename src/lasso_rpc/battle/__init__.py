"""The battle-testing framework (SPEC §6).

Names are imported lazily, so ``import lasso_rpc.battle`` stays cheap for the router and the CLI;
add a part by adding its names to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lasso_rpc.battle.anvil import AnvilLockstep, AnvilNode
    from lasso_rpc.battle.chain import SimulatedChain
    from lasso_rpc.battle.mock_fleet import MockFleet, MockFleetSpec, run_mock_fleet
    from lasso_rpc.battle.mock_provider import FailureMode, Knobs, MockProvider

__all__ = [
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
