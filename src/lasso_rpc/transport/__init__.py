"""Upstream transports: the ``UpstreamTransport`` seam and its two implementations.

``HttpPoolTransport`` is the fast keep-alive pool used in production (``http_pool``, its
connections in ``http_conn``); ``AiohttpTransport`` is the reference it is conformance-tested
and benchmarked against (``aiohttp_ref``). Both parse URLs with ``endpoint``. Build either with
``create_transport(url, impl=...)``, or a provider's with ``provider_transport`` (``factory``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lasso_rpc.transport.base import UpstreamResponse, UpstreamTransport
from lasso_rpc.transport.factory import TransportImpl, TransportOptions, create_transport
from lasso_rpc.transport.http_pool import HttpPoolTransport

if TYPE_CHECKING:
    from lasso_rpc.transport.aiohttp_ref import AiohttpTransport

__all__ = [
    "AiohttpTransport",
    "HttpPoolTransport",
    "TransportImpl",
    "TransportOptions",
    "UpstreamResponse",
    "UpstreamTransport",
    "create_transport",
]


def __getattr__(name: str) -> object:
    # aiohttp is heavy; load the reference only when someone asks for it.
    if name == "AiohttpTransport":
        from lasso_rpc.transport.aiohttp_ref import AiohttpTransport

        return AiohttpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
