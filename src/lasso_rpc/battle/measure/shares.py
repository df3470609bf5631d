"""A chaos target's share of the router's upstream traffic once the router had time to react.

For each chaos event aimed at one provider, the share of upstream attempts (hedges and
failovers included) and of first attempts that still went to that provider, over the router's
buckets that start at least ``SETTLE_S`` after the event and end by its revert (or the end of
the run). A router that keeps sending to a hung provider shows it here, even when every one of
those attempts lost its race and no client noticed (``max_chaos_target_share`` in
``measure/slo.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lasso_rpc.battle.measure.data import RouterBucket

__all__ = ["SETTLE_S", "target_shares"]

#: Seconds after a chaos event that the router is given before its traffic is judged.
SETTLE_S = 2.0


def target_shares(
    buckets: Sequence[RouterBucket],
    bucket_s: float,
    target: str,
    at_s: float,
    end_s: float | None,
) -> tuple[float | None, float | None]:
    """(share of attempts, share of first attempts) to ``target``; None: no traffic judged."""
    first_i = math.ceil((at_s + SETTLE_S) / bucket_s - 1e-9)
    last_i = len(buckets) if end_s is None else math.floor(end_s / bucket_s + 1e-9)
    tried = to_target = firsts = firsts_target = 0
    for b in buckets[first_i:last_i]:
        for prov, outcomes in b.attempts.items():
            n = sum(outcomes.values())
            tried += n
            if prov == target:
                to_target += n
        firsts += sum(b.first.values())
        firsts_target += b.first.get(target, 0)
    return (
        to_target / tried if tried else None,
        firsts_target / firsts if firsts else None,
    )
