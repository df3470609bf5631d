"""The seam between routing and the network: one tiny protocol per upstream endpoint."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["UpstreamResponse", "UpstreamTransport"]


class UpstreamResponse(msgspec.Struct, frozen=True):
    """An HTTP answer, kept raw: the status is needed for classification, the body is passed on."""

    status: int
    body: bytes
    retry_after_s: float | None = None


@runtime_checkable
class UpstreamTransport(Protocol):
    """Sends one JSON-RPC body to one provider URL.

    ``post`` raises only ``lasso_rpc.errors.TransportError`` subclasses; a non-2xx status is
    *returned*, not raised, so that the resilience layer classifies it. Cancelling ``post``
    closes the connection it was using (a half-read answer is never reused).
    """

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
