"""Answers checked against the chain's truth, and upstream calls counted at the providers.

``ChainTruth`` watches the mock fleet's ``SimulatedChain`` (every block a reorg replaced, and
when) and reads each answer the load generator receives: an answer naming a block (a block, a
transaction, a receipt, a log: number and hash) is **stale** when that block had been replaced
by a reorg before the request was sent. ``STALE_GRACE_S`` after a reorg is not counted: an
upstream answer computed just before the reorg may still be in flight (shared by identical
requests) and arrive after it. A router serving a replaced block from its cache after that shows
up here, whatever it says about itself.

It also counts the client requests and, at the end, the calls the mock providers received
(``requests_received``: every JSON-RPC call, the router's head polls included), which is what
the report's "upstream calls saved" row compares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

from lasso_rpc.battle.providers.blocks import ChainEvent
from lasso_rpc.battle.providers.chain import SimulatedChain
from lasso_rpc.battle.records import RequestRecord
from lasso_rpc.shaping.blockrefs import answer_blocks

__all__ = ["STALE_GRACE_S", "ChainTruth", "TruthFigures"]

STALE_GRACE_S = 0.05
_MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class TruthFigures:
    client_requests: int
    upstream_calls: int | None  # at the mock providers; None: real nodes
    answers_checked: int | None  # answers naming a block, checked (None: not checked)
    stale_answers: int | None
    reorgs: int
    examples: tuple[str, ...] = ()

    @property
    def upstream_saved_pct(self) -> float | None:
        if self.upstream_calls is None or not self.client_requests:
            return None
        return 100.0 * (1.0 - self.upstream_calls / self.client_requests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_requests": self.client_requests,
            "upstream_calls": self.upstream_calls,
            "upstream_saved_pct": self.upstream_saved_pct,
            "answers_checked": self.answers_checked,
            "stale_answers": self.stale_answers,
            "reorgs": self.reorgs,
            "examples": list(self.examples),
            "grace_s": STALE_GRACE_S,
        }


class _Reply(msgspec.Struct):
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_reply = msgspec.json.Decoder(_Reply)


class ChainTruth:
    """Counts client requests; with ``check``, reads every answer against ``chain``."""

    def __init__(self, chain: SimulatedChain | None, t0: float, *, check: bool) -> None:
        self._chain = chain
        self._t0 = t0  # time.monotonic() of the scenario start (the records' clock)
        self._replaced: dict[str, tuple[int, float]] = {}  # hash -> (number, run time replaced)
        self._unlisten = chain.add_listener(self._on_block) if chain is not None and check else None
        self.check = check and chain is not None
        self.requests = 0
        self.checked = 0
        self.stale = 0
        self.reorgs = 0
        self._last: str | None = None  # the new block of the last reorg event
        self._examples: list[str] = []

    def _on_block(self, ev: ChainEvent) -> None:
        old = ev.replaced
        if old is not None:
            # One reorg notifies its new blocks in order, each the child of the one before.
            if ev.block.parent_hash != self._last:
                self.reorgs += 1
            self._last = ev.block.hash
            self._replaced[old.hash] = (old.number, time.monotonic() - self._t0)

    def record(self, rec: RequestRecord) -> None:
        self.requests += 1

    def inspect(self, start_s: float, body: bytes) -> None:
        """An answer to a request sent at ``start_s`` (run time): does it name a replaced block?"""
        try:
            raw = _reply.decode(body).result
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if raw is msgspec.UNSET:
            return
        blocks = answer_blocks(bytes(raw))
        if not blocks:
            return
        self.checked += 1
        replaced = self._replaced
        for b in blocks:
            gone = replaced.get(b.hash)
            if gone is not None and gone[1] + STALE_GRACE_S <= start_s:
                self.stale += 1
                if len(self._examples) < _MAX_EXAMPLES:
                    self._examples.append(
                        f"request sent at {start_s:.3f}s named block {b.number} {b.hash[:18]}…,"
                        f" replaced at {gone[1]:.3f}s"
                    )
                return

    def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def figures(self, upstream_calls: int | None) -> TruthFigures:
        return TruthFigures(
            client_requests=self.requests,
            upstream_calls=upstream_calls,
            answers_checked=self.checked if self.check else None,
            stale_answers=self.stale if self.check else None,
            reorgs=self.reorgs,
            examples=tuple(self._examples),
        )

    def __repr__(self) -> str:
        return f"ChainTruth(requests={self.requests}, checked={self.checked}, stale={self.stale})"
