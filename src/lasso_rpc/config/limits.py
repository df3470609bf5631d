"""``server.limits``: what one client may hold or send before the router refuses it.

Each limit, when it acts, is counted in ``lasso_limit_rejections_total{limit}`` (the label is
the key's name without its unit: ``header_bytes``, ``connections_per_ip``, ...).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from lasso_rpc.config.base import Frozen

__all__ = ["ServerLimits"]


class ServerLimits(Frozen):
    """Limits against slow, greedy and malformed clients (HTTP and WebSocket), per process."""

    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = Field(
        default=32 * 1024,
        description="Largest request head (request line and header lines); a longer one is "
        "answered 431 and the connection closes. Connections handed to aiohttp (everything "
        "but POST /rpc) also cap each line at this size or 8190 bytes, the smaller.",
    )
    max_headers: Annotated[int, Field(ge=4, le=1000)] = Field(
        default=100, description="Header lines in one request at most (then 431, close)."
    )
    header_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="A request head must arrive whole within this many seconds of its first "
        "byte (slowloris); then the connection closes. On connections handed to aiohttp, "
        "the next head must arrive within this long after the previous answer.",
    )
    body_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="A request body must arrive whole within this many seconds of its head; "
        "then 408 and the connection closes.",
    )
    idle_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=75.0,
        description="An idle keep-alive connection (no request in progress) closes after this "
        "long (aiohttp's connections: this or header_timeout_s, the shorter).",
    )
    max_connections: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="Open client connections at most (HTTP and WebSocket); one more is "
        "answered 503 and closed at once.",
    )
    max_connections_per_ip: Annotated[int, Field(ge=0)] = Field(
        default=256,
        description="Open connections per client address at most (then 429 and closed); "
        "0: no limit. Behind a reverse proxy every client has the proxy's address: raise "
        "it or set 0.",
    )
    max_pipelined: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=16,
        description="Requests read ahead of the one being answered on one connection; "
        "reading pauses until they are answered.",
    )
    max_json_depth: Annotated[int, Field(ge=2, le=512)] = Field(
        default=64,
        description="Deepest nesting of arrays and objects in a request body (a batch counts "
        "as one level); deeper: -32600.",
    )
    ws_max_message_bytes: Annotated[int, Field(ge=256)] = Field(
        default=1024 * 1024,
        description="Largest WebSocket message: a bigger one is answered -32004 and the "
        "socket stays open; past 4x this the socket is closed with 1009 unread.",
    )
    ws_max_subscriptions: Annotated[int, Field(ge=1)] = Field(
        default=100,
        description="Subscriptions one WebSocket connection holds at most (then -32005).",
    )
    ws_max_subscriptions_per_ip: Annotated[int, Field(ge=0)] = Field(
        default=1000,
        description="Subscriptions all WebSocket connections of one client address hold at "
        "most (then -32005); 0: no limit.",
    )
    ws_max_messages_per_second: Annotated[float, Field(gt=0)] = Field(
        default=200.0,
        description="Sustained WebSocket messages (frames carrying a call or a batch) per "
        "second per connection; a message over it is answered -32005.",
    )
    ws_message_burst: Annotated[int, Field(ge=1)] = Field(
        default=400,
        description="WebSocket messages a connection may send at once above the sustained rate.",
    )
