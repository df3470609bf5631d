"""eth_getLogs (and trace_filter) over a block range longer than providers accept.

``plan_range`` looks at the providers' configured limits (``providers[].logs_max_block_range``):
a range some provider takes whole goes whole, kept away from the providers that would refuse it;
a range longer than every limit is cut into pieces of the largest limit. ``split_run`` runs the
pieces (at most ``concurrency`` at once) and, when every provider tried refused a piece as too
large ("block range too wide", "more than 10000 results"), cuts that piece in halves, down to a
single block. Results are raw JSON arrays, joined in block order without decoding them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from lasso_rpc.errors import AllAttemptsFailed
from lasso_rpc.resilience.call import CallOutcome
from lasso_rpc.resilience.error_rules import LIMITS

__all__ = ["RangePlan", "is_range_refusal", "merge_arrays", "plan_range", "split_run"]

Piece = Callable[[int, int, frozenset[str]], Awaitable[CallOutcome]]


class RangePlan:
    __slots__ = ("avoid", "chunk")

    def __init__(self, chunk: int | None, avoid: frozenset[str]) -> None:
        self.chunk = chunk  # None: send whole
        self.avoid = avoid

    def __repr__(self) -> str:
        return f"RangePlan(chunk={self.chunk}, avoid={sorted(self.avoid)})"


def plan_range(span: int, limits: Mapping[str, int | None]) -> RangePlan:
    """How to send a range of ``span`` blocks to providers with these limits (None: none)."""
    if not limits or any(v is None for v in limits.values()):
        takes = [p for p, v in limits.items() if v is None or v >= span]
        return RangePlan(None, frozenset(limits) - frozenset(takes))
    largest = max(v for v in limits.values() if v is not None)
    chunk = None if span <= largest else largest
    need = span if chunk is None else chunk
    return RangePlan(chunk, frozenset(p for p, v in limits.items() if v is None or v < need))


def is_range_refusal(exc: AllAttemptsFailed) -> bool:
    """Every attempt failed because the provider refused the range or the result size."""
    data = exc.data if isinstance(exc.data, dict) else {}
    attempts = data.get("attempts") or []
    refusals = [a for a in attempts if a.get("error_class") == "capability"]
    return bool(refusals) and all(LIMITS.search(str(a.get("error", ""))) for a in refusals)


def merge_arrays(parts: list[bytes]) -> bytes:
    """``[a,b]`` + ``[]`` + ``[c]`` → ``[a,b,c]`` without decoding the elements."""
    inner = [p.strip()[1:-1].strip() for p in parts]
    return b"[" + b",".join(i for i in inner if i) + b"]"


async def split_run(
    lo: int,
    hi: int,
    chunk: int | None,
    avoid: frozenset[str],
    piece: Piece,
    *,
    concurrency: int,
) -> list[CallOutcome]:
    """Outcomes of ``lo..hi`` in order, as pieces of ``chunk`` blocks (reactive halving);
    the first client error or failure found in block order is raised or returned alone."""
    gate = asyncio.Semaphore(concurrency)
    size = hi - lo + 1 if chunk is None else chunk
    bounds = [(a, min(a + size - 1, hi)) for a in range(lo, hi + 1, size)]

    async def one(a: int, b: int) -> list[CallOutcome]:
        async with gate:
            try:
                return [await piece(a, b, avoid)]
            except AllAttemptsFailed as exc:
                if a == b or not is_range_refusal(exc):
                    raise
        mid = (a + b) // 2
        left, right = await asyncio.gather(one(a, mid), one(mid + 1, b))
        return [*left, *right]

    results = await asyncio.gather(*(one(a, b) for a, b in bounds))
    out = [o for group in results for o in group]
    bad = next((o for o in out if not o.ok), None)
    return [bad] if bad is not None else out


def with_range(spec: Mapping[str, Any], lo: int, hi: int) -> bytes:
    """The params of one piece: the same filter over ``lo..hi``."""
    return orjson.dumps([{**spec, "fromBlock": hex(lo), "toBlock": hex(hi)}])
