"""Config of request shaping: the response cache (``cache:``, per profile, SPEC §8) and the
per-chain shaping knobs (``routing.shaping``: in-flight dedup, eth_getLogs splitting, monotonic
``eth_blockNumber``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lasso_rpc.config.base import Frozen

__all__ = ["DEFAULT_POLICIES", "CacheConfig", "CachePolicy", "Finality", "ShapingConfig"]

Finality = Literal["finalized", "unfinalized", "realtime", "unknown"]


class CachePolicy(Frozen):
    """Which answers are kept, and how long: the first policy matching both the method and the
    answer's finality class decides; an answer no policy matches is not cached."""

    methods: list[str] = Field(
        default=["*"],
        description="Method globs (eth_get*). Writes, filters, subscriptions and `pending` "
        "reads are never cached, whatever a glob says.",
        examples=[["eth_getBlockBy*", "eth_getTransactionReceipt"]],
    )
    finality: Finality = Field(
        description="finalized: at or below the chain's finalized block (never changes); "
        "unfinalized: a given block above it (evicted when a reorg replaces that block or one "
        "below); realtime: follows the head (`latest`, eth_blockNumber, gas price; lives at "
        "most one block); unknown: no block can be told (custom methods).",
        examples=["finalized"],
    )
    ttl_ms: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Longest life of an entry; unset: until evicted (by size or by a reorg).",
        examples=[60000],
    )


DEFAULT_POLICIES = [
    CachePolicy(methods=["*"], finality="finalized"),
    CachePolicy(methods=["*"], finality="unfinalized", ttl_ms=60_000),
    CachePolicy(methods=["*"], finality="realtime", ttl_ms=2_000),
]


class CacheConfig(Frozen):
    """The response cache of a profile. Off by default; `cache: {enabled: true}` turns it on
    with the default policies (finalized: no time limit; unfinalized: 60 s; realtime: 2 s)."""

    enabled: bool = Field(default=False, description="Serve repeated reads from the cache.")
    max_bytes: Annotated[int, Field(ge=4096)] = Field(
        default=64 * 1024 * 1024,
        description="Memory of the in-process store (keys, answers and a fixed overhead per "
        "entry); entries that are rarely asked for leave first, and a scan of one-off keys "
        "does not push popular ones out.",
    )
    policies: list[CachePolicy] = Field(
        default=DEFAULT_POLICIES,
        description="What is cached for how long, by method glob and finality class; the "
        "first match decides.",
        examples=[[{"methods": ["eth_getLogs"], "finality": "unfinalized", "ttl_ms": 10000}]],
    )
    head_check_ms: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="How old the confirmation of the chain head (number and hash, asked "
        "upstream) may be when an unfinalized or realtime entry is served. 0: a check sent "
        "after the request arrived, shared by every hit waiting for it, so a reorg is always "
        "seen (and evicted) before a replaced block could be served; such a hit costs one round "
        "trip but no upstream call of its own. Above 0 (at most half a block time is used): "
        "faster hits, but for that long after a reorg a replaced block may still be served. "
        "Finalized entries are never checked.",
        examples=[0],
    )


class ShapingConfig(Frozen):
    """Request shaping besides the cache, per chain."""

    dedup: bool = Field(
        default=True,
        description="Identical reads (chain, method, params) in flight at once share one "
        "upstream call; each client keeps its own id and deadline. Never for writes, filters "
        "or subscriptions.",
    )
    dedup_exclude: list[str] = Field(
        default=[],
        description="Method globs never shared between clients.",
        examples=[["eth_call"]],
    )
    monotonic_block_number: bool = Field(
        default=True,
        description="eth_blockNumber never goes backwards for clients, even when the provider "
        "answering lags the one before it by a block (the highest number answered so far is "
        "returned instead).",
    )
    archive_after_blocks: Annotated[int, Field(ge=0)] = Field(
        default=128,
        description="A state read (eth_getBalance, eth_call, ...) at a block more than this "
        "many blocks behind the head goes to the providers marked `archive` only, while one of "
        "them is usable (a full node answers such reads with 'missing trie node').",
    )
    logs_max_block_range: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Hard maximum of the block range of one eth_getLogs/trace_filter request; "
        "a longer one is refused with -32602. Unset: no maximum.",
        examples=[100000],
    )
    logs_split_concurrency: Annotated[int, Field(ge=1, le=64)] = Field(
        default=4,
        description="Pieces of a split eth_getLogs/trace_filter request sent at once. Requests "
        "are split when longer than every provider's `logs_max_block_range`, and in halves when "
        "every provider refused a range as too large or too many results.",
    )
