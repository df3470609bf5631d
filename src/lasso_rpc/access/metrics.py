"""``lasso_access_*`` metrics: calls by client and outcome, refusals by limit, fallbacks.

Clients are shown by name (``acme``, ``key-1a2b3c4d``, ``anonymous``, ``unknown`` for keys
that matched nothing): never a key, never a client address.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from lasso_rpc.access.gate import AccessGate

__all__ = ["AccessCollector"]


class AccessCollector:
    def __init__(self, gate: AccessGate) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Metric]:
        g = self._gate
        calls = CounterMetricFamily(
            "lasso_access_requests",
            "Requests checked by access control, by client and outcome "
            "(allowed, limited, unauthorized, forbidden)",
            labels=["client", "outcome"],
        )
        for (client, outcome), n in list(g.counts.items()):
            calls.add_metric([client, outcome], n)
        yield calls
        limited = CounterMetricFamily(
            "lasso_access_limited",
            "Requests refused with 429, by client and the limit that refused them",
            labels=["client", "limit"],
        )
        for (client, which), n in list(g.limited.items()):
            limited.add_metric([client, which], n)
        yield limited
        fallbacks = CounterMetricFamily(
            "lasso_access_fallbacks",
            "Limit checks the shared store could not answer, by what was done instead "
            "(access.on_state_down)",
            labels=["store", "mode"],
        )
        for mode, n in list(g.fallbacks.items()):
            fallbacks.add_metric([g.store.kind, mode], n)
        yield fallbacks
