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
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson
from hdrh.histogram import HdrHistogram
from yarl import URL

from lasso_rpc.battle.records import RequestRecord, SystemSample
from lasso_rpc.observability.events import (
    Attempt,
    BreakerChanged,
    ChaosEvent,
    Event,
    EventBus,
    ProviderHealth,
    RequestFinished,
    SubscriptionFailover,
    event_fields,
)

__all__ = [
    "COLLECT_NAMES",
    "DEFAULT_COLLECT",
    "BreakerRecord",
    "ChaosMark",
    "ClientBucket",
    "CollectedData",
    "Collector",
    "HealthRecord",
    "RouterBucket",
    "SubscriptionFailoverRecord",
    "decode_histogram",
    "new_histogram",
    "release_histogram",
    "to_us",
]

log = logging.getLogger("lasso_rpc.battle.measure.collector")

COLLECT_NAMES = frozenset({"requests", "breakers", "health", "subscriptions", "system", "raw"})
DEFAULT_COLLECT = COLLECT_NAMES - {"raw"}

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_DIGITS = 3
_KEEP_OPEN = 3  # buckets behind the newest one whose histograms stay live
_MAX_T_S = 7 * 86_400.0  # an event further than this from the start is a clock jump: dropped
_TIMELINE_CAP = 100_000  # per timeline list; the oldest entries go first


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


def decode_histogram(encoded: str | bytes | None) -> HdrHistogram:
    """A histogram from ``hist.encode()`` output (an empty one for ``None``)."""
    if not encoded:
        return new_histogram()
    return HdrHistogram.decode(encoded if isinstance(encoded, bytes) else encoded.encode())


def release_histogram(h: HdrHistogram) -> None:
    """Free a histogram now: ``hdrh`` keeps a histogram <-> encoder reference cycle, so its
    ~140 kB counts array would otherwise wait for a full garbage collection."""
    h.encoder = None


def to_us(ms: float) -> int:
    """Milliseconds → whole µs, clamped into the histogram's range."""
    us = int(ms * 1000.0 + 0.5)
    return HIST_LOWEST_US if us < HIST_LOWEST_US else min(us, HIST_HIGHEST_US)


def _encode(h: HdrHistogram) -> str:
    return str(h.encode().decode("ascii"))


class _HistSeries:
    """One histogram per bucket; all but the newest few are kept encoded."""

    __slots__ = ("_frozen", "_hi", "_live")

    def __init__(self) -> None:
        self._live: dict[int, HdrHistogram] = {}
        self._frozen: dict[int, str] = {}
        self._hi = -1

    def record(self, idx: int, us: int) -> None:
        h = self._live.get(idx)
        if h is None:
            h = self._open(idx)
        h.record_value(us)

    def _open(self, idx: int) -> HdrHistogram:
        h = decode_histogram(self._frozen.pop(idx, None))
        self._live[idx] = h
        if idx > self._hi:
            self._hi = idx
            for k in [k for k in self._live if k < idx - _KEEP_OPEN]:
                old = self._live.pop(k)
                self._frozen[k] = _encode(old)
                release_histogram(old)
        return h

    def encoded(self, idx: int) -> str | None:
        h = self._live.get(idx)
        return _encode(h) if h is not None else self._frozen.get(idx)


# -- frozen output -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouterBucket:
    """One time bucket of the router's ``request.finished`` events."""

    requests: int = 0
    status: Mapping[str, int] = field(default_factory=dict)
    errors_by_class: Mapping[str, int] = field(default_factory=dict)
    failovers: int = 0  # requests with more than one upstream attempt
    hedged: int = 0
    served: Mapping[str, int] = field(default_factory=dict)  # provider → answers returned
    attempts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # provider → outcome
    latency_hist: str | None = None  # base64 HDR of router latency, µs


@dataclass(frozen=True, slots=True)
class ClientBucket:
    """One time bucket of workload records (client view)."""

    requests: int = 0
    ok: int = 0
    client_errors: int = 0
    errors: int = 0
    errors_by_class: Mapping[str, int] = field(default_factory=dict)
    failovers: int = 0  # failover flag according to include_meta
    hedged: int = 0
    providers: Mapping[str, int] = field(default_factory=dict)
    latency_hist: str | None = None  # base64 HDR of client latency (from intended time), µs


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    t_s: float
    provider: str
    from_state: str
    to_state: str
    reason: str
    transport: str = "http"

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_s": self.t_s,
            "provider": self.provider,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "transport": self.transport,
        }


@dataclass(frozen=True, slots=True)
class HealthRecord:
    t_s: float
    provider: str
    head: int | None
    lag: int | None
    cordoned: bool


@dataclass(frozen=True, slots=True)
class SubscriptionFailoverRecord:
    t_s: float
    subscription: str
    from_provider: str | None
    to_provider: str | None
    backfilled: int
    gap: bool
    reorg: bool


