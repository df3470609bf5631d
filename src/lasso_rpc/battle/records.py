"""The values that flow between the battle parts: workload → records, chaos → timeline,
router telemetry → collector → analyzer → report. All times are seconds since scenario start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ChaosRecord", "RequestRecord", "SubscriptionRecord", "SystemSample"]

Outcome = Literal["ok", "client_error", "error"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One workload request as the client saw it.

    ``latency_ms`` runs from the *intended* send time (open loop: a stalled router cannot hide
    its stall by delaying the sends); ``service_ms`` from the actual send.
    """

    method: str
    transport: str  # "http" | "ws"
    intended_s: float
    start_s: float
    end_s: float
    outcome: Outcome
    error_class: str | None  # JSON-RPC error name/code or transport error class
    provider: str | None  # from include_meta
    attempts: int  # upstream attempts the router made (include_meta); 0 when unknown
    hedged: bool = False
    failover: bool = False  # an attempt failed and another provider was tried (include_meta)

    @property
    def latency_ms(self) -> float:
        return (self.end_s - self.intended_s) * 1000.0

    @property
    def service_ms(self) -> float:
        return (self.end_s - self.start_s) * 1000.0

    @property
    def ok(self) -> bool:
        """Answered: a result, or an upstream client error passed through (not a router fault)."""
        return self.outcome != "error"


@dataclass(frozen=True, slots=True)
class ChaosRecord:
    action: str  # "kill_provider", "flap_provider", ...
    target: str | None  # provider id, or None for fleet-wide actions
    at_s: float  # when it was injected
    end_s: float | None  # when it was reverted (None: never)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """What one WebSocket subscriber saw over the run."""

    client: int
    kind: str  # "newHeads" | "logs"
    events: int
    gaps: int  # missing block numbers
    duplicates: int
    reorgs: int
    connected_s: float  # time with a live subscription
    duration_s: float
    delivery_ms_p50: float | None = None
    delivery_ms_p99: float | None = None
    #: Against the chain's truth (``load.feed_truth``; None without one): blocks mined while
    #: subscribed, the longest wait of a mined block, how far behind at the end, and uptime
    #: from blocks arriving. ``gaps`` then counts expected blocks that never arrived, and
    #: ``gaps_in_stream`` the jumps between two deliveries.
    truth: str | None = None  # "chain" | "poll" | None
    expected_blocks: int | None = None
    gaps_in_stream: int | None = None
    max_stall_s: float | None = None
    behind_s: float | None = None
    uptime: float | None = None


@dataclass(frozen=True, slots=True)
class SystemSample:
    t_s: float
    rss_mb: float
    cpu_pct: float
