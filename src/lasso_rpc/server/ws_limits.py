"""WebSocket client limits shared by every socket of the endpoint (``server.limits.ws_*``).

Per connection: a token bucket of messages (``ws_max_messages_per_second`` sustained,
``ws_message_burst`` at once); a message over it is answered -32005 and not read further.
Per client address: subscriptions held by all its sockets. Message size and subscriptions per
connection are ``SubscriptionOptions`` (enforced in ``ws.py``). Every refusal is published as a
``limit.rejected`` event.
"""

from __future__ import annotations

from collections.abc import Callable

from lasso_rpc.clock import Clock
from lasso_rpc.config.limits import ServerLimits
from lasso_rpc.observability.events import Event, LimitRejected

__all__ = ["MessageBucket", "WsLimits"]


class MessageBucket:
    """Messages one socket may still send now: refilled at ``rate`` per second up to ``burst``."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self._rate = rate / 1000.0  # per ms
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.now_ms()

    def take(self) -> bool:
        now = self._clock.now_ms()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def __repr__(self) -> str:
        return f"MessageBucket(tokens={self._tokens:.1f}/{self._burst:.0f})"


class WsLimits:
    """The endpoint's view of ``server.limits`` for WebSocket clients."""

    def __init__(
        self, limits: ServerLimits, clock: Clock, publish: Callable[[Event], None]
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._publish = publish
        self._subs_per_ip: dict[str, int] = {}

    def bucket(self) -> MessageBucket:
        return MessageBucket(
            self.limits.ws_max_messages_per_second, self.limits.ws_message_burst, self._clock
        )

    def may_subscribe(self, peer: str) -> bool:
        cap = self.limits.ws_max_subscriptions_per_ip
        return cap == 0 or self._subs_per_ip.get(peer, 0) < cap

    def subscribed(self, peer: str, n: int = 1) -> None:
        held = self._subs_per_ip.get(peer, 0) + n
        if held > 0:
            self._subs_per_ip[peer] = held
        else:
            self._subs_per_ip.pop(peer, None)

    def subscriptions_of(self, peer: str) -> int:
        return self._subs_per_ip.get(peer, 0)

    def rejected(self, limit: str, peer: str, detail: str = "") -> None:
        self._publish(LimitRejected(ts=self._clock.wall_s(), limit=limit, peer=peer, detail=detail))

    def __repr__(self) -> str:
        return f"WsLimits(addresses={len(self._subs_per_ip)})"
