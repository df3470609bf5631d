"""Frozen configuration models (SPEC §2), one per YAML block.

Every field carries a ``description`` (and, when its default does not show a typical value, an
``examples`` entry): ``lasso_rpc.config.reference`` prints them as docs/config.md and a test fails
when the two differ. A new key is one field with a description here; nothing else to edit.
Validators that compare several entries (duplicate ids, names) are also run by the loader on the
raw YAML, so they are reported even when other keys are invalid; here they guard direct use.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from lasso_rpc.config.base import Frozen
from lasso_rpc.config.dashboard import DashboardConfig
from lasso_rpc.config.describe import Expect
from lasso_rpc.config.resilience import BreakerConfig, EjectionConfig, HedgeConfig
from lasso_rpc.config.server import ClientRateLimit, ControlConfig, ServerConfig
from lasso_rpc.config.shaping import CacheConfig, CachePolicy, ShapingConfig
from lasso_rpc.config.shared import AccessConfig, StateConfig

__all__ = [
    "AccessConfig",
    "LOADER_CHECKS",
    "STRATEGIES",
    "BreakerConfig",
    "CacheConfig",
    "CachePolicy",
    "ChainConfig",
    "ClientRateLimit",
    "Config",
    "ControlConfig",
    "DashboardConfig",
    "EjectionConfig",
    "HedgeConfig",
    "MethodsConfig",
    "ProfileConfig",
    "ProfileFile",
    "ProviderConfig",
    "RoutingConfig",
    "ServerConfig",
    "StateConfig",
    "ShapingConfig",
    "Strategy",
    "canonical_strategy",
]

#: Validation context flag: the loader has checked cross-entry rules on the raw document.
LOADER_CHECKS = "lasso_loader_checks"

Strategy = Literal["fastest", "load-balanced", "latency-weighted", "priority"]
STRATEGIES: dict[str, Strategy] = {
    "fastest": "fastest",
    "load-balanced": "load-balanced",
    "round-robin": "load-balanced",
    "latency-weighted": "latency-weighted",
    "priority": "priority",
}


def canonical_strategy(name: str) -> Strategy | None:
    return STRATEGIES.get(name)


def _loader_checked(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(LOADER_CHECKS))


_STRATEGY_TEXT = Expect(
    "one of fastest, load-balanced (alias round-robin), latency-weighted, priority",
    choices=tuple(STRATEGIES),
)


class RoutingConfig(Frozen):
    """How requests are routed, retried and hedged. Any key may be set per chain."""

    default_strategy: Annotated[Strategy, _STRATEGY_TEXT] = Field(
        default="latency-weighted",
        description="Strategy of /rpc/<chain>; a strategy in the path (/rpc/fastest/<chain>) "
        "wins. fastest: lowest latency for the method; load-balanced: spread by weight; "
        "latency-weighted: random, favouring low latency (P ~ 1/latency², at least 1 % each: "
        "near the fastest provider's median while every provider keeps some traffic); "
        "priority: lowest priority first.",
        examples=["fastest"],
    )
    request_timeout_ms: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="Deadline of a client request across every attempt and hedge (then -32003).",
    )
    attempt_timeout_ms: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Upper bound of one upstream attempt (a provider's timeout_ms wins); "
        "unset: the request deadline. Also capped at 4x the provider's p99 (at least 1 s).",
        examples=[3000],
    )
    max_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        default=3,
        description="Upstream sends per read, hedges included (a failed attempt fails over "
        "to the next provider). Writes are sent once.",
    )
    hedge: HedgeConfig = Field(default=HedgeConfig(), description="Hedging of slow reads.")
    breaker: BreakerConfig = Field(
        default=BreakerConfig(), description="Circuit breaker per provider."
    )
    ejection: EjectionConfig = Field(
        default=EjectionConfig(), description="Outlier ejection of slow or failing providers."
    )
    max_lag_blocks: Annotated[int, Field(ge=0)] = Field(
        default=8,
        description="A provider further behind the best head is skipped for methods that "
        "depend on the head (and for subscriptions).",
    )
    max_batch_size: Annotated[int, Field(ge=1)] = Field(
        default=50, description="Calls in one JSON-RPC batch at most (HTTP and WebSocket)."
    )
    max_body_bytes: Annotated[int, Field(ge=256)] = Field(
        default=5 * 1024 * 1024, description="Largest client request body (then HTTP 413, -32004)."
    )
    max_response_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=64 * 1024 * 1024,
        description="Largest upstream answer read; a larger one is an error for that provider.",
    )
    head_poll_ms: Annotated[int, Field(ge=50)] = Field(
        default=2_000,
        description="Interval of the eth_blockNumber health poll of every provider (head, "
        "lag, breaker probes).",
    )
    shaping: ShapingConfig = Field(
        default=ShapingConfig(),
        description="In-flight dedup, eth_getLogs splitting, monotonic eth_blockNumber.",
    )

    @field_validator("default_strategy", mode="before")
    @classmethod
    def _alias(cls, v: object) -> object:
        return STRATEGIES.get(v, v) if isinstance(v, str) else v


class MethodsConfig(Frozen):
    """Capability hints: which methods a provider serves, as glob patterns (``trace_*``)."""

    allow: list[str] | None = Field(
        default=None,
        description="Only these methods are sent to the provider; unset: every method.",
        examples=[["eth_*", "net_version"]],
    )
    deny: list[str] = Field(
        default=[],
        description="Never sent to the provider (wins over allow).",
        examples=[["trace_*"]],
    )

    def permits(self, method: str) -> bool:
        # Asked on every request for every provider: memoised per (patterns, method).
        allow = None if self.allow is None else tuple(self.allow)
        return _permits(tuple(self.deny), allow, method)


@functools.lru_cache(maxsize=8192)
def _permits(deny: tuple[str, ...], allow: tuple[str, ...] | None, method: str) -> bool:
    if any(fnmatch.fnmatchcase(method, p) for p in deny):
        return False
    return allow is None or any(fnmatch.fnmatchcase(method, p) for p in allow)


_ID = Expect("a name of letters, digits, '_', '.' and '-', starting with a letter or digit")
_ERROR_CLASS = Literal["client", "provider", "rate_limited", "capability", "lagging"]
_OVERRIDE_KEY = re.compile(r"^(-?\d+|msg:.+)$")


class ProviderConfig(Frozen):
    """One upstream endpoint of a chain."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"), _ID] = Field(
        description="Unique within the chain; used in /rpc/provider/<id>/<chain>, metrics "
        "and logs.",
        examples=["alpha"],
    )
    name: str | None = Field(
        default=None, description="Display name (default: the id).", examples=["Alchemy"]
    )
    url: str = Field(
        description="HTTP(S) JSON-RPC endpoint. API keys in it are masked wherever it "
        "surfaces; prefer ${ENV} for them.",
        examples=["https://eth-mainnet.example/v2/${ALPHA_KEY}"],
    )
    ws_url: str | None = Field(
        default=None,
        description="WebSocket endpoint; only providers with one serve subscriptions.",
        examples=["wss://eth-mainnet.example/ws/${ALPHA_KEY}"],
    )
    priority: int = Field(
        default=100,
        description="Order for the priority strategy (lower first); a tie-breaker elsewhere.",
    )
    weight: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="Share of traffic under load-balanced and latency-weighted."
    )
    methods: MethodsConfig = Field(default=MethodsConfig(), description="Methods it serves.")
    timeout_ms: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Upper bound of one attempt to this provider (overrides "
        "routing.attempt_timeout_ms).",
        examples=[5000],
    )
    pool_size: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=64, description="Keep-alive HTTP connections to it at most."
    )
    headers: dict[str, str] = Field(
        default={},
        description="Extra headers on every HTTP request and WebSocket handshake to it.",
        examples=[{"Authorization": "Bearer ${BETA_TOKEN}"}],
    )
    logs_max_block_range: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Longest eth_getLogs/trace_filter block range this provider accepts (its "
        "plan's limit). Longer requests go to a provider that takes them whole, or are split "
        "into pieces every provider accepts. Unset: no limit known (a refusal still splits).",
        examples=[2000],
    )
    archive: bool = Field(
        default=False,
        description="An archive node: state reads of old blocks "
        "(routing.shaping.archive_after_blocks) go to archive providers only while one is "
        "usable.",
    )
    rate_limit_rps: Annotated[float, Field(gt=0)] | None = Field(
        default=None,
        description="The plan's request rate, enforced by the router (a token bucket): a "
        "call that would exceed it goes to another provider instead, and when every "
        "provider is at its rate the call gets -32005 (HTTP 429). Head polls count too.",
        examples=[25],
    )
    rate_limit_burst: Annotated[float, Field(ge=1)] | None = Field(
        default=None,
        description="Calls that may be sent at once above rate_limit_rps; unset: one "
        "second's worth (at least 1).",
        examples=[50],
    )
    error_overrides: dict[str, _ERROR_CLASS] = Field(
        default={},
        description="Reclassify this provider's errors: key a JSON-RPC error code or "
        "msg:<text> (case-insensitive substring); client errors are not failed over.",
        examples=[{"-32000": "client", "msg:capacity exceeded": "rate_limited"}],
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^wss?://[^/\s]+", v):
            raise ValueError("must be a ws:// or wss:// URL")
        return v

    @field_validator("error_overrides", mode="before")
    @classmethod
    def _override_keys(cls, v: object) -> object:
        if not isinstance(v, dict):
            return v
        bad = [k for k in v if not _OVERRIDE_KEY.match(str(k))]
        if bad:
            raise ValueError(f"key {bad[0]!r} must be a JSON-RPC error code (-32000) or msg:<text>")
        return {str(k): c for k, c in v.items()}  # YAML reads -32000 as a number


class ChainConfig(Frozen):
    """A chain and its providers."""

    chain_id: Annotated[int, Field(ge=1)] = Field(
        description="EIP-155 chain id; /rpc/<id> also reaches the chain.", examples=[1]
    )
    aliases: list[str] = Field(
        default=[], description="More names for /rpc/<alias>.", examples=[["eth", "mainnet"]]
    )
    block_time_ms: Annotated[int, Field(ge=1)] = Field(
        default=12_000,
        description="Expected time between blocks; a subscription with no new head for "
        "3x this (at least 3 s) moves to another provider.",
    )
    providers: Annotated[list[ProviderConfig], Field(min_length=1)] = Field(
        description="Its upstream endpoints, at least one.",
        examples=[[{"id": "alpha", "url": "https://eth-mainnet.example/v2/${ALPHA_KEY}"}]],
    )
    finality_depth: Annotated[int, Field(ge=1)] = Field(
        default=1024,
        description="Blocks behind the head taken as final when the providers do not answer "
        "the `finalized` block tag (the cache never re-checks a finalized answer).",
        examples=[64],
    )
    routing: RoutingConfig = Field(
        default=RoutingConfig(),
        description="Overrides of the profile's routing for this chain, key by key "
        "(nested blocks merge too).",
    )

    @model_validator(mode="after")
    def _unique_ids(self, info: ValidationInfo) -> ChainConfig:
        if _loader_checked(info):
            return self
        seen: set[str] = set()
        for p in self.providers:
            if p.id in seen:
                raise ValueError(f"duplicate provider id {p.id!r}")
            seen.add(p.id)
        return self


class ProfileConfig(Frozen):
    """A profile: a named set of chains with their providers and routing defaults."""

    name: str = Field(description="Display name.", examples=["Local"])
    slug: Annotated[
        str,
        Field(pattern=r"^[a-z0-9][a-z0-9_-]*$"),
        Expect("a slug of lowercase letters, digits, '_' and '-'"),
    ] = Field(
        description="Routing identity: /rpc/profile/<slug>/<chain>. Plain /rpc/<chain> is "
        "served by the profile with slug default, else by the first file's.",
        examples=["local"],
    )
    routing: RoutingConfig = Field(
        default=RoutingConfig(), description="Routing defaults for every chain of the profile."
    )
    cache: CacheConfig = Field(
        default=CacheConfig(),
        description="Response cache of the profile's chains (off by default).",
        examples=[{"enabled": True}],
    )
    chains: dict[str, ChainConfig] = Field(
        description="Chains by name (/rpc/<name>).",
        examples=[
            {
                "ethereum": {
                    "chain_id": 1,
                    "providers": [{"id": "alpha", "url": "http://10.0.0.5:8545"}],
                }
            }
        ],
    )

    @model_validator(mode="after")
    def _unique_names(self, info: ValidationInfo) -> ProfileConfig:
        if _loader_checked(info):
            return self
        names: dict[str, str] = {}
        for cname, chain in self.chains.items():
            for key in [cname, str(chain.chain_id), *chain.aliases]:
                if key in names and names[key] != cname:
                    raise ValueError(
                        f"chain name/alias/id {key!r} used by {names[key]!r} and {cname!r}"
                    )
                names[key] = cname
        return self


class ProfileFile(ProfileConfig):
    """One YAML file: a profile, plus process-wide blocks (in at most one file)."""

    server: ServerConfig | None = Field(
        default=None,
        description="Listen address, control API, logs. In at most one file; read at start "
        "(a reload does not apply it).",
        examples=[{"port": 4000}],
    )
    state: StateConfig | None = Field(
        default=None,
        description="Where state shared by router processes lives (memory or redis). In at "
        "most one file; read at start.",
        examples=[{"backend": "redis", "url": "redis://10.0.0.7:6379/0"}],
    )
    access: AccessConfig | None = Field(
        default=None,
        description="API keys and client rate limits; off when absent. In at most one file; "
        "read at start.",
        examples=[{"keys": [{"key": "${ACME_KEY}", "rate_limit": {"rps": 50}}]}],
    )
    dashboard: DashboardConfig | None = Field(
        default=None,
        description="The live page at /dashboard. In at most one file; read at start.",
        examples=[{"enabled": True}],
    )


class Config(Frozen):
    profiles: dict[str, ProfileConfig]
    default_profile: str
    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()
    access: AccessConfig | None = None
    dashboard: DashboardConfig = DashboardConfig()
