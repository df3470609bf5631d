"""Client-side cost of the two upstream transports: req/s and CPU µs per request.

    .venv/bin/python bench/transport_client.py --seconds 3

The upstream (a raw uvloop ``asyncio.Protocol`` that echoes each body back on keep-alive
connections) runs in subprocesses, so ``time.process_time()`` here measures the client only.
Each case runs at concurrency 1 and 64 with ``pool_size=64``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import cast

import httptools
import uvloop

from lasso_rpc.transport import UpstreamTransport, create_transport
from lasso_rpc.transport.factory import TransportImpl

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


# -- upstream (subprocess) ---------------------------------------------------------------


class _Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body.clear()
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )


def serve(port: int) -> None:
    async def main() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        server = await asyncio.get_running_loop().create_server(_Echo, sock=sock, backlog=1024)
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())


def start_upstreams(procs: int) -> tuple[int, list[subprocess.Popen[bytes]]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    children = []
    for _ in range(procs):
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE
        )
        assert child.stdout is not None
        child.stdout.readline()  # "ready"
        children.append(child)
    return port, children


# -- client ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    impl: str
    concurrency: int
    requests: int
    wall_s: float
    cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6


async def _run_case(url: str, impl: TransportImpl, concurrency: int, seconds: float) -> Result:
    transport: UpstreamTransport = create_transport(url, impl=impl, pool_size=64)
    count = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < stop_at:
            resp = await transport.post(BODY, timeout_s=10)
            assert resp.status == 200 and resp.body == BODY
            count += 1

    try:
        stop_at = time.monotonic() + min(0.5, seconds / 4)  # warm up: connections, caches
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        count = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        stop_at = wall0 + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu1, wall1 = time.process_time(), time.monotonic()
    finally:
        await transport.aclose()
    return Result(impl, concurrency, count, wall1 - wall0, cpu1 - cpu0)


async def run(url: str, seconds: float) -> list[Result]:
    impls: tuple[TransportImpl, ...] = ("fast", "aiohttp")
    return [await _run_case(url, i, c, seconds) for i in impls for c in (1, 64)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per case")
    parser.add_argument("--upstreams", type=int, default=2, help="upstream processes")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    port, children = start_upstreams(args.upstreams)
    try:
        results = uvloop.run(run(f"http://127.0.0.1:{port}/", args.seconds))
    finally:
        for child in children:
            child.terminate()
            child.wait()
    print(f"python {sys.version.split()[0]}, uvloop, {os.cpu_count()} cpus, body {len(BODY)} B")
    print(f"{'transport':<10} {'conc':>5} {'req/s':>10} {'CPU µs/req':>11} {'requests':>9}")
    for r in results:
        print(f"{r.impl:<10} {r.concurrency:>5} {r.rps:>10,.0f} {r.cpu_us:>11.1f} {r.requests:>9}")


if __name__ == "__main__":
    main()
