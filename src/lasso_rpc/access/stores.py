"""Where buckets live: this process, the workers' hub, or Redis; one small ``BucketStore``.

The remote stores collect the checks of one event-loop turn and send them in one message
(``batcher.py``), so the cost per request falls with load. Redis's store is ``redis_store.py``.
A remote store raises ``StateUnavailable``/``HubUnavailable`` (``LassoError``s) when it cannot
answer: the gate decides what that means (``access.on_state_down``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from lasso_rpc.access.batcher import Batcher
from lasso_rpc.access.buckets import Check, MemoryBuckets, Verdict

if TYPE_CHECKING:
    from lasso_rpc.cluster.hub_link import HubLink

__all__ = ["BucketStore", "HubStore", "LocalStore"]


class BucketStore(Protocol):
    kind: str

    async def take(self, checks: Sequence[Check], /) -> Verdict: ...

    async def aclose(self) -> None: ...


class LocalStore:
    """This process's buckets (one process, or a node whose limits are its own)."""

    kind = "memory"

    def __init__(self, buckets: MemoryBuckets) -> None:
        self.buckets = buckets

    async def take(self, checks: Sequence[Check]) -> Verdict:
        return self.buckets.take(checks)

    async def aclose(self) -> None:
        return None


class HubStore:
    """The hub's buckets, shared by every worker of ``serve --workers N``."""

    kind = "hub"

    def __init__(self, link: HubLink, timeout_s: float = 0.05) -> None:
        self._link = link
        self._timeout_s = timeout_s
        self._batcher = Batcher(lambda sets: link.take(sets, self._timeout_s))

    async def take(self, checks: Sequence[Check]) -> Verdict:
        return await self._batcher.take(checks)

    async def aclose(self) -> None:
        await self._batcher.aclose()