@dataclass(frozen=True, slots=True)
class ChaosMark:
    """A ``chaos.injected`` / ``chaos.reverted`` event as the router's stream carried it."""

    t_s: float
    action: str
    target: str | None
    reverted: bool
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CollectedData:
    """Everything one run collected; histograms are base64 HDR strings (µs)."""

    bucket_s: float
    collected: frozenset[str]
    router_buckets: tuple[RouterBucket, ...]
    client_buckets: tuple[ClientBucket, ...]
    router_latency_hist: str
    router_latency_sum_ms: float
    failover_latency_hist: str
    failover_latency_max_ms: float
    client_latency_hist: str
    client_latency_sum_ms: float
    client_latency_max_ms: float
    breakers: tuple[BreakerRecord, ...] = ()
    health: tuple[HealthRecord, ...] = ()
    subscription_failovers: tuple[SubscriptionFailoverRecord, ...] = ()
    chaos_marks: tuple[ChaosMark, ...] = ()
    system: tuple[SystemSample, ...] = ()
    raw_records: tuple[RequestRecord, ...] = ()
    raw_events: tuple[Mapping[str, Any], ...] = ()
    stream_reconnects: int = 0
    stream_decode_errors: int = 0
    dropped: int = 0  # events outside the time range, plus timeline entries past the cap

    @property
    def router_requests(self) -> int:
        return sum(b.requests for b in self.router_buckets)

    @property
    def client_requests(self) -> int:
        return sum(b.requests for b in self.client_buckets)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["collected"] = sorted(self.collected)
        return d


# -- mutable accumulators ----------------------------------------------------------------------


class _RouterAcc:
    __slots__ = ("attempts", "errors", "failovers", "hedged", "requests", "served", "status")

    def __init__(self) -> None:
        self.requests = 0
        self.status: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.failovers = 0
        self.hedged = 0
        self.served: dict[str, int] = {}
        self.attempts: dict[str, dict[str, int]] = {}

    def freeze(self, hist: str | None) -> RouterBucket:
        attempts = {p: dict(o) for p, o in self.attempts.items()}
        return RouterBucket(
            self.requests, dict(self.status), dict(self.errors), self.failovers, self.hedged,
            dict(self.served), attempts, hist,
        )  # fmt: skip


class _ClientAcc:
    __slots__ = (
        "by_class", "client_errors", "errors", "failovers", "hedged", "ok", "providers", "requests",
    )  # fmt: skip

    def __init__(self) -> None:
        self.requests = self.ok = self.client_errors = self.errors = 0
        self.failovers = self.hedged = 0
        self.by_class: dict[str, int] = {}
        self.providers: dict[str, int] = {}

    def freeze(self, hist: str | None) -> ClientBucket:
        return ClientBucket(
            self.requests, self.ok, self.client_errors, self.errors, dict(self.by_class),
            self.failovers, self.hedged, dict(self.providers), hist,
        )  # fmt: skip


def _bump(d: dict[str, int], key: str) -> None:
    d[key] = d.get(key, 0) + 1


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


_EVENT_TYPES: dict[str, type[Event]] = {
    "request.finished": RequestFinished,
    "breaker.changed": BreakerChanged,
    "provider.health": ProviderHealth,
    "subscription.failover": SubscriptionFailover,
    "chaos.injected": ChaosEvent,
    "chaos.reverted": ChaosEvent,
}

_FIELDS = {
    cls: tuple(f for f in event_fields(cls) if f not in ("decision", "attempts", "reverted"))
    for cls in set(_EVENT_TYPES.values())
}


