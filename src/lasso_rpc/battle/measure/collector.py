"""Collector: router telemetry and workload records → bounded, bucketed aggregates.

Two views of the same run are kept side by side:

- **router view** (ground truth) — ``request.finished`` events from the router's ``EventBus``
  (in-process, :meth:`Collector.attach_bus`) or its ``/api/events`` WebSocket (subprocess,
  :meth:`Collector.attach_stream`); both end in :meth:`Collector.on_event`. A request is bucketed
  by its *start* time (event time minus its latency); a failover is a request with more than
  one upstream attempt.
- **client view** — :class:`RequestRecord` values from the workload, via :meth:`Collector.record`,
  bucketed by their *intended* send time.

Memory stays bounded for long runs: counters per time bucket and HDR histograms (µs, 1 µs..60 s,
3 significant digits). A bucket's histogram is kept live only while the bucket is recent; older
ones are stored encoded (~1 kB each instead of ~140 kB). Raw records are kept only with
``keep_raw`` (or the ``"raw"`` collect name). Percentiles are never computed here — the analyzer
does that once, at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from lasso_rpc.battle.measure.accumulators import ClientAcc, RouterAcc, bump
from lasso_rpc.battle.measure.data import (
    COLLECT_NAMES,
    DEFAULT_COLLECT,
    BreakerRecord,
    ChaosMark,
    CollectedData,
    EjectionRecord,
    HealthRecord,
    SubscriptionFailoverRecord,
)
from lasso_rpc.battle.measure.event_source import EVENT_TYPES, EventStream
from lasso_rpc.battle.measure.histograms import (
    HistSeries,
    encode_histogram,
    new_histogram,
    to_us,
)
from lasso_rpc.battle.measure.sampler import SystemSampler
from lasso_rpc.battle.measure.validity import unanswered
from lasso_rpc.battle.records import RequestRecord, SystemSample
from lasso_rpc.observability.events import (
    BreakerChanged,
    ChaosEvent,
    Event,
    EventBus,
    ProviderEjection,
    ProviderHealth,
    RequestFinished,
    SubscriptionFailover,
)

__all__ = ["Collector"]

_MAX_T_S = 7 * 86_400.0  # an event further than this from the start is a clock jump: dropped
_TIMELINE_CAP = 100_000  # per timeline list; the oldest entries go first


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class Collector:
    """Subscribes to the router's telemetry and the workload; :meth:`snapshot` freezes it all.

    ``start`` is the event-loop time of the scenario start (``loop.time()``); ``wall_start``,
    the same instant on the wall clock (router events carry wall-clock stamps), is derived from
    it unless given. ``collect`` picks from :data:`COLLECT_NAMES` (default: all but ``"raw"``).
    """

    def __init__(
        self,
        *,
        start: float,
        bucket_s: float = 1.0,
        keep_raw: bool = False,
        router_pid: int | None = None,
        collect: Iterable[str] | None = None,
        wall_start: float | None = None,
    ) -> None:
        if not bucket_s > 0:
            raise ValueError("bucket_s must be > 0")
        names = DEFAULT_COLLECT if collect is None else frozenset(collect)
        unknown = names - COLLECT_NAMES
        if unknown:
            raise ValueError(
                f"unknown collect names {sorted(unknown)}; valid: {sorted(COLLECT_NAMES)}"
            )
        if keep_raw:
            names |= {"raw"}
        self.collected = names
        self.start = start
        self.bucket_s = bucket_s
        self.wall_start = (
            wall_start if wall_start is not None else time.time() - (_loop_time() - start)
        )
        self.router_pid = router_pid if router_pid is not None else os.getpid()
        self._requests = "requests" in names
        self._raw = "raw" in names
        # router view
        self._rb: dict[int, RouterAcc] = {}
        self._r_series = HistSeries()
        self._r_hist = new_histogram()
        self._r_sum_ms = 0.0
        self._f_hist = new_histogram()
        self._f_max_ms = 0.0
        # client view
        self._cb: dict[int, ClientAcc] = {}
        self._c_series = HistSeries()
        self._c_hist = new_histogram()
        self._c_sum_ms = 0.0
        self._c_max_ms = 0.0
        self._c_unanswered = 0
        # timelines
        self._breakers: deque[BreakerRecord] = deque(maxlen=_TIMELINE_CAP)
        self._ejections: deque[EjectionRecord] = deque(maxlen=_TIMELINE_CAP)
        self._health: deque[HealthRecord] = deque(maxlen=_TIMELINE_CAP)
        self._sub_failovers: deque[SubscriptionFailoverRecord] = deque(maxlen=_TIMELINE_CAP)
        self._chaos: deque[ChaosMark] = deque(maxlen=_TIMELINE_CAP)
        self._system: deque[SystemSample] = deque(maxlen=_TIMELINE_CAP)
        self._raw_records: list[RequestRecord] = []
        self._raw_events: list[dict[str, Any]] = []
        self._dropped = 0
        self._attempts_by_method: dict[str, dict[str, int]] = {}  # provider → method → sent
        # owned resources
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stream: EventStream | None = None
        self._more_streams: list[EventStream] = []
        self._sampler = SystemSampler(self.router_pid)

    def __repr__(self) -> str:
        return (
            f"Collector(collect={sorted(self.collected)}, bucket_s={self.bucket_s}, "
            f"router_requests={self._r_hist.get_total_count()}, "
            f"client_requests={self._c_hist.get_total_count()}, tasks={len(self._tasks)})"
        )

    # -- sources ---------------------------------------------------------------------------

    def attach_bus(self, bus: EventBus) -> None:
        """Subscribe to an in-process router's bus (until :meth:`aclose`)."""
        self._unsubscribe.append(bus.subscribe(self.on_event))

    async def attach_stream(self, events_url: str, *, connect_timeout_s: float = 5.0) -> None:
        """Follow a router's ``/api/events`` over a WebSocket; returns once it is connected.

        The reader task belongs to the collector; a dropped connection is re-opened (events
        sent meanwhile are lost and ``stream_reconnects`` counts the drops).
        """
        types = [t for t, cls in EVENT_TYPES.items() if self._wants(cls)]
        stream = EventStream(events_url, self.on_event, types=types)
        await stream.open(connect_timeout_s=connect_timeout_s)
        if self._stream is None:
            self._stream = stream
        else:  # several router nodes: one stream each
            self._more_streams.append(stream)

    @property
    def stream_reconnects(self) -> int:
        return self._stream.reconnects if self._stream is not None else 0

    @property
    def stream_decode_errors(self) -> int:
        return self._stream.decode_errors if self._stream is not None else 0

    @property
    def stream_lost(self) -> int:
        """Events the router's stream dropped because this reader fell behind."""
        return self._stream.lost if self._stream is not None else 0

    @property
    def router_requests(self) -> int:
        """``request.finished`` events collected so far."""
        return int(self._r_hist.get_total_count())

    @property
    def answered_requests(self) -> int:
        """Workload requests so far that got an answer from the router (events are owed)."""
        return int(self._c_hist.get_total_count()) - self._c_unanswered

    @property
    def source(self) -> str:
        """Where router events came from: "bus" (in-process), "stream" (subprocess) or "none"."""
        if self._stream is not None:
            return "stream"
        return "bus" if self._unsubscribe else "none"

    def _wants(self, cls: type[Event]) -> bool:
        need = {
            RequestFinished: "requests",
            BreakerChanged: "breakers",
            ProviderEjection: "breakers",
            ProviderHealth: "health",
            SubscriptionFailover: "subscriptions",
        }.get(cls)
        return need is None or need in self.collected

    def _t(self, wall: float) -> float:
        return wall - self.wall_start

    def _index(self, t_s: float) -> int | None:
        if not -_MAX_T_S < t_s < _MAX_T_S:
            self._dropped += 1
            return None
        return max(0, math.floor(t_s / self.bucket_s))

    def on_event(self, ev: Event) -> None:
        """The bus handler: a counter or two and a histogram record per request."""
        want = self.collected
        if isinstance(ev, RequestFinished):
            if self._requests:
                self._on_request(ev)
        elif isinstance(ev, BreakerChanged):
            if "breakers" in want:
                t = self._t(ev.ts)
                b = BreakerRecord(
                    t, ev.provider, ev.from_state, ev.to_state, ev.reason, ev.transport
                )
                self._keep(self._breakers, b)
        elif isinstance(ev, ProviderEjection):
            if "breakers" in want:
                e = EjectionRecord(
                    self._t(ev.ts), ev.provider, ev.ejected, ev.reason, ev.duration_ms
                )
                self._keep(self._ejections, e)
        elif isinstance(ev, ProviderHealth):
            if "health" in want:
                t = self._t(ev.ts)
                self._keep(self._health, HealthRecord(t, ev.provider, ev.head, ev.lag, ev.cordoned))
        elif isinstance(ev, SubscriptionFailover):
            if "subscriptions" in want:
                sub = SubscriptionFailoverRecord(
                    self._t(ev.ts), ev.subscription, ev.from_provider, ev.to_provider,
                    ev.backfilled, ev.gap, ev.reorg,
                )  # fmt: skip
                self._keep(self._sub_failovers, sub)
        elif isinstance(ev, ChaosEvent):
            mark = ChaosMark(self._t(ev.ts), ev.action, ev.target, ev.reverted, dict(ev.details))
            self._keep(self._chaos, mark)

    def _keep(self, timeline: deque[Any], item: Any) -> None:
        if len(timeline) == timeline.maxlen:
            self._dropped += 1
        timeline.append(item)

    def _on_request(self, ev: RequestFinished) -> None:
        t = self._t(ev.ts) - ev.latency_ms / 1000.0
        i = self._index(t)
        if i is None:
            return
        b = self._rb.get(i)
        if b is None:
            b = self._rb[i] = RouterAcc()
        b.requests += 1
        bump(b.status, ev.status)
        if ev.status == "error":
            bump(b.errors, ev.error_class or "unknown")
        us = to_us(ev.latency_ms)
        self._r_hist.record_value(us)
        self._r_series.record(i, us)
        self._r_sum_ms += ev.latency_ms
        if ev.failover:
            b.failovers += 1
            self._f_hist.record_value(us)
            self._f_max_ms = max(self._f_max_ms, ev.latency_ms)
        if ev.hedged:
            b.hedged += 1
        if ev.provider is not None:
            bump(b.served, ev.provider)
        if ev.attempts:
            bump(b.first, ev.attempts[0].provider)
        by_method = self._attempts_by_method
        for a in ev.attempts:
            outcomes = b.attempts.get(a.provider)
            if outcomes is None:
                outcomes = b.attempts[a.provider] = {}
            bump(outcomes, a.outcome)
            methods = by_method.get(a.provider)
            if methods is None:
                methods = by_method[a.provider] = {}
            bump(methods, ev.method)
        if self._raw:
            self._raw_events.append(
                {
                    "t_s": t, "method": ev.method, "status": ev.status,
                    "error_class": ev.error_class, "latency_ms": ev.latency_ms,
                    "attempts": [(a.provider, a.outcome) for a in ev.attempts],
                    "hedged": ev.hedged, "provider": ev.provider,
                }
            )  # fmt: skip

    def record(self, r: RequestRecord) -> None:
        """One workload request as the client saw it."""
        if not self._requests:
            return
        i = self._index(r.intended_s)
        if i is None:
            return
        b = self._cb.get(i)
        if b is None:
            b = self._cb[i] = ClientAcc()
        b.requests += 1
        if r.outcome == "ok":
            b.ok += 1
        elif r.outcome == "client_error":
            b.client_errors += 1
        else:
            b.errors += 1
            bump(b.by_class, r.error_class or "unknown")
            if unanswered({r.error_class or "unknown": 1}):
                self._c_unanswered += 1
        ms = r.latency_ms
        us = to_us(ms)
        self._c_hist.record_value(us)
        self._c_series.record(i, us)
        self._c_sum_ms += ms
        if ms > self._c_max_ms:
            self._c_max_ms = ms
        if r.failover:
            b.failovers += 1
        if r.hedged:
            b.hedged += 1
        if r.provider is not None:
            bump(b.providers, r.provider)
        if self._raw:
            self._raw_records.append(r)

    # -- system sampling -------------------------------------------------------------------

    def sample_once(self, t_s: float | None = None) -> SystemSample | None:
        """One RSS/CPU sample of the router process (None when it is gone)."""
        t = t_s if t_s is not None else _loop_time() - self.start
        sample = self._sampler.sample(t)
        if sample is not None:
            self._keep(self._system, sample)
        return sample

    async def sample_system(self, interval_s: float = 1.0) -> None:
        """Sample every ``interval_s`` until cancelled (see :meth:`start_sampling`)."""
        if "system" not in self.collected:
            return
        self.sample_once()
        while True:
            await asyncio.sleep(interval_s)
            self.sample_once()

    def start_sampling(self, interval_s: float = 1.0) -> None:
        """Run :meth:`sample_system` as a task owned by the collector."""
        self._tasks.append(asyncio.create_task(self.sample_system(interval_s)))

    async def aclose(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._stream is not None:
            await self._stream.aclose()
        for more in self._more_streams:
            await more.aclose()

    # -- output ----------------------------------------------------------------------------

    def snapshot(self) -> CollectedData:
        n_r = max(self._rb, default=-1) + 1
        n_c = max(self._cb, default=-1) + 1
        empty_r, empty_c = RouterAcc(), ClientAcc()
        return CollectedData(
            bucket_s=self.bucket_s,
            collected=self.collected,
            router_buckets=tuple(
                self._rb.get(i, empty_r).freeze(self._r_series.encoded(i)) for i in range(n_r)
            ),
            client_buckets=tuple(
                self._cb.get(i, empty_c).freeze(self._c_series.encoded(i)) for i in range(n_c)
            ),
            router_latency_hist=encode_histogram(self._r_hist),
            router_latency_sum_ms=self._r_sum_ms,
            failover_latency_hist=encode_histogram(self._f_hist),
            failover_latency_max_ms=self._f_max_ms,
            client_latency_hist=encode_histogram(self._c_hist),
            client_latency_sum_ms=self._c_sum_ms,
            client_latency_max_ms=self._c_max_ms,
            breakers=tuple(self._breakers),
            ejections=tuple(self._ejections),
            health=tuple(self._health),
            subscription_failovers=tuple(self._sub_failovers),
            chaos_marks=tuple(self._chaos),
            system=tuple(self._system),
            raw_records=tuple(self._raw_records),
            raw_events=tuple(self._raw_events),
            stream_reconnects=self.stream_reconnects,
            stream_decode_errors=self.stream_decode_errors,
            dropped=self._dropped,
            stream_lost=self.stream_lost,
            source=self.source,
            attempts_by_method={p: dict(m) for p, m in self._attempts_by_method.items()},
        )
