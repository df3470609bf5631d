"""The reference ``UpstreamTransport`` on ``aiohttp.ClientSession``: same semantics, slower.

It is what ``HttpPoolTransport`` is measured and conformance-tested against. aiohttp puts the
full URL into some exception messages, so causes that mention the URL's path or query are
skipped when chaining (only ``scheme://host:port`` may appear anywhere).
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Mapping
from types import SimpleNamespace

import aiohttp
from yarl import URL

from lasso_rpc.errors import (
    ConnectError,
    ConnectionLost,
    MalformedResponse,
    ResponseTooLarge,
    TransportError,
    UpstreamTimeout,
)
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.transport.endpoint import (
    DEFAULT_MAX_RESPONSE_BYTES,
    parse_retry_after,
    transport_endpoint,
)

__all__ = ["AiohttpTransport"]

_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_RESETS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _is_stale(exc: aiohttp.ClientError) -> bool:
    """Did a reused connection die before the answer's status line (a keep-alive race)?"""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # A str message: aiohttp parsed nothing; else it holds the partial answer.
        return isinstance(exc.message, str)
    # Reset before the headers. aiohttp cannot say whether a few header bytes had come; the
    # fast transport can, and never retries then.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _RESETS) or getattr(cause, "errno", None) in _RESET_ERRNOS:
            return True
        cause = cause.__cause__
    return False


async def _on_reuse(
    session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceConnectionReuseconnParams,
) -> None:
    ctx.trace_request_ctx.reused = True


class AiohttpTransport:
    """``UpstreamTransport`` on one ``aiohttp.ClientSession`` (created on first use)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        endpoint = transport_endpoint(
            url, pool_size=pool_size, max_response_bytes=max_response_bytes
        )
        self.origin = endpoint.origin
        self.pool_size = pool_size
        self.max_response_bytes = max_response_bytes
        self._url = URL(endpoint.url_without_userinfo, encoded=True)
        self._secrets = [s for s in (endpoint.target, endpoint.authorization) if s and s != "/"]
        self._headers = endpoint.request_headers(headers)
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._inflight = 0
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<AiohttpTransport {self.origin}{state} inflight={self._inflight}"
            f" pool_size={self.pool_size}>"
        )

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        if self._closed:
            raise ConnectError(f"{self.origin}: transport is closed")
        session = self._session or self._open_session()
        self._inflight += 1
        try:
            async with asyncio.timeout(timeout_s):
                return await self._exchange(session, body, retry_stale=True)
        except TimeoutError as exc:
            msg = f"{self.origin}: no complete response within {timeout_s:g}s"
            raise UpstreamTimeout(msg) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                # aclose() cancelled our wait for a pooled connection, not our caller.
                raise ConnectError(f"{self.origin}: transport is closed") from None
            raise
        finally:
            self._inflight -= 1

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_connection_reuseconn.append(_on_reuse)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=0, ssl=self._ssl),
            headers=self._headers,
            skip_auto_headers=("Accept-Encoding",),  # we pass bodies through undecoded
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
            trace_configs=[trace],
        )
        return self._session

    async def _exchange(
        self, session: aiohttp.ClientSession, body: bytes, *, retry_stale: bool
    ) -> UpstreamResponse:
        attempt = SimpleNamespace(reused=False)
        try:
            resp = await session.post(
                self._url, data=body, allow_redirects=False, trace_request_ctx=attempt
            )
        except aiohttp.ClientError as exc:
            if retry_stale and attempt.reused and _is_stale(exc) and not self._closed:
                # A keep-alive close race: aiohttp does not resend a POST by itself.
                return await self._exchange(session, body, retry_stale=False)
            raise self._translate(exc) from self._safe_cause(exc)
        try:
            payload = await self._read_capped(resp)
        except aiohttp.ClientError as exc:
            resp.close()
            raise self._translate(exc) from self._safe_cause(exc)
        except BaseException:
            resp.close()  # never return a half-read connection to the pool
            raise
        resp.release()
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        return UpstreamResponse(resp.status, payload, retry_after)

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.max_response_bytes
        too_large = ResponseTooLarge(f"{self.origin}: response body exceeds {cap} bytes")
        if resp.content_length is not None and resp.content_length > cap:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while chunk := await resp.content.read(cap + 1 - size):
            size += len(chunk)
            if size > cap:
                raise too_large
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _translate(self, exc: aiohttp.ClientError) -> TransportError:
        origin = self.origin
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return ConnectError(f"{origin}: connect failed: {self._text(exc)}")
        if isinstance(exc, aiohttp.ClientResponseError):
            return MalformedResponse(f"{origin}: malformed HTTP response: {exc.message}")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return ConnectionLost(f"{origin}: connection closed before the response completed")
        if isinstance(exc, aiohttp.ClientPayloadError):
            return ConnectionLost(f"{origin}: response body incomplete")
        return ConnectionLost(f"{origin}: {self._text(exc)}")

    def _leaks(self, exc: BaseException) -> bool:
        text = str(exc)
        return any(s in text for s in self._secrets)

    def _text(self, exc: BaseException) -> str:
        return type(exc).__name__ if self._leaks(exc) else f"{type(exc).__name__}: {exc}"

    def _safe_cause(self, exc: BaseException) -> BaseException | None:
        """The first exception in the cause chain whose text holds no URL secret."""
        cause: BaseException | None = exc
        while cause is not None and self._leaks(cause):
            cause = cause.__cause__
        return cause
