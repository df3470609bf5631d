"""``stats.summary``: what the dashboard needs from one router process, a few times a second.

Per-request events are too many to stream to a browser (each one would be serialised once per
open page); a summary is built once per tick and shared by every page. Counts are of the tick's
interval and additive, so summaries of several workers or nodes (``node``) add up.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from lasso_rpc.observability.events import Event

__all__ = [
    "ChainDigest",
    "DecisionDigest",
    "ProviderDigest",
    "StatsSummary",
    "SubscriptionDigest",
]


class ChainDigest(msgspec.Struct, frozen=True, kw_only=True):
    profile: str
    chain: str
    head: int | None
    ready: bool
    requests: int  # client calls answered in the interval
    errors: int  # of which failed (status "error")
    failovers: int
    hedged: int  # calls that sent a hedge
    #: Of the interval's calls, interpolated within the request-latency histogram's buckets.
    p50_ms: float | None
    p95_ms: float | None
    #: Calls served from the cache, sent upstream by it, never cacheable (the
    #: ``lasso_cache_*`` counters of the interval); empty for a profile without a cache.
    cache: dict[str, int] = msgspec.field(default_factory=dict)


class ProviderDigest(msgspec.Struct, frozen=True, kw_only=True):
    profile: str
    chain: str
    provider: str
    breaker: str
    cordoned: bool
    usable: bool
    health: str
    head: int | None
    lag: int | None
    in_flight: int
    attempts: int  # upstream attempts in the interval (hedges included)
    failures: int  # attempts that were a provider fault
    answered: int  # requests whose answer came from this provider
    hedges: int  # of the attempts, hedges (extra copies sent because the first was late)


class DecisionDigest(msgspec.Struct, frozen=True, kw_only=True):
    """One routing decision: each interval's last call, and every failover and failed call (the
    newest 24 of an interval)."""

    ts: float
    request_id: str
    profile: str
    chain: str
    method: str
    strategy: str
    provider: str | None
    status: str
    latency_ms: float
    failover: bool
    hedged: bool
    attempts: tuple[tuple[str, str, float], ...]  # (provider, outcome, ms)
    explanation: str | None


class SubscriptionDigest(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    chain: str
    provider: str | None
    state: str
    clients: int
    last_number: int | None
    delivered: int
    backfilled: int
    gaps: int
    reorgs: int
    failovers: int


class StatsSummary(Event, frozen=True, kw_only=True):
    kind: ClassVar[str] = "stats.summary"
    periodic: ClassVar[bool] = True
    node: str  # host:pid of the process that counted
    interval_s: float
    chains: tuple[ChainDigest, ...]
    providers: tuple[ProviderDigest, ...]
    decisions: tuple[DecisionDigest, ...]
    subscriptions: tuple[SubscriptionDigest, ...] = ()
