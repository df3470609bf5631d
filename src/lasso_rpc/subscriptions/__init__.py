"""WebSocket subscriptions: client ⇄ upstream multiplexing, failover, back-fill, dedupe.

::

    client sockets (server/ws.py)         SubscriptionManager            upstream (per provider)
    sub 0xa1.. ─┐                        ┌───────────────────┐
    sub 0xb2.. ─┼─ Share ── sink ───────▶│ Feed (chain, kind, │── WsStream ── UpstreamWs ── provider
    sub 0xc3.. ─┘                        │  filter, pin)      │── PipelineBackfill (HTTP, pipeline)
                                         └───────────────────┘

One ``Feed`` task per (profile, chain, kind, filter, pin) owns ordering, dedupe, failover and
back-fill (``feed.py``); its verdicts come from the pure ledgers (``ledger.py``).
"""

from lasso_rpc.subscriptions.feed import Feed, FeedInfo
from lasso_rpc.subscriptions.frames import FeedSpec, Head, LogEntry, parse_subscribe
from lasso_rpc.subscriptions.ledger import HeadLedger, LogLedger, Verdict
from lasso_rpc.subscriptions.manager import FeedKey, Share, SubscriptionManager
from lasso_rpc.subscriptions.options import SubscriptionOptions
from lasso_rpc.subscriptions.outbox import Outbox

__all__ = [
    "Feed",
    "FeedInfo",
    "FeedKey",
    "FeedSpec",
    "Head",
    "HeadLedger",
    "LogEntry",
    "LogLedger",
    "Outbox",
    "Share",
    "SubscriptionManager",
    "SubscriptionOptions",
    "Verdict",
    "parse_subscribe",
]