def event_from_dict(d: Mapping[str, Any]) -> Event | None:
    """The event an ``/api/events`` frame describes; None for types the collector ignores.

    Raises ``KeyError``/``TypeError``/``ValueError`` for a malformed frame.
    """
    cls = _EVENT_TYPES.get(str(d.get("type")))
    if cls is None:
        return None
    kw = {k: d[k] for k in _FIELDS[cls] if k in d}
    if cls is RequestFinished:
        kw["attempts"] = tuple(Attempt(**a) for a in d.get("attempts") or ())
    elif cls is ChaosEvent:
        kw["reverted"] = d["type"] == "chaos.reverted"
    return cls(**kw)


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
        self._rb: dict[int, _RouterAcc] = {}
        self._r_series = _HistSeries()
        self._r_hist = new_histogram()
        self._r_sum_ms = 0.0
        self._f_hist = new_histogram()
        self._f_max_ms = 0.0
        # client view
        self._cb: dict[int, _ClientAcc] = {}
        self._c_series = _HistSeries()
        self._c_hist = new_histogram()
        self._c_sum_ms = 0.0
        self._c_max_ms = 0.0
        # timelines
        self._breakers: deque[BreakerRecord] = deque(maxlen=_TIMELINE_CAP)
        self._health: deque[HealthRecord] = deque(maxlen=_TIMELINE_CAP)
        self._sub_failovers: deque[SubscriptionFailoverRecord] = deque(maxlen=_TIMELINE_CAP)
        self._chaos: deque[ChaosMark] = deque(maxlen=_TIMELINE_CAP)
        self._system: deque[SystemSample] = deque(maxlen=_TIMELINE_CAP)
        self._raw_records: list[RequestRecord] = []
        self._raw_events: list[dict[str, Any]] = []
        self._dropped = 0
        # owned resources
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._stream_connected = asyncio.Event()
        self.stream_reconnects = 0
        self.stream_decode_errors = 0
        self._proc: Any = None

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
        if self._session is not None:
            raise RuntimeError("attach_stream was called already")
        types = [t for t, cls in _EVENT_TYPES.items() if self._wants(cls)]
        url = URL(events_url).update_query(types=",".join(types))
        self._session = aiohttp.ClientSession()
        task = asyncio.create_task(self._follow(url), name="collector-stream")
        self._tasks.append(task)  # owned from here: aclose() cancels it
        connected = asyncio.create_task(self._stream_connected.wait())
        try:
            await asyncio.wait(
                {task, connected}, timeout=connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
        if self._stream_connected.is_set():
            return
        self._tasks.remove(task)
        task.cancel()
        try:
            await task  # re-raises what stopped the reader early (a malformed URL, say)
        except asyncio.CancelledError:
            pass
        finally:
            await self._session.close()
            self._session = None
        raise ConnectionError(f"cannot open the event stream at {url}")

    async def _follow(self, url: URL) -> None:
        assert self._session is not None
        backoff = 0.05
        while True:
            live = False
            try:
                async with self._session.ws_connect(url, heartbeat=10.0) as ws:
                    self._stream_connected.set()
                    live = True
                    backoff = 0.05
                    async for msg in ws:
                        if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                            self._on_frame(msg.data)
                        elif msg.type == aiohttp.WSMsgType.ERROR:
                            break
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("event stream %s: %r", url, exc)
            if live:
                self.stream_reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _on_frame(self, data: str | bytes) -> None:
        try:
            ev = event_from_dict(orjson.loads(data))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            self.stream_decode_errors += 1
            return
        if ev is not None:
            self.on_event(ev)

    def _wants(self, cls: type[Event]) -> bool:
        need = {
            RequestFinished: "requests",
            BreakerChanged: "breakers",
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
            b = self._rb[i] = _RouterAcc()
        b.requests += 1
        _bump(b.status, ev.status)
        if ev.status == "error":
            _bump(b.errors, ev.error_class or "unknown")
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
            _bump(b.served, ev.provider)
        for a in ev.attempts:
            outcomes = b.attempts.get(a.provider)
            if outcomes is None:
                outcomes = b.attempts[a.provider] = {}
            _bump(outcomes, a.outcome)
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
            b = self._cb[i] = _ClientAcc()
        b.requests += 1
        if r.outcome == "ok":
            b.ok += 1
        elif r.outcome == "client_error":
            b.client_errors += 1
        else:
            b.errors += 1
            _bump(b.by_class, r.error_class or "unknown")
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
            _bump(b.providers, r.provider)
        if self._raw:
            self._raw_records.append(r)

    # -- system sampling -------------------------------------------------------------------

    def sample_once(self, t_s: float | None = None) -> SystemSample | None:
        """One RSS/CPU sample of the router process (None when it is gone)."""
        import psutil

        try:
            if self._proc is None:
                self._proc = psutil.Process(self.router_pid)
                self._proc.cpu_percent(None)  # the first reading only primes the counter
            rss = self._proc.memory_info().rss / (1024 * 1024)
            cpu = float(self._proc.cpu_percent(None))
        except psutil.Error:
            return None
        t = t_s if t_s is not None else _loop_time() - self.start
        sample = SystemSample(t, float(rss), cpu)
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
        if self._session is not None:
            await self._session.close()

    # -- output ----------------------------------------------------------------------------

    def snapshot(self) -> CollectedData:
        n_r = max(self._rb, default=-1) + 1
        n_c = max(self._cb, default=-1) + 1
        empty_r, empty_c = _RouterAcc(), _ClientAcc()
        return CollectedData(
            bucket_s=self.bucket_s,
            collected=self.collected,
            router_buckets=tuple(
                self._rb.get(i, empty_r).freeze(self._r_series.encoded(i)) for i in range(n_r)
            ),
            client_buckets=tuple(
                self._cb.get(i, empty_c).freeze(self._c_series.encoded(i)) for i in range(n_c)
            ),
            router_latency_hist=_encode(self._r_hist),
            router_latency_sum_ms=self._r_sum_ms,
            failover_latency_hist=_encode(self._f_hist),
            failover_latency_max_ms=self._f_max_ms,
            client_latency_hist=_encode(self._c_hist),
            client_latency_sum_ms=self._c_sum_ms,
            client_latency_max_ms=self._c_max_ms,
            breakers=tuple(self._breakers),
            health=tuple(self._health),
            subscription_failovers=tuple(self._sub_failovers),
            chaos_marks=tuple(self._chaos),
            system=tuple(self._system),
            raw_records=tuple(self._raw_records),
            raw_events=tuple(self._raw_events),
            stream_reconnects=self.stream_reconnects,
            stream_decode_errors=self.stream_decode_errors,
            dropped=self._dropped,
        )
