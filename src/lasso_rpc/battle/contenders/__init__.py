"""Contenders: the same scenario against other ways of reaching the providers (issue 15).

Client-side fallback with the libraries users pick instead of a router, viem's ``fallback``
transport and ethers v6 ``FallbackProvider``, runs in a Node sidecar (``sidecar.mjs``, with the
versions pinned in the repo's package.json) driven by ``Sidecar`` / ``run_contender``.
"""

from __future__ import annotations

from lasso_rpc.battle.contenders.locate import (
    ContenderError,
    SidecarFailed,
    SidecarUnavailable,
    find_node,
    find_node_modules,
)
from lasso_rpc.battle.contenders.sidecar import Sidecar, run_contender
from lasso_rpc.battle.contenders.spec import (
    ClientName,
    ContenderRecord,
    EthersOptions,
    ProviderTarget,
    ScheduledCall,
    SidecarReady,
    SidecarSpec,
    SidecarSummary,
    ViemOptions,
    schedule_of,
)

__all__ = [
    "ClientName",
    "ContenderError",
    "ContenderRecord",
    "EthersOptions",
    "ProviderTarget",
    "ScheduledCall",
    "Sidecar",
    "SidecarFailed",
    "SidecarReady",
    "SidecarSpec",
    "SidecarSummary",
    "SidecarUnavailable",
    "ViemOptions",
    "find_node",
    "find_node_modules",
    "run_contender",
    "schedule_of",
]
