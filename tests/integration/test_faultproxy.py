"""FaultProxy over real sockets: an echo server, a data source, and a MockFleet provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest

from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.faults import Faults
from lasso_rpc.battle.providers.fleet import MockFleet

pytestmark = pytest.mark.chaos

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A loopback TCP server whose connection handlers are owned and cancelled on close."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.received = 0
        self.resets = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handler(reader, writer)
        except ConnectionResetError:
            self.resets += 1
        finally:
            writer.close()

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def echo_server() -> Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            server.received += len(data)
            writer.write(data)
            await writer.drain()

    server = Server(echo)
    return server


def source_server(size: int, *, close: bool = True) -> Server:
    """Sends ``size`` bytes on connect, then closes (or waits for the client to close)."""

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * size)
        await writer.drain()
        if not close:
            await reader.read()

    return Server(source)


@pytest.fixture
async def echo() -> AsyncIterator[Server]:
    async with echo_server() as s:
        yield s


@pytest.fixture
async def proxy(echo: Server) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo.port) as p:
        yield p


async def connect(p: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", p.port)


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes = b"ping"
) -> float:
    t0 = time.monotonic()
    writer.write(data)
    got = await asyncio.wait_for(reader.readexactly(len(data)), 5.0)
    assert got == data
    return time.monotonic() - t0


async def test_forwards_both_ways_and_counts(proxy: FaultProxy, echo: Server) -> None:
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer, b"hello proxy")
    c = proxy.counters
    assert (c.accepted, c.active, c.bytes_up, c.bytes_down) == (1, 1, 11, 11)
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    writer.close()
    await writer.wait_closed()
    for _ in range(200):
        if proxy.counters.active == 0:
            break
        await asyncio.sleep(0.01)
    assert proxy.counters.active == 0
    assert echo.connections == 1


async def test_latency_is_added_each_way_and_keeps_order(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    base = await roundtrip(reader, writer)
    previous = proxy.set(latency_ms=100, jitter_ms=20)
    assert previous == Faults()
    assert "latency_ms=100" in repr(proxy)
    slow = await roundtrip(reader, writer)
    assert slow >= 0.2 > base  # 100 ms on the way there, 100 ms on the way back
    # Many small chunks with jitter still arrive in order.
    chunks = [f"{i:04d}".encode() for i in range(40)]
    for c in chunks:
        writer.write(c)
        await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(4 * len(chunks)), 5.0)
    assert got == b"".join(chunks)
    proxy.clear()
    assert await roundtrip(reader, writer) < 0.2
    writer.close()


async def test_bandwidth_cap_is_observed() -> None:
    size, rate = 60_000, 120_000.0  # about half a second at the cap
    async with source_server(size) as src, FaultProxy("127.0.0.1", src.port) as p:
        p.set(bandwidth_bytes_per_s=rate)
        reader, writer = await connect(p)
        t0 = time.monotonic()
        data = await asyncio.wait_for(reader.read(-1), 10.0)  # to EOF
        elapsed = time.monotonic() - t0
        writer.close()
        assert len(data) == size
        observed = size / elapsed
        assert 0.6 * rate <= observed <= 1.15 * rate, observed


async def test_reset_aborts_an_open_keepalive_connection(proxy: FaultProxy, echo: Server) -> None:
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer)
    assert proxy.reset() == 1
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 5.0)
    writer.close()
    for _ in range(200):  # the target side was reset too
        if echo.resets == 1:
            break
        await asyncio.sleep(0.01)
    assert echo.resets == 1
    # New connections are fine.
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer)
    writer.close()
    assert proxy.counters.reset == 1


async def test_reset_new_resets_new_connections_only(proxy: FaultProxy) -> None:
    old_reader, old_writer = await connect(proxy)
    await roundtrip(old_reader, old_writer)
    proxy.set(reset_new=True)
    with pytest.raises(ConnectionResetError):  # the handshake completes, then a RST
        reader, writer = await connect(proxy)
        try:
            await roundtrip(reader, writer)
        finally:
            writer.close()
    await roundtrip(old_reader, old_writer)  # the open one still works
    old_writer.close()


async def test_blackhole_makes_clients_time_out_then_resets_them(
    proxy: FaultProxy, echo: Server
) -> None:
    old_reader, old_writer = await connect(proxy)
    await roundtrip(old_reader, old_writer)
    received = echo.received
    proxy.set(blackhole=True)
    new_reader, new_writer = await connect(proxy)  # accepted...
    for reader, writer in ((old_reader, old_writer), (new_reader, new_writer)):
        with pytest.raises(TimeoutError):  # ...but never answered
            await asyncio.wait_for(roundtrip(reader, writer), 0.3)
    assert echo.received == received  # nothing reached the target
    assert echo.connections == 1
    assert proxy.counters.bytes_dropped >= 8
    proxy.set(blackhole=False)  # the broken connections are reset
    for reader in (old_reader, new_reader):
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 5.0)
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer)
    for w in (old_writer, new_writer, writer):
        w.close()


async def test_refuse_then_listen_again_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    reader, writer = await connect(proxy)
    proxy.set(refuse=True)
    assert proxy.state == "refusing"
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    await roundtrip(reader, writer)  # open connections are not affected
    proxy.set(refuse=False)
    assert (proxy.state, proxy.port) == ("listening", port)
    reader2, writer2 = await connect(proxy)
    await roundtrip(reader2, writer2)
    for w in (writer, writer2):
        w.close()


async def test_slow_close_delays_the_close_not_the_data() -> None:
    async with source_server(10) as src, FaultProxy("127.0.0.1", src.port) as p:
        p.set(slow_close_ms=300)
        reader, writer = await connect(p)
        t0 = time.monotonic()
        assert await asyncio.wait_for(reader.readexactly(10), 5.0) == b"x" * 10
        t_data = time.monotonic() - t0
        assert await asyncio.wait_for(reader.read(), 5.0) == b""  # EOF
        t_eof = time.monotonic() - t0
        writer.close()
        assert t_data < 0.25 and t_eof >= 0.3, (t_data, t_eof)


async def test_target_down_resets_the_client() -> None:
    async with echo_server() as dead:
        port = dead.port
    async with FaultProxy("127.0.0.1", port) as p:
        reader, writer = await connect(p)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await roundtrip(reader, writer)
        writer.close()
        assert p.counters.upstream_failures == 1


async def test_aclose_leaves_no_task_and_no_socket(echo: Server) -> None:
    p = FaultProxy("127.0.0.1", echo.port)
    async with p:
        p.set(latency_ms=50)
        conns = [await connect(p) for _ in range(3)]
        for _, w in conns:
            w.write(b"pending")  # in flight, held by the latency
        p.set(blackhole=True)
        conns.append(await connect(p))
        await asyncio.sleep(0.05)
        assert p.counters.active == 4
    assert p.state == "closed" and p.counters.active == 0
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} <= set(echo._tasks)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", p.port)
    for _, w in conns:
        w.close()


def test_faults_validate_and_list_valid_names() -> None:
    with pytest.raises(ValueError, match="valid: latency_ms"):
        Faults().with_changes(latncy_ms=1)
    with pytest.raises(ValueError):
        Faults(latency_ms=-1)
    with pytest.raises(ValueError):
        Faults(bandwidth_bytes_per_s=0)


# -- in front of a mock provider ------------------------------------------------------------


async def _post(
    http: aiohttp.ClientSession, url: str, timeout: float = 5.0
) -> tuple[int, dict[str, object]]:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
    async with http.post(
        url,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as r:
        return r.status, orjson.loads(await r.read())


async def test_in_front_of_a_mock_provider(fleet: MockFleet, http: aiohttp.ClientSession) -> None:
    alpha = fleet["alpha"]
    async with FaultProxy("127.0.0.1", alpha.port) as p:
        status, body = await _post(http, p.url + "/")
        assert status == 200 and body["result"] == hex(fleet.chain.head_number)

        p.set(latency_ms=150)
        t0 = time.monotonic()
        status, _ = await _post(http, p.url + "/")
        assert status == 200 and time.monotonic() - t0 >= 0.3
        p.clear()

        before = alpha.requests_total
        p.set(blackhole=True)
        with pytest.raises(TimeoutError):
            await _post(http, p.url + "/", timeout=0.3)
        assert alpha.requests_total == before  # the provider never saw it
        p.clear()  # resets the broken keep-alive connection; the next request reconnects
        status, _ = await _post(http, p.url + "/")
        assert status == 200 and alpha.requests_total == before + 1

        p.set(refuse=True)
        p.reset()  # refuse alone spares open connections; a killed node would not
        await asyncio.sleep(0.05)  # let the client's pool see its connection go
        with pytest.raises(aiohttp.ClientConnectorError):
            await _post(http, p.url + "/")
        p.clear()
        status, _ = await _post(http, p.url + "/")
        assert status == 200
