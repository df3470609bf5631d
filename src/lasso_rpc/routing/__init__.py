"""Routing: who gets a call. No I/O here; time comes in as ``now_ms``.

- ``request.py``: ``RouteRequest``, what a caller asks (strategy, pin, failover, transport).
- ``candidates.py``: the filters (cordon, method, breaker, rate-limit back-off, lag), panic
  mode and ``SkipReason``; then the strategy ranks what is left.
- ``strategies.py``: the ``RoutingStrategy`` protocol and the four strategies.
- ``decision.py``: ``Decision``, the answer and its lazy explanation.
- ``stats.py`` / ``latency.py``: passive per-method latency and success benchmarks the
  strategies read (per provider / per key).
"""

from lasso_rpc.routing.decision import Decision
from lasso_rpc.routing.latency import LatencyStats
from lasso_rpc.routing.stats import ProviderStats
from lasso_rpc.routing.strategies import (
    Candidate,
    Fastest,
    LatencyWeighted,
    LoadBalanced,
    PriorityOrder,
    RoutingStrategy,
    make_strategy,
)

__all__ = [
    "Candidate",
    "Decision",
    "Fastest",
    "LatencyStats",
    "LatencyWeighted",
    "LoadBalanced",
    "PriorityOrder",
    "ProviderStats",
    "RoutingStrategy",
    "make_strategy",
]
