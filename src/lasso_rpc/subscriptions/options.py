"""The knobs of the WebSocket layer: client limits, upstream timeouts, staleness, back-fill."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SubscriptionOptions"]


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """Defaults suit hosted providers and public clients; tests shrink the timeouts.

    Client side (one ``/ws/rpc/...`` socket):

    - ``max_subscriptions``: per connection; one more gets ``-32005`` ("limit exceeded").
    - ``max_message_bytes``: a bigger message gets ``-32004`` and the socket stays open; above
      ``4x`` that the socket is closed with 1009 (message too big) without reading it whole.
    - ``max_in_flight``: unary calls answered concurrently; more stop the reading of the socket.
    - ``send_queue_messages`` / ``send_queue_bytes``: the bounded send queue; a client that lets
      it overflow is closed with 1008 ("client too slow") and its subscriptions are released.
    - ``heartbeat_s``: ping interval (a missing pong closes the socket); ``idle_timeout_s``:
      a socket with no subscription and no message for that long is closed with 1000.

    Upstream side (one multiplexed subscription):

    - staleness: no head for ``max(stale_min_ms, stale_factor * block_time_ms)`` → failover.
    - ``max_backfill_blocks``: a gap longer than this is back-filled only for its newest part;
      the rest is reported as a gap (``subscription.failover`` with ``gap=True``).
    - reconnect: per provider, exponential backoff with jitter between ``reconnect_base_ms`` and
      ``reconnect_max_ms`` after failed or short-lived connections.
    """

    max_subscriptions: int = 100
    max_message_bytes: int = 1024 * 1024
    max_in_flight: int = 64
    send_queue_messages: int = 2048
    send_queue_bytes: int = 8 * 1024 * 1024
    heartbeat_s: float = 30.0
    idle_timeout_s: float = 300.0
    close_timeout_s: float = 2.0

    stale_factor: float = 3.0
    stale_min_ms: int = 3000
    max_backfill_blocks: int = 128
    backfill_concurrency: int = 8
    dedupe_window: int = 4096
    connect_timeout_s: float = 3.0
    subscribe_timeout_s: float = 3.0
    upstream_heartbeat_s: float = 15.0
    upstream_max_message_bytes: int = 64 * 1024 * 1024
    upstream_backlog: int = 10_000
    reconnect_base_ms: float = 100.0
    reconnect_max_ms: float = 5_000.0
    #: A connection that lived shorter than this counts as a failure for the backoff.
    healthy_after_ms: float = 5_000.0

    def stale_ms(self, block_time_ms: int) -> float:
        return max(float(self.stale_min_ms), self.stale_factor * block_time_ms)
