"""Routing: passive per-method benchmarks and the strategies that rank providers with them."""

from lasso_rpc.routing.stats import LatencyStats, ProviderStats
from lasso_rpc.routing.strategies import (
    Candidate,
    Decision,
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
