"""Chaos on the chain itself rather than on a provider: ``reorg`` (the mock fleet's simulated
chain replaces its last ``depth`` blocks with new ones at the same numbers).

Every provider of the fleet serves the same ``SimulatedChain``, so they all see the reorg at
once, as a real network converging on a new fork; the router sees it through its head polls and
the answers going through it. Instant (nothing to revert); the record's details name the
replaced blocks (``from_block``..``to_block``). Real nodes (anvil) are not supported here: the
anvil tests use ``anvil_reorg`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from lasso_rpc.battle.chaos.base import (
    ChaosAction,
    ChaosContext,
    Needs,
    Revert,
    context_provider_ids,
)

__all__ = ["ReorgChain"]


@dataclass(frozen=True, slots=True)
class ReorgChain(ChaosAction):
    """The last ``depth`` blocks of the simulated chain are replaced (new hashes, logs, txs)."""

    action: ClassVar[str] = "reorg"
    needs: ClassVar[Needs] = "nothing"
    depth: int
    at_s: float

    def _check(self) -> None:
        if self.depth < 1:
            raise ValueError("reorg: depth must be >= 1")

    def _when(self) -> str:
        return f"at {self.at_s:g}s"

    def check(self, ctx: ChaosContext) -> None:
        ChaosAction.check(self, ctx)  # (slots dataclass: no zero-argument super)
        if _chain_of(ctx) is None:
            raise ValueError("reorg needs mock providers (their simulated chain)")

    async def _apply(self, ctx: ChaosContext) -> tuple[Revert | None, dict[str, Any]]:
        chain = _chain_of(ctx)
        assert chain is not None
        depth = min(self.depth, chain.head_number)
        new = chain.reorg(depth)
        return None, {"from_block": new[0].number, "to_block": new[-1].number}


def _chain_of(ctx: ChaosContext) -> Any:
    for pid in context_provider_ids(ctx) or ():
        mock = ctx.mock(pid)
        if mock is not None:
            return mock.chain
    return None
