"""One way to build an ``UpstreamTransport``: the fast pool, or the aiohttp reference."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Literal, TypedDict, Unpack

from lasso_rpc.config.models import ProviderConfig
from lasso_rpc.transport.base import UpstreamTransport
from lasso_rpc.transport.http_pool import HttpPoolTransport

__all__ = [
    "TransportImpl",
    "TransportOptions",
    "as_transport_impl",
    "create_transport",
    "provider_transport",
]

TransportImpl = Literal["fast", "aiohttp"]


class TransportOptions(TypedDict, total=False):
    """Keyword arguments both implementations accept."""

    pool_size: int
    max_response_bytes: int
    headers: Mapping[str, str] | None
    ssl_context: ssl.SSLContext | None
    connect_timeout_s: float


def as_transport_impl(name: str) -> TransportImpl:
    """``name`` checked against the implementations (it comes from a flag or a caller)."""
    if name == "fast":
        return "fast"
    if name == "aiohttp":
        return "aiohttp"
    raise ValueError(f"unknown transport implementation {name!r}")


def create_transport(
    url: str, *, impl: TransportImpl = "fast", **kw: Unpack[TransportOptions]
) -> UpstreamTransport:
    if impl == "fast":
        return HttpPoolTransport(url, **kw)
    if impl == "aiohttp":
        # Imported here: only the reference (benchmarks, conformance) needs it.
        from lasso_rpc.transport.aiohttp_ref import AiohttpTransport

        return AiohttpTransport(url, **kw)
    raise ValueError(f"unknown transport implementation {impl!r}")


def provider_transport(
    config: ProviderConfig, *, max_response_bytes: int, impl: str = "fast"
) -> UpstreamTransport:
    """The HTTP transport of one configured provider (its URL, pool size and headers)."""
    return create_transport(
        config.url,
        impl=as_transport_impl(impl),
        pool_size=config.pool_size,
        max_response_bytes=max_response_bytes,
        headers=config.headers,
    )
