"""The open-loop runner: sends a ``Workload`` to the router and records every request.

Open loop: each request goes out at its intended time whether or not earlier ones have been
answered, and its latency runs from that intended time, so a stalled router shows up as latency
and cannot hide by slowing the sender down (no coordinated omission). ``max_in_flight`` bounds
what is outstanding: a request due while the cap is reached waits for a free slot (counted in
``LoadStats.delayed_by_cap``), its latency still counted from its intended time.

One dispatcher coroutine sleeps until the next request is due, then sends every request whose time
has passed in one go. A request is one task running ``HttpPoolTransport.post`` with a done
callback that classifies the answer and emits the ``RequestRecord`` — no wrapper coroutine and no
sleeping task per request. Every request the schedule released ends in exactly one record; on
stop or cancellation the unfinished ones end as ``error_class="cancelled"``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from lasso_rpc.battle.load.replies import (
    CANCELLED,
    Reply,
    classify_exception,
    classify_reply,
    meta_url,
)
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.battle.load.ws_sender import WsRpcTransport
from lasso_rpc.battle.records import RequestRecord
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.transport.http_pool import HttpPoolTransport

__all__ = ["LoadStats", "run_workload"]


@dataclass(frozen=True, slots=True)
class LoadStats:
    """The generator's own account of a run (the records hold the router's)."""

    sent: int  # requests the schedule released; each ended in exactly one record
    completed: int  # ... of which ended with an answer or an error (not cancelled)
    cancelled: int
    delayed_by_cap: int  # had to wait for a free slot under max_in_flight
    max_in_flight: int
    generator_lag_ms_p99: float  # how late the dispatcher released requests vs intended
    generator_lag_ms_max: float
    elapsed_s: float


class _LagHistogram:
    """Log-linear histogram of non-negative durations in µs (≈1.6 % precision), O(1) record."""

    __slots__ = ("counts", "max_us", "n")

    def __init__(self) -> None:
        self.counts = [0] * (128 + 64 * 58)
        self.n = 0
        self.max_us = 0

    def record(self, seconds: float) -> None:
        us = int(seconds * 1e6) if seconds > 0.0 else 0
        bits = us.bit_length()
        if bits <= 7:
            self.counts[us] += 1
        else:
            shift = bits - 7
            self.counts[64 * shift + (us >> shift)] += 1  # mantissa in 64..127
        self.n += 1
        if us > self.max_us:
            self.max_us = us

    def percentile_ms(self, p: float) -> float:
        rank = p / 100.0 * self.n
        seen = 0
        for idx, count in enumerate(self.counts):
            seen += count
            if count and seen >= rank:
                if idx < 128:
                    return idx / 1000.0
                shift, m = idx // 64 - 1, idx % 64 + 64
                return min((((2 * m + 1) << shift) >> 1) / 1000.0, self.max_us / 1000.0)
        return 0.0


_Pending = tuple[str, float, float]  # method, intended (monotonic), actual send (monotonic)


class _Run:
    """State of one ``run_workload`` call; the done callbacks and the dispatcher share it."""

    def __init__(
        self,
        workload: Workload,
        transport: HttpPoolTransport | WsRpcTransport,
        clock_start: float,
        on_record: Callable[[RequestRecord], None],
        progress: Callable[[int], None] | None,
        inspect: Callable[[float, bytes], None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.inspect = inspect
        self.transport = transport
        self.t0 = clock_start
        self.on_record = on_record
        self.progress = progress
        self.cap = workload.max_in_flight
        self.timeout_s = workload.request_timeout_s
        self.kind = workload.transport
        self.heads = {
            c.method: b'{"jsonrpc":"2.0","method":%s,"params":' % orjson.dumps(c.method)
            for c in workload.calls
        }
        self.pending: dict[asyncio.Task[UpstreamResponse], _Pending] = {}
        self.queue: deque[tuple[str, bytes, float]] = deque()
        self.next_id = 0
        self.lag = _LagHistogram()
        self.sent = self.completed = self.cancelled = self.delayed = self.peak = 0
        self.dispatching = True
        self.halting = False
        self.cancel_at = 0.0
        self.last_progress = 0.0
        self.finished: asyncio.Future[None] = self.loop.create_future()

    # -- sending -------------------------------------------------------------------------

    async def dispatch(self, schedule: Iterator[tuple[float, str, bytes]]) -> None:
        t0, clock, lag, submit = self.t0, time.monotonic, self.lag, self.submit
        burst = 0
        try:
            for offset, method, params in schedule:
                due = t0 + offset
                now = clock()
                if due > now:
                    burst = 0
                    await asyncio.sleep(due - now)
                    now = clock()
                elif burst >= 256:  # far behind: let answers in between
                    burst = 0
                    await asyncio.sleep(0)
                    now = clock()
                burst += 1
                lag.record(now - due)
                submit(method, params, due, now)
        except Exception as exc:  # a broken schedule: stop, and raise it
            self.fail(exc)
            return
        self.dispatching = False
        self.check_finished()

    def submit(self, method: str, params: bytes, due: float, now: float) -> None:
        self.sent += 1
        if len(self.pending) >= self.cap:
            self.delayed += 1
            self.queue.append((method, params, due))
        else:
            self.start(method, params, due, now)

    def start(self, method: str, params: bytes, due: float, now: float) -> None:
        self.next_id += 1
        body = b'%s%s,"id":%d}' % (self.heads[method], params, self.next_id)
        task = self.loop.create_task(self.transport.post(body, timeout_s=self.timeout_s))
        pending = self.pending
        pending[task] = (method, due, now)
        if len(pending) > self.peak:
            self.peak = len(pending)
        task.add_done_callback(self.done)

    # -- answers -------------------------------------------------------------------------

    def done(self, task: asyncio.Task[UpstreamResponse]) -> None:
        method, due, started = self.pending.pop(task)
        if task.cancelled():
            end, reply = self.cancel_at, CANCELLED
            self.cancelled += 1
        else:
            end = time.monotonic()
            exc = task.exception()
            if exc is None:
                response = task.result()
                reply = classify_reply(response.status, response.body)
                if self.inspect is not None and reply.outcome == "ok":
                    self.inspect(started - self.t0, response.body)
            else:
                reply = classify_exception(exc)
            self.completed += 1
        if self.queue and not self.halting:
            m, params, d = self.queue.popleft()
            self.start(m, params, d, end)
        self.emit(method, due, started, end, reply)
        if not self.pending:
            self.check_finished()
        if self.progress is not None and end - self.last_progress >= 0.1:
            self.last_progress = end
            self.call_progress()

    def call_progress(self) -> None:
        assert self.progress is not None
        try:
            self.progress(self.completed)
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: Exception) -> None:
        """Stop the run; ``run_workload`` raises ``exc`` once everything is cleaned up."""
        if not self.finished.done():
            self.finished.set_exception(exc)

    def emit(self, method: str, due: float, started: float, end: float, reply: Reply) -> None:
        t0 = self.t0
        record = RequestRecord(
            method,
            self.kind,
            due - t0,
            started - t0,
            end - t0,
            reply.outcome,
            reply.error_class,
            reply.provider,
            reply.attempts,
            reply.hedged,
            reply.failover,
        )
        try:
            self.on_record(record)
        except Exception as exc:
            self.fail(exc)

    def check_finished(self) -> None:
        if not (self.dispatching or self.pending or self.queue or self.finished.done()):
            self.finished.set_result(None)

    async def cancel_all(self) -> None:
        """End every unfinished request as ``cancelled`` (end time: now)."""
        self.halting = True
        self.cancel_at = time.monotonic()
        tasks = list(self.pending)
        for task in tasks:
            task.cancel()
        while self.queue:
            method, _, due = self.queue.popleft()
            self.cancelled += 1
            self.emit(method, due, self.cancel_at, self.cancel_at, CANCELLED)
        if tasks:
            await asyncio.wait(tasks)  # their done callbacks have run when this returns

    def stats(self, elapsed_s: float) -> LoadStats:
        return LoadStats(
            sent=self.sent,
            completed=self.completed,
            cancelled=self.cancelled,
            delayed_by_cap=self.delayed,
            max_in_flight=self.peak,
            generator_lag_ms_p99=self.lag.percentile_ms(99.0),
            generator_lag_ms_max=self.lag.max_us / 1000.0,
            elapsed_s=elapsed_s,
        )


async def run_workload(
    workload: Workload,
    *,
    base_url: str,
    clock_start: float,
    rng: random.Random,
    on_record: Callable[[RequestRecord], None],
    progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    inspect: Callable[[float, bytes], None] | None = None,
) -> LoadStats:
    """Send ``workload`` to ``base_url`` (the router, e.g. ``http://127.0.0.1:4000``), open loop,
    over HTTP, or over WebSockets for ``Workload.over("ws")`` (``load.ws_sender``).

    Offsets of the schedule count from ``clock_start`` (``loop.time()`` at scenario start; the
    same monotonic clock), and so do the times in each ``RequestRecord``. ``on_record`` gets
    every record as it ends (an exception from it stops the run and is raised here);
    ``progress`` gets the number of finished requests about every 100 ms. Setting ``stop`` (or
    cancelling this call) ends the run early: unsent requests are dropped, unfinished ones are
    recorded as cancelled. ``inspect(start_s, body)`` sees the body of every answered request
    (the chain-truth check of ``measure.staleness``).
    """
    path = workload.target_path
    if workload.transport == "ws" and path.startswith("/rpc/"):
        path = "/ws" + path  # the router's socket for /rpc/X is /ws/rpc/X
    url = meta_url(base_url, path)
    transport: HttpPoolTransport | WsRpcTransport
    if workload.transport == "ws":
        ws_url = "ws" + url[4:] if url.startswith("http") else url
        sockets = WsRpcTransport.sockets_for(workload.max_in_flight)
        transport = WsRpcTransport(ws_url, connections=sockets)
    else:
        transport = HttpPoolTransport(url, pool_size=workload.max_in_flight)
    run = _Run(workload, transport, clock_start, on_record, progress, inspect)
    began = time.monotonic()
    if stop is not None and stop.is_set():
        await transport.aclose()
        return run.stats(0.0)
    dispatcher = run.loop.create_task(run.dispatch(workload.schedule(rng)))
    stopper = run.loop.create_task(stop.wait()) if stop is not None else None
    waiters: list[asyncio.Future[Any]] = [run.finished]
    if stopper is not None:
        waiters.append(stopper)
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        dispatcher.cancel()
        if stopper is not None:
            stopper.cancel()
        await run.cancel_all()
        await asyncio.gather(dispatcher, *([stopper] if stopper else []), return_exceptions=True)
        await transport.aclose()
        if progress is not None:
            run.call_progress()
        if not run.finished.done():
            run.finished.set_result(None)
        failure = run.finished.exception()  # retrieved even when cancelled
    if failure is not None:
        raise failure
    return run.stats(time.monotonic() - began)
