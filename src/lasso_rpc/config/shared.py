"""The process-wide ``state:`` and ``access:`` blocks (SPEC §8): shared state, API keys, limits.

``state`` says where the state that several router processes share lives: ``memory`` (one
process, or the workers of one ``serve --workers N`` through their parent) or ``redis`` (nodes
on several hosts). ``access`` turns on API keys and client rate limits; off when absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, model_validator

from lasso_rpc.config.base import Frozen
from lasso_rpc.config.describe import Expect

__all__ = [
    "AccessConfig",
    "ApiKeyConfig",
    "MethodLimitConfig",
    "QUOTA_PERIODS",
    "QuotaConfig",
    "RateLimitConfig",
    "StateConfig",
    "access_profile_errors",
]

_REDIS_URL = re.compile(r"^(rediss?://[^\s]+|unix://\S+)$")


class StateConfig(Frozen):
    """Where the state shared by router processes lives (breakers, cordons, control actions,
    rate-limit counters). Redis unreachable or slow: every node goes on with its local state."""

    backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="memory: this process (and the workers of serve --workers N, through "
        "their parent); redis: every node using the same url and prefix.",
        examples=["redis"],
    )
    url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:port/db, rediss://..., unix:///path/redis.sock); "
        "required with backend redis. A password in it is masked wherever it surfaces.",
        examples=["redis://10.0.0.7:6379/0"],
    )
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        default="lasso",
        description="Prefix of every Redis key and channel: routers with the same prefix "
        "share state, others on the same Redis do not.",
    )
    timeout_ms: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=25,
        description="Upper bound of one Redis operation; past it the request goes on with "
        "local state (the extra latency Redis can add to a request).",
    )
    failure_threshold: Annotated[int, Field(ge=1)] = Field(
        default=3,
        description="Failed or timed-out Redis operations in a row that stop using Redis "
        "(local state only) until a probe answers.",
    )
    retry_ms: Annotated[int, Field(ge=10)] = Field(
        default=500, description="Interval of the probe while Redis is considered down."
    )
    sync_interval_ms: Annotated[int, Field(ge=100)] = Field(
        default=1_000,
        description="Full reconciliation with the shared state (besides the changes pushed "
        "as they happen): a change missed while disconnected arrives within this time.",
    )

    @model_validator(mode="after")
    def _url_for_redis(self) -> StateConfig:
        if self.backend == "redis":
            if not self.url:
                raise ValueError("url is required when backend is redis")
            if not _REDIS_URL.match(self.url):
                raise ValueError("url must start with redis://, rediss:// or unix://")
        return self


class RateLimitConfig(Frozen):
    """A token bucket: ``rps`` tokens a second, at most ``burst`` saved up; a call takes one."""

    rps: Annotated[float, Field(gt=0)] = Field(
        description="Sustained calls per second (a batch item counts as a call).", examples=[50]
    )
    burst: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Calls at once after a quiet time (default: rps, at least 1).",
        examples=[100],
    )

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, int(self.rps + 0.999))


QUOTA_PERIODS = {"minute": 60, "hour": 3_600, "day": 86_400}


class QuotaConfig(Frozen):
    """A quota: at most ``requests`` calls per period; the period starts at a multiple of its
    length since the Unix epoch (a day starts at 00:00 UTC)."""

    requests: Annotated[int, Field(ge=1)] = Field(
        description="Calls allowed in one period.", examples=[100_000]
    )
    period: Literal["minute", "hour", "day"] | Annotated[int, Field(ge=1)] = Field(
        default="day", description="minute, hour, day, or a length in seconds."
    )

    @property
    def period_s(self) -> int:
        return QUOTA_PERIODS[self.period] if isinstance(self.period, str) else self.period


class MethodLimitConfig(Frozen):
    """A limit on the calls whose method matches one of the globs (on top of the others)."""

    methods: Annotated[list[str], Field(min_length=1)] = Field(
        description="Method globs (eth_getLogs, trace_*).", examples=[["eth_getLogs", "trace_*"]]
    )
    rate_limit: RateLimitConfig | None = Field(
        default=None, description="Token bucket of these calls.", examples=[{"rps": 5}]
    )
    quota: QuotaConfig | None = Field(default=None, description="Quota of these calls.")


class ApiKeyConfig(Frozen):
    """A client API key: sent as X-Lasso-Key, Authorization: Bearer, or /rpc/key/<key>/..."""

    key: Annotated[str, Field(min_length=8), Expect("a string of at least 8 characters")] = Field(
        description="The secret; prefer ${ENV}. Compared in constant time, never logged, "
        "shown in metrics as its name.",
        examples=["${ACME_KEY}"],
    )
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] | None = Field(
        default=None,
        description="Label in metrics and logs (default: key- and 8 hex digits of its SHA-256).",
        examples=["acme"],
    )
    profile: str | None = Field(
        default=None,
        description="Slug of the profile serving this key (/rpc/<chain> means that profile's "
        "chain; another profile in the path is refused); unset: every profile.",
        examples=["default"],
    )
    rate_limit: RateLimitConfig | None = Field(
        default=None, description="Token bucket of this key.", examples=[{"rps": 50, "burst": 100}]
    )
    quota: QuotaConfig | None = Field(default=None, description="Quota of this key.")
    methods: list[MethodLimitConfig] = Field(
        default=[], description="Limits per method glob, on top of the key's own."
    )

    @model_validator(mode="after")
    def _rules_limit(self) -> ApiKeyConfig:
        for i, rule in enumerate(self.methods):
            if rule.rate_limit is None and rule.quota is None:
                raise ValueError(f"methods[{i}]: give rate_limit, quota or both")
        return self


class AccessConfig(Frozen):
    """API keys and client rate limits. Over a limit: HTTP 429, Retry-After, error -32005.
    Without a valid key (when keys are required): HTTP 401, error -32006."""

    keys: list[ApiKeyConfig] = Field(default=[], description="Client API keys.")
    per_ip: RateLimitConfig | None = Field(
        default=None,
        description="Token bucket per client address, for calls without a key.",
        examples=[{"rps": 20, "burst": 40}],
    )
    anonymous: bool | None = Field(
        default=None,
        description="Serve calls without a key (then per_ip applies); default: only when "
        "no key is configured.",
        examples=[True],
    )
    redis_keys: bool = Field(
        default=False,
        description="Also accept keys stored in Redis (state.backend redis) in the hash "
        "<prefix>:keys, field = SHA-256 hex of the key, value = a key block as JSON "
        "without key (lasso-rpc keys add writes one).",
    )
    on_state_down: Literal["open", "local", "closed"] = Field(
        default="open",
        description="Rate limits while the shared state (Redis) is unreachable: open lets "
        "calls through, local enforces them per node, closed refuses them (429).",
    )

    @property
    def allows_anonymous(self) -> bool:
        return self.anonymous if self.anonymous is not None else not (self.keys or self.redis_keys)

    @model_validator(mode="after")
    def _unique(self) -> AccessConfig:
        keys: set[str] = set()
        names: set[str] = set()
        for i, k in enumerate(self.keys):
            if k.key in keys:
                raise ValueError(f"keys[{i}]: the same key is given twice")
            keys.add(k.key)
            if k.name is not None:
                if k.name in names:
                    raise ValueError(f"keys[{i}]: duplicate name {k.name!r}")
                names.add(k.name)
        return self


def access_profile_errors(
    access: AccessConfig, profiles: Mapping[str, object], state: StateConfig | None = None
) -> list[str]:
    """Rules across blocks, checked once every file is read: a key naming a profile that no
    file defines; keys in Redis without a Redis."""
    errors = [
        f"access.keys[{i}].profile: unknown profile {k.profile!r}; known: "
        + ", ".join(sorted(profiles))
        for i, k in enumerate(access.keys)
        if k.profile is not None and k.profile not in profiles
    ]
    if access.redis_keys and (state is None or state.backend != "redis"):
        errors.append("access.redis_keys: needs state.backend redis")
    return errors
