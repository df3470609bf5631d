"""Readiness on a fake clock: a provider is usable only after an answered health poll within its
window; a failed poll, a cordon or an open breaker takes it out at once, with the reason."""

from __future__ import annotations

import random

from lasso_rpc.clock import FakeClock
from lasso_rpc.config.models import ProviderConfig, RoutingConfig
from lasso_rpc.errors import ConnectError
from lasso_rpc.transport.base import UpstreamResponse
from lasso_rpc.upstream.heads import HeadTracker
from lasso_rpc.upstream.probe import health_window_ms, probe_timeout_ms
from lasso_rpc.upstream.provider import ProviderRuntime
from lasso_rpc.upstream.readiness import chain_readiness

POLL_MS = 1000
ROUTING = RoutingConfig(head_poll_ms=POLL_MS)


class _Scripted:
    """An upstream that answers eth_blockNumber, or refuses connections when ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.head = 0x10

    async def post(self, body: bytes, *, timeout_s: float) -> UpstreamResponse:
        if self.down:
            raise ConnectError("http://127.0.0.1:1/key123: connect failed: [Errno 111] refused")
        return UpstreamResponse(200, b'{"jsonrpc":"2.0","id":0,"result":"0x%x"}' % self.head)

    async def aclose(self) -> None:
        return None


def _chain(clock: FakeClock, *ids: str) -> tuple[HeadTracker, dict[str, ProviderRuntime]]:
    providers = {
        pid: ProviderRuntime(
            "eth",
            ProviderConfig(id=pid, url=f"http://{pid}.example/secretkey"),
            ROUTING,
            _Scripted(),
            clock=clock,
            rng=random.Random(1),
        )
        for pid in ids
    }
    tracker = HeadTracker(
        "eth", providers, poll_ms=POLL_MS, publish_health=lambda p: None, clock=clock
    )
    return tracker, providers


def _ready(clock: FakeClock, providers: dict[str, ProviderRuntime]):  # type: ignore[no-untyped-def]
    return chain_readiness(
        "local", "eth", providers.values(), poll_ms=POLL_MS, now_ms=clock.now_ms()
    )


def _transport(p: ProviderRuntime) -> _Scripted:
    assert isinstance(p.transport, _Scripted)
    return p.transport


def test_window_covers_a_round_held_by_a_hung_provider() -> None:
    assert probe_timeout_ms(1000) == 1000 and probe_timeout_ms(20_000) == 5000
    assert health_window_ms(1000) == 3000
    assert health_window_ms(20_000) == 45_000


async def test_not_ready_before_the_first_answered_poll() -> None:
    clock = FakeClock()
    tracker, providers = _chain(clock, "alpha")
    r = _ready(clock, providers)
    assert not r.ready and r.usable == []
    assert r.providers[0].reason == "no health poll answered yet"
    assert r.reason is not None and "local/eth" in r.reason and "within 3 s" in r.reason
    await tracker.poll_round()
    r = _ready(clock, providers)
    assert r.ready and r.usable == ["alpha"] and r.reason is None
    assert r.providers[0].reason == "answered a health poll 0.0 s ago"


async def test_a_provider_refusing_connections_is_never_usable() -> None:
    clock = FakeClock()
    tracker, providers = _chain(clock, "dead", "alive")
    _transport(providers["dead"]).down = True
    await tracker.poll_round()
    r = _ready(clock, providers)
    assert r.usable == ["alive"]
    dead = r.providers[0]
    assert not dead.usable and dead.reason.startswith("health poll failed, last 0.0 s ago")
    assert (
        "refused" in dead.reason and "secretkey" not in dead.reason and "key123" not in dead.reason
    )
    _transport(providers["alive"]).down = True
    clock.advance(POLL_MS)
    await tracker.poll_round()
    r = _ready(clock, providers)
    assert not r.ready
    assert r.reason is not None and "dead: health 2 polls failed" in r.reason


async def test_the_first_failed_poll_after_answers_takes_it_out() -> None:
    clock = FakeClock()
    tracker, providers = _chain(clock, "alpha")
    await tracker.poll_round()
    assert _ready(clock, providers).ready
    _transport(providers["alpha"]).down = True
    clock.advance(POLL_MS)
    await tracker.poll_round()  # one interval later: out, with the reason
    assert not _ready(clock, providers).ready
    _transport(providers["alpha"]).down = False
    clock.advance(POLL_MS)
    await tracker.poll_round()
    assert _ready(clock, providers).ready


async def test_an_answer_older_than_the_window_does_not_count() -> None:
    clock = FakeClock()
    tracker, providers = _chain(clock, "alpha")
    await tracker.poll_round()
    clock.advance(health_window_ms(POLL_MS))
    assert _ready(clock, providers).ready  # exactly at the edge: still inside
    clock.advance(1)
    r = _ready(clock, providers)
    assert not r.ready and r.providers[0].reason == "last answered health poll 3.0 s ago"


async def test_cordon_and_open_breaker_say_so() -> None:
    clock = FakeClock()
    tracker, providers = _chain(clock, "alpha", "beta")
    await tracker.poll_round()
    providers["alpha"].cordoned = True
    providers["beta"].breaker.force_open("control api")
    r = _ready(clock, providers)
    assert not r.ready
    assert [p.reason for p in r.providers] == [
        "cordoned",
        "breaker open (forced open: control api)",
    ]
    assert tracker.rounds == 1
