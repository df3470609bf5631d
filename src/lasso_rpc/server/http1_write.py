"""Writing one answer of the HTTP/1.1 front: the head (cached for a plain 200) and the body."""

from __future__ import annotations

import asyncio
from typing import Protocol

from lasso_rpc.server.http1_head import RequestHead
from lasso_rpc.server.rpc import RpcReply

__all__ = ["ResponseHeads", "write_reply"]

_LARGE = 16 * 1024  # bodies from this size are written beside their head, not copied into it


class ResponseHeads(Protocol):
    """What writing needs from the listener: the response heads it keeps up to date."""

    def prefix_200(self) -> bytes: ...

    def head(
        self, status: int, body: bytes | None, headers: tuple[tuple[str, str], ...], close: str
    ) -> bytes: ...


def write_reply(
    transport: asyncio.Transport,
    heads: ResponseHeads,
    reply: RpcReply,
    head: RequestHead,
    *,
    close: bool,
) -> None:
    body = reply.body
    plain = reply.status == 200 and not reply.headers and not close and not head.http10
    if plain and body is not None:
        prefix = heads.prefix_200()
        if len(body) < _LARGE:
            transport.write(b"".join((prefix, b"%d\r\n\r\n" % len(body), body)))
        else:
            transport.writelines((prefix, b"%d\r\n\r\n" % len(body), body))
        return
    # HTTP/1.0 keeps a connection only when told so; HTTP/1.1 unless told otherwise.
    connection = "close" if close else ("keep-alive" if head.http10 else "")
    out = heads.head(reply.status, body, reply.headers, connection)
    if body is None:
        transport.write(out)
    elif len(body) < _LARGE:
        transport.write(out + body)
    else:
        transport.writelines((out, body))
