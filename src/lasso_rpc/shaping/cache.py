"""``ResponseCache``: one chain's view of the profile's store. Decides what may be kept, under
which finality class and for how long, and whether a stored answer may be served now.

Never cached: errors, ``null`` (a block or transaction not there yet), anything a lagging
provider answered, answers naming a block the ledger knows with another hash, ranges reaching
past the known head, and whatever ``blockrefs`` calls NEVER. A stored answer is served when:

==============  ==============================================================================
finalized       always (until its TTL or eviction)
unfinalized     no reorg at or below its block since its upstream call began, no fork search
                running, and the head confirmed recently (``HeadWatch.confirm``)
realtime        the same, and the head is still the one of its upstream call (one block at most)
unknown         always (only cached under a policy naming it, with its TTL)
==============  ==============================================================================

Keys are ``method NUL params`` with the params' JSON re-encoded when it has blanks, so two
clients spacing their JSON differently share entries. Values are the raw ``result`` bytes.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

import orjson

from lasso_rpc.config.shaping import CacheConfig, CachePolicy
from lasso_rpc.shaping.blockrefs import NEVER, Named, Refs, answer_blocks, request_refs
from lasso_rpc.shaping.headwatch import HeadWatch
from lasso_rpc.shaping.ledger import BlockLedger
from lasso_rpc.shaping.store import FINALITIES, CacheEntry, CacheStore
from lasso_rpc.shaping.testing import reorg_safety_on

__all__ = ["Placement", "ResponseCache", "ShapingStats", "cache_key"]

_BLANK = re.compile(rb"[ \t\r\n]")


def cache_key(method: str, params: bytes) -> bytes:
    if _BLANK.search(params) is not None:
        try:
            params = orjson.dumps(orjson.loads(params))
        except orjson.JSONDecodeError:
            pass
    return method.encode() + b"\x00" + params


@dataclass(slots=True)
class ShapingStats:
    """Counters of one chain of a profile, kept across reloads (read by ``shaping.metrics``
    when /metrics is scraped)."""

    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINALITIES, 0))
    misses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINALITIES, 0))
    stored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINALITIES, 0))
    reorg_evictions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINALITIES, 0))
    bypassed: int = 0
    stale_refused: int = 0  # entries found but not served (reorg, head moved, unconfirmed)
    reorgs: int = 0
    dedup_leaders: int = 0  # calls that went upstream with dedup on
    dedup_followers: int = 0  # calls answered by an identical call in flight
    log_splits: int = 0  # eth_getLogs/trace_filter requests answered in pieces


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an answer sits: its finality class and the highest block it depends on."""

    finality: str
    height: int | None


