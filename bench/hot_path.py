"""The router's own CPU per call, without sockets: parse, route, pipeline, events, metrics.

    .venv/bin/python bench/hot_path.py            # about 20 s
    .venv/bin/python bench/hot_path.py --quick

Everything of a ``POST /rpc/...`` runs as in ``lasso-rpc serve`` (the front's head parser,
``RpcHandler.respond``, the pipeline, the event bus with the Prometheus and log subscribers),
except the network: each provider's transport is an in-memory stand-in that answers on the next
loop iteration. What is left is the Python work per call, measured with the process CPU clock,
so the figures are steadier than the wrk benchmarks (noise from other VMs still shows; the best
of several rounds is kept). Use it before and after a change to the request path.

Rows: one provider (no hedge can fire); the same with 5 dashboard pages following the router
(the summary feed held, 5 filtered ``/api/events`` streams consumed as ``server/ops.py`` does);
three providers with hedging off; three providers with the default hedging (a Task per attempt);
``include_meta=body``; a 50-item batch (per item).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import re
import sys
import time
from typing import Any

import orjson
import uvloop

import lib as c
from lasso_rpc.config import load_config_text
from lasso_rpc.dashboard.feed import SummaryFeed
from lasso_rpc.observability.events import EventStream, event_to_dict
from lasso_rpc.observability.logs import EventLogger
from lasso_rpc.observability.metrics import PrometheusMetrics
from lasso_rpc.router import Router
from lasso_rpc.server.http1_head import RequestHead, parse_head
from lasso_rpc.server.rpc import RpcHandler
from lasso_rpc.transport.base import UpstreamResponse

_ID = re.compile(rb'"id":(\d+)')


class _Instant:
    """An upstream that answers ``eth_blockNumber`` (or a batch) on the next loop iteration."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        answers = [b'{"jsonrpc":"2.0","id":%s,"result":"0x1234"}' % m for m in _ID.findall(body)]
        out = answers[0] if body[:1] == b"{" else b"[" + b",".join(answers) + b"]"
        fut: asyncio.Future[UpstreamResponse] = self._loop.create_future()
        self._loop.call_soon(fut.set_result, UpstreamResponse(200, out))
        return await fut

    async def aclose(self) -> None:
        return None


def _config(providers: int, routing: str) -> str:
    lines = [f"      - {{id: p{i}, url: 'http://127.0.0.1:{9000 + i}'}}" for i in range(providers)]
    return (
        "name: Bench\nslug: bench\nchains:\n  bench:\n    chain_id: 1\n    providers:\n"
        + "\n".join(lines)
        + f"\nrouting: {routing}\nserver: {{host: 127.0.0.1, port: 0}}\n"
    )


def _request(body: bytes, query: str = "") -> bytes:
    return (
        b"POST /rpc/bench%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        b"\r\nContent-Length: %d\r\n\r\n%s" % (query.encode(), len(body), body)
    )


_PAGE_TYPES = [
    "stats.summary",
    "breaker.changed",
    "provider.health",
    "subscription.failover",
    "config.reloaded",
    "chaos.injected",
    "chaos.reverted",
]


async def _follow(stream: EventStream) -> None:
    """What ``/api/events`` does for each event of a dashboard page (minus the socket write)."""
    while True:
        ev = await stream.get()
        d = event_to_dict(ev)
        if d["type"] in _PAGE_TYPES:
            orjson.dumps(d, default=str)


async def _measure(
    providers: int, routing: str, raw: bytes, rounds: int, n: int, pages: int = 0
) -> float:
    router = Router(load_config_text([("bench.yaml", _config(providers, routing))]))
    metrics = PrometheusMetrics(router)
    router.bus.subscribe(metrics.on_event)
    router.bus.subscribe(EventLogger().on_event)
    async with contextlib.AsyncExitStack() as stack:
        feed = SummaryFeed(router, metrics)
        stack.push_async_callback(feed.aclose)
        kinds = {"chaos.injected" if t == "chaos.reverted" else t for t in _PAGE_TYPES}
        for _ in range(pages):  # dashboard pages following the router, as ops.events does
            stack.enter_context(feed.hold())
            stream = stack.enter_context(router.bus.stream(kinds=kinds))
            task = asyncio.create_task(_follow(stream))
            stack.callback(task.cancel)
        return await _calls(router, raw, rounds, n)


async def _calls(router: Router, raw: bytes, rounds: int, n: int) -> float:
    for chain in router.chains():
        for p in chain.providers.values():
            p.transport = _Instant()
    rpc = RpcHandler(router)

    async def one() -> None:
        head = parse_head(raw)
        assert isinstance(head, RequestHead), head
        route, chain = rpc.target(head.tail)
        reply = await rpc.respond(
            route,
            chain,
            raw[head.start : head.end],
            meta_mode="body" if b"include_meta=body" in raw[:200] else None,
            request_id=None,
            failover=False,
            peer="127.0.0.1",
        )
        assert reply.status == 200 and reply.body is not None and b'"0x1234"' in reply.body

    for _ in range(n // 4):  # warm-up: stats, caches
        await one()
    gc.collect()
    gc.freeze()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            await one()
        best = min(best, (time.process_time() - t0) / n)
    gc.unfreeze()
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    rounds, n = (3, 3000) if args.quick else (7, 10000)
    c.pin_self(c.SUT_CPU)
    c.header("hot_path: the router's CPU per call, no sockets", None)
    call = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
    batch = (
        b"["
        + b",".join(
            b'{"jsonrpc":"2.0","id":%d,"method":"eth_blockNumber","params":[]}' % i
            for i in range(50)
        )
        + b"]"
    )
    cases: list[tuple[str, int, str, bytes, int, int]] = [
        ("1 provider", 1, "{}", _request(call), 1, 0),
        ("1 provider, 5 dashboard pages following", 1, "{}", _request(call), 1, 5),
        ("3 providers, hedging off", 3, "{hedge: {enabled: false}}", _request(call), 1, 0),
        ("3 providers, default hedging", 3, "{}", _request(call), 1, 0),
        ("1 provider, include_meta=body", 1, "{}", _request(call, "?include_meta=body"), 1, 0),
        ("50-item batch, 1 provider (per item)", 1, "{}", _request(batch), 50, 0),
    ]
    rows: list[list[Any]] = []
    for name, providers, routing, raw, items, pages in cases:
        scale = items
        us = uvloop.run(_measure(providers, routing, raw, rounds, max(n // scale, 50), pages))
        rows.append([name, us / items, 1e6 / us * items])
        print(f"  {name}: {us / items:.1f} µs per call", flush=True)
    print(c.table(["case", "µs CPU per call", "calls/s per core (no I/O)"], rows, "## Hot path"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
