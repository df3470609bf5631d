"""Battle-side WebSocket subscribers: N clients holding ``newHeads`` or ``logs`` through the router.

Each client counts what a dApp would notice: events, gaps, duplicates, reorgs, time connected,
delivery latency. A dropped socket is reconnected (with a short backoff) and re-subscribed; what
was missed meanwhile counts as a gap, as it would for a user.

- ``newHeads``: a gap is a missing block number between consecutive deliveries; a duplicate the
  same number and hash twice; a reorg the same number with a new hash.
- ``logs``: a duplicate is the same ``(blockHash, logIndex, removed)`` twice; a reorg a
  ``removed`` log (once per block); gaps are known only with ``chain`` (a mock fleet's
  ``SimulatedChain``): expected logs of the delivered block range that never arrived.

Against the chain's truth (``load.feed_truth``): with ``chain`` (exact) or ``truth_url`` (a node's
``eth_blockNumber`` polled directly), every block mined while a client was subscribed is
expected, so a feed that stops delivering counts every block it then missed as a gap (``gaps``;
the jumps between deliveries stay in ``gaps_in_stream``), and each record carries the longest
stall, how far behind the client was at the end and its uptime from blocks arriving.

Delivery latency: from the moment the mock chain mined the block (``chain`` given, exact) or
else from the block's own ``timestamp`` (whole seconds, so coarse).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import aiohttp
import orjson

from lasso_rpc.battle.load.feed_truth import (
    END_GRACE_S,
    ChainTruth,
    FeedLog,
    judge_feed,
    poll_heads,
)
from lasso_rpc.battle.providers.blocks import ChainEvent, LogFilter
from lasso_rpc.battle.providers.chain import SimulatedChain
from lasso_rpc.battle.records import SubscriptionRecord

__all__ = ["run_subscribers"]

_CONNECTS_AT_ONCE = 64
_WINDOW = 4096


async def run_subscribers(
    url: str,
    *,
    count: int,
    kind: Literal["newHeads", "logs"],
    duration_s: float,
    filter: Mapping[str, Any] | None = None,
    chain: SimulatedChain | None = None,
    ready: asyncio.Event | None = None,
    on_delivery: Callable[[str, float], None] | None = None,
    truth_url: str | None = None,
) -> list[SubscriptionRecord]:
    """Run ``count`` subscribers against ``url`` (``ws://…/ws/rpc/CHAIN``; ``http://`` is
    accepted and converted) for ``duration_s``; one record per client.

    ``ready`` is set once every client holds its first subscription; ``on_delivery`` gets every
    delivery as (block hash, latency ms), for exact percentiles across all clients. The chain's
    truth comes from ``chain`` or, without one, from polling ``truth_url`` (a provider's own
    HTTP URL, not the router's).
    """
    if kind not in ("newHeads", "logs"):
        raise ValueError(f"kind must be 'newHeads' or 'logs', not {kind!r}")
    if url.startswith("http"):
        url = "ws" + url[4:]
    mined: dict[str, float] = {}
    unlisten = None
    truth: ChainTruth | None = None
    poller: asyncio.Task[None] | None = None
    if chain is not None:
        truth = ChainTruth("chain")
        truth.saw(chain.head_number, time.monotonic())

        def on_block(ev: ChainEvent) -> None:
            now = time.monotonic()
            assert truth is not None
            truth.saw(ev.block.number, now)
            mined[ev.block.hash] = now
            if len(mined) > 2 * _WINDOW:
                for h in list(mined)[:_WINDOW]:
                    del mined[h]

        unlisten = chain.add_listener(on_block)
    elif truth_url is not None:
        truth = ChainTruth("poll")
        poller = asyncio.create_task(poll_heads(truth, truth_url), name="subscribers-truth")
    params: list[Any] = ["newHeads"] if kind == "newHeads" else ["logs", dict(filter or {})]
    exact = mined if chain is not None else None
    clients = [_Subscriber(i, kind, exact, on_delivery) for i in range(count)]
    subscribed = _Countdown(count, ready)
    gate = asyncio.Semaphore(_CONNECTS_AT_ONCE)
    deadline = time.monotonic() + duration_s
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(
                *(c.run(session, url, params, deadline, gate, subscribed) for c in clients)
            )
    finally:
        end = time.monotonic()
        if unlisten is not None:
            unlisten()
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
    expected = _expected_logs(chain, filter) if kind == "logs" and chain is not None else None
    return [c.record(duration_s, expected, truth, end) for c in clients]


class _Countdown:
    def __init__(self, n: int, event: asyncio.Event | None) -> None:
        self._n, self._event = n, event
        if n <= 0 and event is not None:
            event.set()

    def done_one(self) -> None:
        self._n -= 1
        if self._n == 0 and self._event is not None:
            self._event.set()


class _Subscriber:
    def __init__(
        self,
        index: int,
        kind: str,
        mined: dict[str, float] | None,
        on_delivery: Callable[[str, float], None] | None,
    ) -> None:
        self.index = index
        self.kind = kind
        self._mined = mined
        self._on_delivery = on_delivery
        self.events = self.gaps = self.duplicates = self.reorgs = 0
        self.connected_s = 0.0
        self.latencies_ms: list[float] = []
        self._last: int | None = None
        self._hashes: dict[int, str] = {}
        self._log_keys: dict[tuple[str, int, bool], None] = {}
        self._removed_blocks: set[str] = set()
        self.logs_seen: set[tuple[str, int]] = set()
        self.block_range: tuple[int, int] | None = None
        self._counted = False
        self.feed = FeedLog()

    async def run(
        self,
        session: aiohttp.ClientSession,
        url: str,
        params: list[Any],
        deadline: float,
        gate: asyncio.Semaphore,
        subscribed: _Countdown,
    ) -> None:
        backoff = 0.05
        self.feed.trying(time.monotonic())
        while time.monotonic() < deadline:
            since: float | None = None
            try:
                async with gate:
                    ws = await session.ws_connect(url, heartbeat=20.0)
                async with ws:
                    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": params}
                    await ws.send_bytes(orjson.dumps(body))
                    since = time.monotonic()
                    await self._consume(ws, deadline, subscribed)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                pass
            finally:
                if since is not None:
                    self.connected_s += time.monotonic() - since
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, 1.0)

    async def _consume(
        self, ws: aiohttp.ClientWebSocketResponse, deadline: float, subscribed: _Countdown
    ) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                msg = await ws.receive(timeout=remaining)
            except TimeoutError:
                return
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return  # closed by the router (or the network): reconnect
            data = orjson.loads(msg.data)
            if isinstance(data, dict) and data.get("id") == 1:
                if "error" in data:
                    raise ValueError(f"eth_subscribe refused: {data['error']}")
                self.feed.subscribed(time.monotonic())
                if not self._counted:
                    self._counted = True
                    subscribed.done_one()
                continue
            params = data.get("params") if isinstance(data, dict) else None
            if isinstance(params, dict) and isinstance(params.get("result"), dict):
                self._on_result(params["result"], time.monotonic())

    def _on_result(self, result: dict[str, Any], now: float) -> None:
        self.events += 1
        if self.kind == "newHeads":
            self._on_head(int(result["number"], 16), str(result["hash"]), result, now)
        else:
            self._on_log(result, now)

    def _on_head(self, n: int, h: str, result: dict[str, Any], now: float) -> None:
        self._latency(h, result.get("timestamp"), now)
        self.feed.got(n, now)
        last = self._last
        if last is not None and n <= last:
            if self._hashes.get(n) == h:
                self.duplicates += 1
                return
            self.reorgs += 1
        elif last is not None and n > last + 1:
            self.gaps += n - last - 1
        self._hashes[n] = h
        self._last = n
        if len(self._hashes) > _WINDOW:
            del self._hashes[next(iter(self._hashes))]

    def _on_log(self, result: dict[str, Any], now: float) -> None:
        block_hash = str(result.get("blockHash"))
        removed = bool(result.get("removed"))
        key = (block_hash, int(str(result.get("logIndex", "0x0")), 16), removed)
        if key in self._log_keys:
            self.duplicates += 1
            return
        self._log_keys[key] = None
        if len(self._log_keys) > 4 * _WINDOW:
            del self._log_keys[next(iter(self._log_keys))]
        if removed:
            if block_hash not in self._removed_blocks:
                self._removed_blocks.add(block_hash)
                self.reorgs += 1
            return
        self._latency(block_hash, None, now)
        number = int(str(result.get("blockNumber", "0x0")), 16)
        self.feed.got(number, now)
        lo, hi = self.block_range or (number, number)
        self.block_range = (min(lo, number), max(hi, number))
        self.logs_seen.add((block_hash, key[1]))

    def _latency(self, block_hash: str, timestamp: object, now: float) -> None:
        if self._mined is not None:
            t = self._mined.get(block_hash)
            if t is None:
                return  # mined before we listened (or long ago)
            ack = self.feed.first_ack
            if ack is None or t < ack:
                return  # mined before the client subscribed: sent along, not waited for
            ms = (now - t) * 1000.0
        elif isinstance(timestamp, str):
            ms = max(0.0, time.time() - int(timestamp, 16)) * 1000.0
        else:
            return
        self.latencies_ms.append(ms)
        if self._on_delivery is not None:
            self._on_delivery(block_hash, ms)

    def record(
        self, duration_s: float, expected: _Expected | None, truth: ChainTruth | None, end: float
    ) -> SubscriptionRecord:
        gaps = in_stream = self.gaps
        figures = None
        if truth is not None:
            only = expected.has_logs if expected is not None else None
            figures = judge_feed(self.feed, truth.mined, end, only=only, doubt_s=truth.doubt_s)
        if expected is not None:
            lo_hi = self.block_range
            start = self.feed.first_ack or self.feed.first_try
            if figures is not None and start is not None:
                lo_hi = _window(truth, start, end) or lo_hi
            gaps = expected.missing(lo_hi, self.logs_seen) if lo_hi is not None else 0
            in_stream = (
                expected.missing(self.block_range, self.logs_seen) if self.block_range else 0
            )
        elif figures is not None:
            gaps = max(figures.missed, self.gaps)
        lat = sorted(self.latencies_ms)
        return SubscriptionRecord(
            client=self.index,
            kind=self.kind,
            events=self.events,
            gaps=gaps,
            duplicates=self.duplicates,
            reorgs=self.reorgs,
            connected_s=round(self.connected_s, 3),
            duration_s=duration_s,
            delivery_ms_p50=_pct(lat, 0.50),
            delivery_ms_p99=_pct(lat, 0.99),
            truth=None if figures is None or truth is None else truth.source,
            expected_blocks=None if figures is None else figures.expected,
            gaps_in_stream=in_stream,
            max_stall_s=None if figures is None else figures.max_stall_s,
            behind_s=None if figures is None else figures.behind_s,
            uptime=None if figures is None else round(figures.uptime, 6),
        )


class _Expected:
    def __init__(self, chain: SimulatedChain, flt: LogFilter) -> None:
        self._chain, self._flt = chain, flt

    def missing(self, block_range: tuple[int, int], seen: set[tuple[str, int]]) -> int:
        lo, hi = block_range
        want = {(lg.block_hash, lg.log_index) for lg in self._chain.logs(lo, hi, self._flt)}
        return len(want - seen)

    def has_logs(self, number: int) -> bool:
        """Block ``number`` holds a log the filter matches (the feed owes the client one)."""
        return bool(self._chain.logs(number, number, self._flt))


def _window(truth: ChainTruth | None, start: float, end: float) -> tuple[int, int] | None:
    """The block numbers mined while subscribed (up to the end's grace)."""
    if truth is None:
        return None
    owed = start + truth.doubt_s
    numbers = [n for n, t in truth.mined.items() if owed <= t <= end - END_GRACE_S]
    return (numbers[0], numbers[-1]) if numbers else None


def _expected_logs(chain: SimulatedChain, flt: Mapping[str, Any] | None) -> _Expected:
    return _Expected(chain, LogFilter.parse(dict(flt or {})))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)