class ResponseCache:
    def __init__(
        self,
        config: CacheConfig,
        store: CacheStore,
        namespace: str,
        ledger: BlockLedger,
        watch: HeadWatch,
        stats: ShapingStats,
    ) -> None:
        self.config = config
        self.store = store
        self.namespace = namespace
        self.ledger = ledger
        self.watch = watch
        self.stats = stats
        self._policies: dict[tuple[str, str], CachePolicy | None] = {}

    def policy(self, method: str, finality: str) -> CachePolicy | None:
        key = (method, finality)
        try:
            return self._policies[key]
        except KeyError:
            pass
        found = next(
            (
                p
                for p in self.config.policies
                if p.finality == finality and any(fnmatch.fnmatchcase(method, g) for g in p.methods)
            ),
            None,
        )
        if len(self._policies) < 4096:
            self._policies[key] = found
        return found

    # -- reading ---------------------------------------------------------------------------

    async def lookup(self, key: bytes, arrived_ms: float) -> CacheEntry | None:
        """The stored answer for ``key`` if it may be served now (module docstring)."""
        entry = await self.store.get(self.namespace, key)
        if entry is None:
            return None
        if await self.servable(entry, arrived_ms):
            self.stats.hits[entry.finality] += 1
            return entry
        self.stats.stale_refused += 1
        return None

    async def servable(self, entry: CacheEntry, arrived_ms: float) -> bool:
        fin = entry.finality
        if fin == "finalized" or fin == "unknown":
            return True
        ledger = self.ledger
        if not reorg_safety_on():  # test mode: what the battle's stale-answer count must catch
            return fin != "realtime" or entry.head == ledger.head
        if fin == "unfinalized" and entry.height is not None and ledger.is_final(entry.height):
            return not ledger.stale(entry.seq, entry.height)  # final since: no more checks
        if not self.watch.fresh(arrived_ms) and not await self.watch.confirm(arrived_ms):
            return False
        if ledger.walking or ledger.stale(entry.seq, entry.height):
            return False
        return fin != "realtime" or entry.head == ledger.head

    # -- writing ---------------------------------------------------------------------------

    def refs(self, method: str, params: bytes) -> Refs:
        return request_refs(method, params)

    def place(
        self, refs: Refs, payload: bytes, head: int | None, blocks: list[Named] | None
    ) -> Placement | None:
        """The class of an answer to a call with ``refs``, made when the head was ``head``;
        None when it must not be cached. ``blocks``: what ``answer_blocks`` read from it."""
        ledger = self.ledger
        kind = refs.kind
        if blocks is None:
            return None  # null, pending, or unreadable
        if kind == "static":
            return Placement("finalized", None)
        if kind == "head":
            return None if head is None else Placement("realtime", head)
        if kind == "unknown":
            return Placement("unknown", None)
        if kind == "range":
            return self._by_height(refs.hi, head, past_head_ok=False)
        if kind == "number":
            return self._by_height(refs.lo, head, past_head_ok=bool(blocks))
        if kind == "hash":
            n = ledger.numbers.get(refs.block_hash or "")
            if n is None:
                n = next((b.number for b in blocks if b.hash == refs.block_hash), None)
            if n is None:
                return Placement("unknown", None)
            return self._by_height(n, head, past_head_ok=True)
        if kind == "answer":
            if not blocks:
                return None
            return self._by_height(max(b.number for b in blocks), head, past_head_ok=True)
        return None

    def _by_height(self, n: int, head: int | None, *, past_head_ok: bool) -> Placement | None:
        if self.ledger.is_final(n):
            return Placement("finalized", None)
        if (head is not None and n <= head) or past_head_ok:
            return Placement("unfinalized", n)
        return None

    async def keep(
        self,
        key: bytes,
        method: str,
        refs: Refs,
        payload: bytes,
        *,
        seq: int,
        head: int | None,
        now_wall_ms: float,
    ) -> str | None:
        """Store an upstream answer if the rules allow; its finality class, or None."""
        if refs is NEVER or payload == b"null":
            return None
        blocks = answer_blocks(payload) if refs.kind != "unknown" else []
        if refs.kind == "hash":
            # Asked for by hash: it may be a block off the canonical chain; never a reorg sign.
            if blocks and any(self.ledger.hashes.get(b.number, b.hash) != b.hash for b in blocks):
                return None
        elif blocks and not self.watch.observe(blocks):
            return None  # names a block the ledger knows differently: a reorg is being checked
        placed = self.place(refs, payload, head, blocks)
        if placed is None:
            return None
        policy = self.policy(method, placed.finality)
        if policy is None:
            return None
        ledger = self.ledger
        if (
            placed.finality != "finalized"
            and reorg_safety_on()
            and (
                ledger.walking
                or ledger.stale(seq, placed.height if placed.height is not None else 0)
            )
        ):
            return None
        entry = CacheEntry(payload, placed.finality, placed.height, head, seq, now_wall_ms)
        await self.store.set(self.namespace, key, entry, ttl_ms=policy.ttl_ms)
        self.stats.stored[placed.finality] += 1
        return placed.finality

    def __repr__(self) -> str:
        return f"ResponseCache({self.namespace} {self.store!r})"
