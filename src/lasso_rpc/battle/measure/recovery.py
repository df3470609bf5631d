"""The recovery rule (``recovery_s``), per chaos event:


1. the *baseline* is every bucket that ends at or before the first chaos event; its error rate
   (errors / requests) and its p95 latency (one histogram over those buckets);
2. a bucket is *healthy* when it has requests, its error rate ≤ baseline error rate + 1 %
   (absolute) and its p95 ≤ max(1.5 x baseline p95, 1.2 x settled p95), where *settled* is the
   median p95 of the last 3 non-empty buckets before the next chaos event (or the end): a
   failover to a slower provider recovers to that provider's normal, not to the old baseline
   (latency is not checked when there is no baseline); buckets without requests are skipped —
   they neither break nor extend a streak;
3. scanning from the bucket holding the injection, the first run of 3 consecutive healthy
   buckets marks recovery: ``recovery_s`` = start of that run - injection time (≥ 0); ``None``
   when no such run exists before the end of the data. ``recovery_after_revert_s`` applies
   the same scan from the revert (``end_s``) of actions that have one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lasso_rpc.battle.measure.data import CollectedData
from lasso_rpc.battle.measure.histograms import merge_histograms, percentiles
from lasso_rpc.battle.records import ChaosRecord

__all__ = [
    "RECOVERY_ERROR_MARGIN",
    "RECOVERY_P95_FACTOR",
    "RECOVERY_STREAK",
    "RULE",
    "SETTLED_P95_FACTOR",
    "RecoveryRule",
]

RECOVERY_STREAK = 3
RECOVERY_ERROR_MARGIN = 0.01
RECOVERY_P95_FACTOR = 1.5
SETTLED_P95_FACTOR = 1.2

#: The rule in one line, for the report.
RULE = (
    f"first {RECOVERY_STREAK} consecutive non-empty buckets with error rate <= "
    f"baseline + {RECOVERY_ERROR_MARGIN:.0%} and p95 <= "
    f"max({RECOVERY_P95_FACTOR} x baseline p95, {SETTLED_P95_FACTOR} x settled p95)"
)


def _recovery_index(
    requests: Sequence[int],
    errors: Sequence[int],
    p95: Sequence[float | None],
    start: int,
    base_err: float,
    base_p95: float | None,
    settled_p95: float | None = None,
) -> int | None:
    """First bucket ≥ ``start`` opening a run of RECOVERY_STREAK healthy non-empty buckets."""
    max_err = base_err + RECOVERY_ERROR_MARGIN + 1e-12
    max_p95 = None if base_p95 is None else RECOVERY_P95_FACTOR * base_p95
    if max_p95 is not None and settled_p95 is not None:
        max_p95 = max(max_p95, SETTLED_P95_FACTOR * settled_p95)
    run_start, run = 0, 0
    for i in range(max(0, start), len(requests)):
        n = requests[i]
        if n == 0:
            continue
        q = p95[i]
        healthy = errors[i] / n <= max_err and (max_p95 is None or (q is not None and q <= max_p95))
        if not healthy:
            run = 0
            continue
        if run == 0:
            run_start = i
        run += 1
        if run == RECOVERY_STREAK:
            return run_start
    return None


def _settled_p95(requests: Sequence[int], p95: Sequence[float | None], stop: int) -> float | None:
    """Median p95 of the last RECOVERY_STREAK non-empty buckets before ``stop``."""
    tail: list[float] = []
    for i in range(min(stop, len(requests)) - 1, -1, -1):
        q = p95[i]
        if requests[i] and q is not None:
            tail.append(q)
            if len(tail) == RECOVERY_STREAK:
                break
    return sorted(tail)[len(tail) // 2] if tail else None


def _baseline(
    data: CollectedData, first_at: float, c_req: Sequence[int], c_err: Sequence[int]
) -> tuple[float, float | None]:
    """Error rate and p95 over the buckets that end at or before the first chaos event."""
    bs, cb = data.bucket_s, data.client_buckets
    base = [i for i in range(len(c_req)) if (i + 1) * bs <= first_at + 1e-9]
    base_req = sum(c_req[i] for i in base)
    if not base_req:
        return 0.0, None
    merged = merge_histograms(cb[i].latency_hist for i in base if i < len(cb))
    return sum(c_err[i] for i in base) / base_req, percentiles(merged, (95.0,))[0]


@dataclass(frozen=True, slots=True)
class RecoveryRule:
    """The rule applied to one run's client buckets (requests, errors and p95 per bucket)."""

    bucket_s: float
    requests: Sequence[int]
    errors: Sequence[int]
    p95: Sequence[float | None]
    base_err: float
    base_p95: float | None
    starts: Sequence[float]  # every injection and revert time: where a settled p95 ends

    @classmethod
    def for_run(
        cls,
        data: CollectedData,
        chaos: Sequence[ChaosRecord],
        requests: Sequence[int],
        errors: Sequence[int],
        p95: Sequence[float | None],
    ) -> RecoveryRule:
        """The baseline is every bucket before the first of ``chaos`` (which is not empty)."""
        base_err, base_p95 = _baseline(data, min(c.at_s for c in chaos), requests, errors)
        starts = sorted({c.at_s for c in chaos} | {c.end_s for c in chaos if c.end_s is not None})
        return cls(data.bucket_s, requests, errors, p95, base_err, base_p95, starts)

    def after(self, at: float) -> float | None:
        """Seconds from ``at`` until recovery; None when it never came."""
        bs = self.bucket_s
        later = [t for t in self.starts if t > at]
        stop = math.floor(later[0] / bs) if later else len(self.requests)
        settled = _settled_p95(self.requests, self.p95, stop)
        idx = _recovery_index(
            self.requests,
            self.errors,
            self.p95,
            math.floor(at / bs),
            self.base_err,
            self.base_p95,
            settled,
        )
        return None if idx is None else max(0.0, idx * bs - at)
