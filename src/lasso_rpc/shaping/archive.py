"""Old state goes to archive providers: ``providers[].archive`` put to use.

A full node keeps the state of the last blocks only (geth: 128); asked for older state it
answers "missing trie node" (a capability error, failed over, but one wasted attempt each time).
When a chain has both kinds, a state read whose block is more than
``routing.shaping.archive_after_blocks`` behind the head is kept away from the non-archive
providers, as long as one archive provider is usable (not cordoned, breaker letting calls
through); when none is, the call goes to everyone as before. Block and receipt reads are not
concerned (full nodes keep those).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lasso_rpc.shaping.blockrefs import request_refs

if TYPE_CHECKING:
    from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["STATE_METHODS", "ArchiveRouting"]

#: Reads that need the state at their block.
STATE_METHODS = frozenset(
    {
        "eth_getBalance",
        "eth_getCode",
        "eth_getTransactionCount",
        "eth_getStorageAt",
        "eth_call",
        "eth_getProof",
        "eth_createAccessList",
        "eth_estimateGas",
        "debug_traceCall",
        "debug_traceBlockByNumber",
        "trace_call",
        "trace_block",
        "trace_replayBlockTransactions",
    }
)


class ArchiveRouting:
    """``avoid(method, params)``: the providers to keep out of a call, or an empty set."""

    def __init__(self, chain: ChainRuntime, after_blocks: int) -> None:
        self._chain = chain
        self._after = after_blocks
        archive = {pid for pid, p in chain.providers.items() if p.config.archive}
        self._archive = frozenset(archive)
        self._full = frozenset(chain.providers) - self._archive
        self.enabled = bool(self._archive) and bool(self._full)
        self.routed = 0  # calls sent to archive providers only

    def avoid(self, method: str, params: bytes) -> frozenset[str]:
        if method not in STATE_METHODS:
            return frozenset()
        head = self._chain.consensus_head
        refs = request_refs(method, params)
        if head is None or refs.kind != "number" or head - refs.lo <= self._after:
            return frozenset()
        providers = self._chain.providers
        if not any(
            not providers[pid].cordoned and providers[pid].breaker.admits() for pid in self._archive
        ):
            return frozenset()
        self.routed += 1
        return self._full

    def __repr__(self) -> str:
        return (
            f"ArchiveRouting(archive={sorted(self._archive)} after={self._after}"
            f" routed={self.routed})"
        )
