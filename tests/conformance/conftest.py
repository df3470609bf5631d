"""Raw asyncio HTTP/1.1 upstreams on 127.0.0.1:0 that misbehave exactly as a test asks.

A test gives ``upstream(handler)`` a coroutine that drives one server-side connection through
``ServerConn`` (read a request, send bytes, reset, wait for the client to close). ``Upstream``
counts what the server saw: connections, concurrency, requests, closes by the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import pytest
import uvloop

from lasso_rpc.transport import UpstreamTransport, create_transport


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


def response(
    status: int = 200,
    body: bytes = b"",
    *,
    headers: Iterable[tuple[str, str]] = (),
    chunks: list[bytes] | None = None,
    close: bool = False,
    reason: str = "X",
) -> bytes:
    """A well-formed HTTP/1.1 response; ``chunks`` switches to chunked transfer-encoding."""
    head = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    if close:
        head.append("Connection: close")
    if chunks is None:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    else:
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class ServerConn:
    """The server side of one accepted connection."""

    def __init__(
        self, upstream: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.upstream = upstream
        self.reader = reader
        self.writer = writer
        self.requests = 0  # on this connection
        self.saw_client_close = False

    async def read_request(self) -> Request | None:
        """The next request, or None once the client closed or reset the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.saw_client_close = True
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        try:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.saw_client_close = True
            return None
        request = Request(method, target, headers, body)
        self.requests += 1
        self.upstream._record(lambda: self.upstream.requests.append(request))
        return request

    async def send(self, data: bytes) -> bool:
        """False if the client closed the connection before taking it all."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            self.saw_client_close = True
            return False
        return True

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0)."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def wait_client_close(self) -> None:
        """Return once the client closed or reset the connection."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.saw_client_close = True


Handler = Callable[[ServerConn], Awaitable[None]]


async def echo(conn: ServerConn) -> None:
    """The well-behaved upstream: answer every request with its own body."""
    while (req := await conn.read_request()) is not None:
        await conn.send(response(200, req.body))
    await conn.wait_client_close()


@dataclass
class Upstream:
    handler: Handler
    tls: ssl.SSLContext | None = None
    port: int = 0
    connections: int = 0  # accepted in total
    active: int = 0
    max_active: int = 0
    client_closes: int = 0  # connections the client closed or reset (server saw EOF)
    requests: list[Request] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/", userinfo: str = "") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def _record(self, change: Callable[[], object]) -> None:
        change()
        self._changed.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = ServerConn(self, reader, writer)

        def opened() -> None:
            self.connections += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)

        self._record(opened)
        try:
            await self.handler(conn)
            if conn.saw_client_close:
                self._record(lambda: setattr(self, "client_closes", self.client_closes + 1))
            writer.close()  # flushes what the handler sent
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        except asyncio.CancelledError:
            pass  # stop() ends handlers this way; nothing waits on them
        finally:
            self._record(lambda: setattr(self, "active", self.active - 1))
            writer.transport.abort()
            self._tasks.discard(task)


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    """Start upstreams with a handler; all of them stop at the end of the test."""
    started: list[Upstream] = []

    async def start(handler: Handler = echo, tls: ssl.SSLContext | None = None) -> Upstream:
        up = Upstream(handler, tls)
        await up.start()
        started.append(up)
        return up

    yield start
    for up in started:
        await up.stop()


@dataclass(frozen=True, slots=True)
class Cert:
    server: ssl.SSLContext
    cafile: str


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    key, crt = folder / "key.pem", folder / "cert.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
    command += " -addext subjectAltName=IP:127.0.0.1"
    subprocess.run([*command.split(), "-keyout", key, "-out", crt], check=True, capture_output=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(crt, key)
    return Cert(server, str(crt))


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every conformance test runs on the stdlib loop and on uvloop (used in production)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=["fast", "aiohttp"])
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


MakeTransport = Callable[..., UpstreamTransport]


@pytest.fixture
async def make_transport(impl: str) -> AsyncIterator[MakeTransport]:
    """Build transports of the parametrized implementation; all are closed after the test."""
    made: list[UpstreamTransport] = []

    def make(url: str, **kw: object) -> UpstreamTransport:
        transport = create_transport(url, impl=impl, **kw)  # type: ignore[arg-type]
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()
