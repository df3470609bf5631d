"""Metrics of the shared state: is the backend reachable, what went through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from lasso_rpc.cluster.runtime import Cluster

__all__ = ["ClusterCollector"]


class ClusterCollector:
    """``lasso_state_*``: registered on the metrics registry when the server starts."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        sync = self._cluster.sync
        st = sync.status()
        labels = ["backend"]
        up = GaugeMetricFamily(
            "lasso_state_connected",
            "1 while the shared state backend is reachable (0: serving on local state)",
            labels=labels,
        )
        up.add_metric([st.backend], 1 if st.connected else 0)
        yield up
        for name, doc, value in (
            ("lasso_state_published", "State changes and commands sent", st.published),
            ("lasso_state_received", "Provider state changes and commands received", st.received),
            ("lasso_state_applied", "Received changes applied (newer)", sync.applied),
            ("lasso_state_errors", "Shared state operations that failed or timed out", st.errors),
            ("lasso_state_reconnects", "Times the shared state backend came back", st.reconnects),
        ):  # fmt: skip
            family = CounterMetricFamily(name, doc, labels=labels)
            family.add_metric([st.backend], value)
            yield family
