"""Reads that must show every worker of ``serve --workers N``, whichever worker answers.

``/metrics`` and ``/api/providers`` gather every worker's own view through the hub and merge
them (``merge.py``); ``/api/events`` is fed by every worker: while some worker has event
clients, each worker forwards its events (batched every ``flush_s``) to the hub, which passes
them to the workers that have clients. Each frame carries the ``worker`` that emitted it.

A worker whose hub is gone answers with its own view (the parent is stopping it anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily

from lasso_rpc.cluster.hub_link import HubLink, HubUnavailable
from lasso_rpc.cluster.merge import (
    merge_metrics,
    merge_providers,
    metrics_snapshot,
    render_metrics,
)
from lasso_rpc.observability.events import Event, EventBus, event_to_dict
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.router import Router
from lasso_rpc.server.ops import EventFeed, provider_rows

__all__ = ["ClusterEvents", "ClusterViews"]

_JSON = "application/json"
_SUMMARY = "stats.summary"


class ClusterViews:
    """aiohttp handlers for ``/metrics`` and ``/api/providers`` over every worker."""

    def __init__(self, link: HubLink, router: Router, metrics: PrometheusMetrics) -> None:
        self._link = link
        self._router = router
        self._metrics = metrics
        link.on_query("metrics", lambda: metrics_snapshot(metrics.registry))
        link.on_query("providers", self._own_providers)
        self.events = ClusterEvents(link, router.bus)

    def _own_providers(self) -> bytes:
        router = self._router
        return orjson.dumps(provider_rows(router.chains(), router.clock.now_ms()))

    async def _gather(
        self, what: str, own: Callable[[], bytes]
    ) -> tuple[list[tuple[int, bytes]], int]:
        try:
            return await self._link.gather(what)
        except HubUnavailable:
            return [(self._link.worker, own())], -1

    async def metrics_text(self, request: web.Request) -> web.Response:
        answers, missing = await self._gather(
            "metrics", lambda: metrics_snapshot(self._metrics.registry)
        )
        merged = merge_metrics(answers)
        workers = GaugeMetricFamily(
            "lasso_workers", "Worker processes whose counts this scrape includes"
        )
        workers.add_metric([], len(answers))
        missed = GaugeMetricFamily(
            "lasso_workers_missing", "Worker processes that did not answer this scrape in time"
        )
        missed.add_metric([], max(missing, 0))
        body = render_metrics([*merged, workers, missed])
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async def providers(self, request: web.Request) -> web.Response:
        chain_key = request.query.get("chain")
        wanted: tuple[str, str] | None = None
        if chain_key:
            rt = self._router.resolve(chain_key, request.query.get("profile"))
            wanted = (rt.profile, rt.name)
        answers, missing = await self._gather("providers", self._own_providers)
        rows = merge_providers((w, orjson.loads(data)) for w, data in answers if data)
        if wanted is not None:
            rows = [r for r in rows if (r["profile"], r["chain"]) == wanted]
        body = {"providers": rows, "workers": len(answers), "workers_missing": max(missing, 0)}
        return web.Response(body=orjson.dumps(body), content_type=_JSON)


class _Feed:
    """One ``/api/events`` client's frames: its types only, numbered (``seq``) as it gets them."""

    __slots__ = ("_queue", "dropped", "seq", "types")

    def __init__(self, maxsize: int, types: set[str]) -> None:
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize)
        self.types = types
        self.dropped = 0
        self.seq = 0

    def put(self, item: tuple[str, bytes]) -> None:
        if self.types and item[0] not in self.types:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self.seq += 1
        kind, data = item
        self._queue.put_nowait((kind, b'{"seq":%d,' % self.seq + data[1:]))

    async def next_frame(self) -> tuple[str, bytes]:
        return await self._queue.get()


class ClusterEvents:
    """Every worker's events for ``/api/events`` (``open`` is what ``OpsHandlers`` reads)."""

    def __init__(
        self, link: HubLink, bus: EventBus, *, flush_s: float = 0.02, maxsize: int = 10_000
    ) -> None:
        self._link = link
        self._bus = bus
        self._flush_s = flush_s
        self._maxsize = maxsize
        self._feeds: set[_Feed] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._buffer: list[tuple[str, bytes]] = []
        self._timer: asyncio.TimerHandle | None = None
        link.on_stream = self._stream
        link.on_events = self._incoming

    @contextlib.asynccontextmanager
    async def open(self, types: set[str]) -> AsyncIterator[EventFeed]:
        feed = _Feed(self._maxsize, types)
        self._feeds.add(feed)
        try:
            if len(self._feeds) == 1:
                self._link.watch(True)
            # Frames are ordered per connection: once every worker answered a query sent after
            # the hub told it to stream, every worker streams. Nothing emitted from now is lost.
            with contextlib.suppress(HubUnavailable):
                await self._link.gather("ping")
            yield feed
        finally:
            self._feeds.discard(feed)
            if not self._feeds:
                self._link.watch(False)

    def _stream(self, on: bool) -> None:
        if on and self._unsubscribe is None:
            self._unsubscribe = self._bus.subscribe(self._on_event)
        elif not on and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            self._flush()

    def _on_event(self, ev: Event) -> None:
        d: dict[str, Any] = event_to_dict(ev)
        d["worker"] = self._link.worker
        item = (d["type"], orjson.dumps(d, default=str))
        if ev.kind == _SUMMARY:
            # The dashboard's summary is this worker's own (its feed runs where the page's
            # stream is): it goes to this worker's clients only, not to the others'.
            self._incoming([item])
            return
        self._buffer.append(item)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            items, self._buffer = self._buffer, []
            self._link.send_events(items)

    def _incoming(self, items: list[tuple[str, bytes]]) -> None:
        for feed in self._feeds:
            for item in items:
                feed.put(item)

    def __repr__(self) -> str:
        return (
            f"ClusterEvents(clients={len(self._feeds)}, forwarding={self._unsubscribe is not None})"
        )
