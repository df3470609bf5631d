"""Frozen configuration models (SPEC §2). Validation errors carry their key paths."""

from __future__ import annotations

import fnmatch
import functools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "STRATEGIES",
    "BreakerConfig",
    "ChainConfig",
    "ClientRateLimit",
    "Config",
    "ControlConfig",
    "HedgeConfig",
    "MethodsConfig",
    "ProfileConfig",
    "ProviderConfig",
    "RoutingConfig",
    "ServerConfig",
    "Strategy",
    "canonical_strategy",
]

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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HedgeConfig(_Frozen):
    enabled: bool = True
    #: "p50".."p99" of the provider's observed latency for the method, or a fixed delay in ms.
    after: Annotated[str, Field(pattern=r"^p(50|75|90|95|99)$")] | Annotated[int, Field(ge=1)] = (
        "p90"
    )
    max_extra: Annotated[int, Field(ge=0, le=3)] = 1
    min_delay_ms: Annotated[int, Field(ge=0)] = 20


class BreakerConfig(_Frozen):
    failure_threshold: Annotated[int, Field(ge=1)] = 5
    rate_limit_threshold: Annotated[int, Field(ge=1)] = 3
    recovery_ms: Annotated[int, Field(ge=1)] = 30_000
    max_recovery_ms: Annotated[int, Field(ge=1)] = 300_000
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    half_open_successes: Annotated[int, Field(ge=1)] = 2
    half_open_max_in_flight: Annotated[int, Field(ge=1)] = 1


class RoutingConfig(_Frozen):
    default_strategy: Strategy = "load-balanced"
    request_timeout_ms: Annotated[int, Field(ge=1)] = 10_000
    #: Upper bound of a single attempt; the observed latency usually sets a lower one.
    attempt_timeout_ms: Annotated[int, Field(ge=1)] | None = None
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    hedge: HedgeConfig = HedgeConfig()
    breaker: BreakerConfig = BreakerConfig()
    max_lag_blocks: Annotated[int, Field(ge=0)] = 8
    max_batch_size: Annotated[int, Field(ge=1)] = 50
    max_body_bytes: Annotated[int, Field(ge=256)] = 5 * 1024 * 1024
    max_response_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    head_poll_ms: Annotated[int, Field(ge=50)] = 2_000

    @field_validator("default_strategy", mode="before")
    @classmethod
    def _alias(cls, v: object) -> object:
        return STRATEGIES.get(v, v) if isinstance(v, str) else v


class MethodsConfig(_Frozen):
    """Capability hints: glob patterns such as ``trace_*``."""

    allow: list[str] | None = None
    deny: list[str] = []

    def permits(self, method: str) -> bool:
        # Asked on every request for every provider: memoised per (patterns, method).
        allow = None if self.allow is None else tuple(self.allow)
        return _permits(tuple(self.deny), allow, method)


@functools.lru_cache(maxsize=8192)
def _permits(deny: tuple[str, ...], allow: tuple[str, ...] | None, method: str) -> bool:
    if any(fnmatch.fnmatchcase(method, p) for p in deny):
        return False
    return allow is None or any(fnmatch.fnmatchcase(method, p) for p in allow)


_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ProviderConfig(_Frozen):
    id: Annotated[str, Field(pattern=_ID)]
    name: str | None = None
    url: str
    ws_url: str | None = None
    priority: int = 100
    weight: Annotated[float, Field(gt=0)] = 1.0
    methods: MethodsConfig = MethodsConfig()
    timeout_ms: Annotated[int, Field(ge=1)] | None = None
    pool_size: Annotated[int, Field(ge=1, le=4096)] = 64
    headers: dict[str, str] = {}
    archive: bool = False
    #: Client-side cap so we never exceed a hosted plan; None = unlimited.
    rate_limit_rps: Annotated[float, Field(gt=0)] | None = None
    #: Per-provider classification overrides: JSON-RPC error code (as string) -> class.
    error_overrides: dict[
        str, Literal["client", "provider", "rate_limited", "capability", "lagging"]
    ] = {}

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


class ChainConfig(_Frozen):
    chain_id: Annotated[int, Field(ge=1)]
    aliases: list[str] = []
    block_time_ms: Annotated[int, Field(ge=1)] = 12_000
    providers: Annotated[list[ProviderConfig], Field(min_length=1)]
    #: Effective routing (profile defaults merged with the chain's own ``routing`` by the loader).
    routing: RoutingConfig = RoutingConfig()

    @model_validator(mode="after")
    def _unique_ids(self) -> ChainConfig:
        seen: set[str] = set()
        for p in self.providers:
            if p.id in seen:
                raise ValueError(f"duplicate provider id {p.id!r}")
            seen.add(p.id)
        return self


class ControlConfig(_Frozen):
    enabled: bool = False
    token: str | None = None
    #: The control API is served only to clients connecting from these hosts.
    allow_remote: bool = False

    @model_validator(mode="after")
    def _token_when_enabled(self) -> ControlConfig:
        if self.enabled and not self.token:
            raise ValueError("control.token is required when the control API is enabled")
        return self


class ClientRateLimit(_Frozen):
    """Per client address token bucket; over it a call gets -32005 (HTTP 429)."""

    requests_per_second: Annotated[float, Field(gt=0)]
    burst: Annotated[int, Field(ge=1)] = 100


class ServerConfig(_Frozen):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4000
    control: ControlConfig = ControlConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Advertised in ``data.websocket_url`` when a client asks for subscriptions over HTTP.
    public_ws_base: str | None = None
    rate_limit: ClientRateLimit | None = None
    #: "fast": POST /rpc/... through the lean HTTP/1.1 front (other requests go to aiohttp);
    #: "aiohttp": everything through aiohttp, about half the throughput (a fallback).
    front: Literal["fast", "aiohttp"] = "fast"


class ProfileConfig(_Frozen):
    name: str
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    routing: RoutingConfig = RoutingConfig()
    chains: dict[str, ChainConfig]

    @model_validator(mode="after")
    def _unique_names(self) -> ProfileConfig:
        names: dict[str, str] = {}
        for cname, chain in self.chains.items():
            for key in [cname, str(chain.chain_id), *chain.aliases]:
                if key in names and names[key] != cname:
                    raise ValueError(
                        f"chain name/alias/id {key!r} used by {names[key]!r} and {cname!r}"
                    )
                names[key] = cname
        return self


class Config(_Frozen):
    profiles: dict[str, ProfileConfig]
    default_profile: str
    server: ServerConfig = ServerConfig()
