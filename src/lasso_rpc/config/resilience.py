"""The resilience blocks of ``routing``: hedging and its budget, the breaker, outlier ejection.

Each block is a frozen model whose fields carry their ``description`` (docs/config.md is made
from them). ``config.models`` re-exports them; they live here so that the routing model stays
short.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lasso_rpc.config.base import Frozen

__all__ = ["BreakerConfig", "EjectionConfig", "HedgeConfig"]


class HedgeConfig(Frozen):
    """Hedging: a slow read is sent to a second provider too; the first answer wins.

    The delay is the largest of three: the provider's own tail for the method (``after``), a
    multiple of its median (``median_factor``) and ``min_delay_ms``, so a tight latency spread
    does not hedge on loop jitter. A budget caps what hedging may cost: each read deposits
    ``budget_percent`` % of a hedge, each hedge withdraws one, deposits expire after
    ``budget_window_ms``, and ``min_per_second`` hedges stay allowed at low traffic (the retry
    budget of Finagle).
    """

    enabled: bool = Field(default=True, description="Hedge reads. Writes are never hedged.")
    after: Literal["p50", "p75", "p90", "p95", "p99"] | Annotated[int, Field(ge=1)] = Field(
        default="p95",
        description="When to send the extra copy: a percentile of the provider's observed "
        "latency for the method (500 ms until it has data), or a fixed delay in ms.",
        examples=[250],
    )
    max_extra: Annotated[int, Field(ge=0, le=3)] = Field(
        default=1, description="Extra copies per request at most (0: no hedging)."
    )
    min_delay_ms: Annotated[int, Field(ge=0)] = Field(
        default=20, description="Lower bound of a percentile-based hedge delay, in ms."
    )
    median_factor: Annotated[float, Field(ge=1.0, le=100.0)] = Field(
        default=1.5,
        description="Lower bound of a percentile-based hedge delay as a multiple of the "
        "provider's median latency for the method (1.5: hedge only calls 50 % slower than "
        "usual).",
    )
    budget_percent: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        default=5.0,
        description="Hedges per chain at most, as a percentage of its reads (over "
        "budget_window_ms, plus min_per_second). Over budget a late call waits for its "
        "first attempt; lasso_hedge_budget_exhausted_total counts those.",
    )
    min_per_second: Annotated[float, Field(ge=0.0)] = Field(
        default=1.0,
        description="Hedges per second allowed whatever the traffic, so a quiet chain can "
        "still hedge.",
    )
    budget_window_ms: Annotated[int, Field(ge=1000, le=600_000)] = Field(
        default=10_000,
        description="How long a read's deposit (and a hedge's withdrawal) counts in the budget.",
    )


class BreakerConfig(Frozen):
    """Circuit breaker per provider: open after faults in a row, probe, close on answers."""

    failure_threshold: Annotated[int, Field(ge=1)] = Field(
        default=5,
        description="Provider faults in a row (5xx, timeouts, internal errors) that open it.",
    )
    rate_limit_threshold: Annotated[int, Field(ge=1)] = Field(
        default=3, description="Rate-limit answers in a row (HTTP 429, -32005) that open it."
    )
    recovery_ms: Annotated[int, Field(ge=1)] = Field(
        default=1_000,
        description="Wait before an open breaker lets probes through (half-open); "
        "doubles with every re-open since it last closed, so a short burst of errors costs "
        "seconds and a provider that stays down is probed less and less often.",
    )
    max_recovery_ms: Annotated[int, Field(ge=1)] = Field(
        default=60_000, description="Cap of the growing recovery wait, in ms."
    )
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.2,
        description="Random spread of the recovery wait (0.2: ±20%), so breakers opened "
        "together do not probe together.",
    )
    half_open_successes: Annotated[int, Field(ge=1)] = Field(
        default=2, description="Answered probes that close a half-open breaker."
    )
    half_open_max_in_flight: Annotated[int, Field(ge=1)] = Field(
        default=1, description="Probes let through at once while half-open."
    )


class EjectionConfig(Frozen):
    """Outlier ejection: a provider much slower or more failing than usual is left out.

    Next to the breaker (faults in a row): attempts that were slow (lost the race to a hedge
    sent later, timed out, or answered far slower than the other providers) eject after
    ``consecutive_slow`` in a row; faults and slow attempts together eject past
    ``failure_rate`` over ``window_ms``. An ejected provider gets no traffic until its
    ejection ends and its head poll answers (a failed poll ejects it again, for twice as
    long). The last usable provider is never ejected, and panic mode still uses ejected
    providers when nothing else is left.
    """

    enabled: bool = Field(default=True, description="Eject outliers.")
    consecutive_slow: Annotated[int, Field(ge=1)] = Field(
        default=5,
        description="Slow attempts in a row that eject: lost to a hedge sent later, timed "
        "out, or slower than latency_factor x the other providers.",
    )
    failure_rate: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.5,
        description="Share of faults and slow attempts over window_ms that ejects.",
    )
    window_ms: Annotated[int, Field(ge=100, le=600_000)] = Field(
        default=10_000, description="Sliding window of failure_rate, in ms."
    )
    min_requests: Annotated[int, Field(ge=1)] = Field(
        default=20, description="Attempts within window_ms needed before failure_rate applies."
    )
    latency_factor: Annotated[float, Field(ge=1.0)] = Field(
        default=3.0,
        description="An answer slower than this multiple of the median of the other "
        "providers' latency for the method counts as slow.",
    )
    latency_margin_ms: Annotated[float, Field(ge=0.0)] = Field(
        default=100.0,
        description="... and slower than that median by at least this much, in ms.",
    )
    base_ms: Annotated[int, Field(ge=1)] = Field(
        default=5_000,
        description="First ejection's length; doubles with each ejection in a row.",
    )
    max_ms: Annotated[int, Field(ge=1)] = Field(
        default=120_000,
        description="Longest ejection; a provider back for this long starts again at base_ms.",
    )
    max_ejected_percent: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        default=50.0,
        description="Share of a chain's providers ejected at once at most (at least one).",
    )
