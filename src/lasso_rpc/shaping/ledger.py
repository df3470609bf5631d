"""``BlockLedger``: what this router knows of one chain's recent blocks. Pure, no I/O.

It holds the hash seen at each recent height (from head checks, head polls and the answers that
went through the cache), the head, the finalized height, and a short log of reorgs. The cache
asks it two questions: which finality class a height has, and whether an entry made before some
reorg may still be served (``stale``): an entry remembers the reorg counter (``seq``) of the
moment its upstream call began and the highest block it depends on (``height``); it is stale
when a reorg with a fork point at or below that height was seen since.

``observe`` records a block and returns the height of a conflict (a different hash than the one
recorded there, or a parent hash that does not match the recorded block below): a reorg reached
at least that height. Finding the exact fork point needs the network (``shaping.headwatch``);
until it calls ``reorg(fork)`` the ledger is ``walking`` and the cache serves nothing unfinalized.
"""

from __future__ import annotations

from collections import deque

__all__ = ["BlockLedger"]

_KEEP_REORGS = 64


class BlockLedger:
    def __init__(self, *, finality_depth: int, keep_blocks: int = 4096) -> None:
        self.finality_depth = finality_depth
        self._keep = keep_blocks
        self.hashes: dict[int, str] = {}
        self.numbers: dict[str, int] = {}  # hash -> height, for the blocks in ``hashes``
        self.head: int | None = None
        self.finalized_tag: int | None = None  # the providers' `finalized` block, when answered
        self.tag_supported: bool | None = None  # None: not asked yet
        self.confirmed_ms = float("-inf")  # when the head was last confirmed upstream
        self.seq = 0  # reorgs seen so far
        self.walking = False  # a conflict was seen; the fork point is being searched
        self._reorgs: deque[tuple[int, int]] = deque(maxlen=_KEEP_REORGS)  # (seq, fork height)

    # -- reading ---------------------------------------------------------------------------

    @property
    def finalized(self) -> int | None:
        """The highest height taken as final (the `finalized` tag, else head - depth)."""
        if self.tag_supported and self.finalized_tag is not None:
            return self.finalized_tag
        if self.head is None:
            return None
        return self.head - self.finality_depth

    def is_final(self, height: int) -> bool:
        fin = self.finalized
        return fin is not None and height <= fin

    def stale(self, seq: int, height: int | None) -> bool:
        """An entry made at reorg count ``seq``, depending on blocks up to ``height``: was a
        reorg at or below that height seen since? (Unknown history counts as yes.)"""
        if seq == self.seq:
            return False
        reorgs = self._reorgs
        if not reorgs or seq < reorgs[0][0] - 1:
            return True  # older than the log: cannot tell
        if height is None:
            return False
        return any(fork <= height for s, fork in reorgs if s > seq)

    # -- changing --------------------------------------------------------------------------

    def observe(self, number: int, block_hash: str, parent_hash: str | None = None) -> int | None:
        """Record block ``number`` with ``block_hash`` (and its parent's hash, if known); the
        height of a conflict with what was recorded, else None. Nothing is overwritten on a
        conflict: ``reorg`` does that once the fork point is known."""
        block_hash = block_hash.lower()
        known = self.hashes.get(number)
        if known is not None and known != block_hash:
            return number
        if parent_hash is not None and number > 0:
            parent_hash = parent_hash.lower()
            below = self.hashes.get(number - 1)
            if below is not None and below != parent_hash:
                return number - 1
            self._put(number - 1, parent_hash)
        self._put(number, block_hash)
        if self.head is None or number > self.head:
            self.head = number
        return None

    def set_finalized(self, number: int | None) -> None:
        """The providers' `finalized` block (None: the tag is not supported). Never goes back."""
        if number is None:
            self.tag_supported = False
            return
        self.tag_supported = True
        if self.finalized_tag is None or number > self.finalized_tag:
            self.finalized_tag = number

    def start_walk(self) -> None:
        self.walking = True

    def reorg(self, fork: int) -> int:
        """Blocks from ``fork`` up were replaced: forget their hashes, count the reorg; the new
        reorg counter."""
        self.seq += 1
        self._reorgs.append((self.seq, fork))
        for h in [h for h in self.hashes if h >= fork]:
            self.numbers.pop(self.hashes.pop(h), None)
        if self.head is not None and self.head >= fork:
            self.head = fork - 1 if fork > 0 else None
        self.walking = False
        return self.seq

    def _put(self, number: int, block_hash: str) -> None:
        old = self.hashes.get(number)
        if old is not None:
            self.numbers.pop(old, None)
        self.hashes[number] = block_hash
        self.numbers[block_hash] = number
        if len(self.hashes) > self._keep:
            for h in sorted(self.hashes)[: len(self.hashes) - self._keep]:
                self.numbers.pop(self.hashes.pop(h), None)

    def __repr__(self) -> str:
        return (
            f"BlockLedger(head={self.head}, finalized={self.finalized}, blocks={len(self.hashes)},"
            f" reorgs={self.seq}, walking={self.walking})"
        )
