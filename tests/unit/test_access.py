"""Access control without sockets: buckets and quotas on a fake clock, the checks a request
costs, key lookup, and the gate's answers (and what it does when the shared store is down)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from lasso_rpc.access.buckets import BUCKET, WINDOW, Check, MemoryBuckets, Verdict
from lasso_rpc.access.gate import AccessGate, build_gate
from lasso_rpc.access.keys import KeyRing, mask_path_key, split_path_key
from lasso_rpc.access.limits import checks_for, describe_check
from lasso_rpc.access.stores import LocalStore
from lasso_rpc.clock import FakeClock
from lasso_rpc.config import load_config_text
from lasso_rpc.config.shared import AccessConfig, ApiKeyConfig, RateLimitConfig
from lasso_rpc.errors import Forbidden, LassoError, RateLimited, Unauthorized
from lasso_rpc.server.http1_head import RequestHead, parse_head


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = FakeClock()
    b = MemoryBuckets(clock)
    c = [Check("k", BUCKET, 10.0, 3.0, 1)]  # 10/s, burst 3
    assert [b.take(c).ok for _ in range(4)] == [True, True, True, False]
    refused = b.take(c)
    assert refused.retry_after_s == pytest.approx(0.1)
    clock.advance(100)
    assert b.take(c).ok and not b.take(c).ok
    clock.advance(10_000)  # a long pause saves up only the burst
    assert [b.take(c).ok for _ in range(4)] == [True, True, True, False]
    assert b.take([Check("k", BUCKET, 10.0, 3.0, 5)]).retry_after_s == float("inf")


def test_a_quota_counts_per_window_of_the_wall_clock() -> None:
    clock = FakeClock(wall0=1_700_000_000.0)  # 20 s into a minute (UTC)
    b = MemoryBuckets(clock)
    q = [Check("q", WINDOW, 60.0, 2.0, 1)]  # 2 a minute
    assert [b.take(q).ok for _ in range(3)] == [True, True, False]
    assert b.take(q).retry_after_s == pytest.approx(40.0)  # the minute ends at +40 s
    clock.advance(40_000)
    assert b.take(q).ok


def test_checks_pass_or_fail_together() -> None:
    b = MemoryBuckets(FakeClock())
    both = [Check("a", BUCKET, 1.0, 5.0, 1), Check("b", BUCKET, 1.0, 1.0, 1)]
    assert b.take(both).ok
    refused = b.take(both)
    assert not refused.ok and refused.failed == 1
    # "a" was not charged by the refused request: four more singles pass
    assert [b.take([both[0]]).ok for _ in range(5)] == [True, True, True, True, False]


def test_the_least_recently_used_buckets_are_forgotten_first() -> None:
    b = MemoryBuckets(FakeClock(), max_keys=2)
    for key in ("a", "b", "c"):
        b.take([Check(key, BUCKET, 1.0, 1.0, 1)])
    assert len(b) == 2


def _key(**kw: object) -> ApiKeyConfig:
    return ApiKeyConfig.model_validate({"key": "secret-key-1", "name": "acme", **kw})


def test_a_request_costs_one_token_per_call_and_rules_count_their_calls() -> None:
    ring = KeyRing(
        [
            _key(
                rate_limit={"rps": 5},
                quota={"requests": 100, "period": "hour"},
                methods=[{"methods": ["eth_getLogs", "trace_*"], "rate_limit": {"rps": 1}}],
            )
        ]
    )
    client = ring.find("secret-key-1")
    assert client is not None and client.name == "acme"
    checks = checks_for(client, "10.0.0.1", ["eth_getLogs", "eth_call", "trace_block"], None)
    assert [(c.key, c.cost) for c in checks] == [
        ("k:acme", 3),
        ("q:acme:3600", 3),
        ("k:acme:m0", 2),
    ]
    assert [describe_check(c) for c in checks] == ["rate_limit", "quota", "methods rate_limit"]
    assert checks_for(client, "x", ["eth_call"], None)[2:] == []  # no rule matched
    anon = ring.find("nope")
    assert anon is None
    from lasso_rpc.access.keys import ANONYMOUS

    per_ip = RateLimitConfig(rps=2)
    assert checks_for(ANONYMOUS, "10.0.0.1", ["a", "b"], per_ip) == [
        Check("ip:10.0.0.1", BUCKET, 2.0, 2.0, 2)
    ]
    assert checks_for(ANONYMOUS, "10.0.0.1", ["a"], None) == []


def test_keys_match_exactly_and_never_show() -> None:
    ring = KeyRing([_key(), ApiKeyConfig(key="another-key-2")])
    assert ring.find("secret-key-1") is not None
    for wrong in ("secret-key-", "secret-key-11", "SECRET-KEY-1", ""):
        assert ring.find(wrong) is None
    other = ring.find("another-key-2")
    assert other is not None and other.name.startswith("key-") and len(other.name) == 12
    assert "secret" not in repr(ring.find("secret-key-1"))
    assert split_path_key("key/abc/fastest/eth") == ("fastest/eth", "abc")
    assert split_path_key("fastest/eth") == ("fastest/eth", None)
    assert mask_path_key("key/abc/eth") == "key/***/eth"


def _gate(access: dict[str, object], store: object | None = None) -> AccessGate:
    clock = FakeClock()
    cfg = AccessConfig.model_validate(access)
    return AccessGate(cfg, store or LocalStore(MemoryBuckets(clock)), clock=clock)  # type: ignore[arg-type]


async def test_the_gate_identifies_keys_and_guards_profiles() -> None:
    gate = _gate({"keys": [{"key": "secret-key-1", "name": "acme", "profile": "p1"}]})
    with pytest.raises(Unauthorized, match="API key is required"):
        await gate.identify(None)
    with pytest.raises(Unauthorized, match="unknown API key"):
        await gate.identify("secret-key-2")
    client = await gate.identify("secret-key-1")
    assert gate.profile_for(client, None) == "p1"
    assert gate.profile_for(client, "p1") == "p1"
    with pytest.raises(Forbidden):
        gate.profile_for(client, "p2")
    assert gate.counts["unknown", "unauthorized"] == 1
    assert gate.counts["anonymous", "unauthorized"] == 1
    assert gate.counts["acme", "forbidden"] == 1


async def test_over_a_limit_the_gate_says_which_and_when_to_retry() -> None:
    gate = _gate({"keys": [{"key": "secret-key-1", "name": "acme", "rate_limit": {"rps": 1}}]})
    client = await gate.identify("secret-key-1")
    await gate.check(client, "ip", ["eth_call"])
    with pytest.raises(RateLimited) as exc:
        await gate.check(client, "ip", ["eth_call"])
    assert exc.value.retry_after_s == pytest.approx(1.0)
    assert exc.value.data == {"limit": "rate_limit", "retry_after_s": 1.0}
    assert gate.limited["acme", "rate_limit"] == 1


class DownStore:
    kind = "redis"

    async def take(self, checks: Sequence[Check]) -> Verdict:
        raise LassoError("redis is down")

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(("mode", "passed"), [("open", 5), ("local", 2), ("closed", 0)])
async def test_when_the_shared_store_is_down_the_configured_mode_decides(
    mode: str, passed: int
) -> None:
    gate = _gate({"per_ip": {"rps": 1, "burst": 2}, "on_state_down": mode}, DownStore())
    client = await gate.identify(None)
    ok = 0
    for _ in range(5):
        try:
            await gate.check(client, "10.0.0.9", ["eth_call"])
            ok += 1
        except RateLimited:
            pass
    assert ok == passed
    assert gate.fallbacks[mode] == 5


def test_the_older_server_rate_limit_is_the_per_ip_limit() -> None:
    base = "name: T\nslug: t\nchains: {e: {chain_id: 1, providers: [{id: a, url: 'http://x'}]}}\n"
    cfg = load_config_text([("t.yaml", base + "server: {rate_limit: {requests_per_second: 3}}\n")])
    gate = build_gate(cfg, clock=FakeClock())
    assert gate is not None and gate.per_ip == RateLimitConfig(rps=3, burst=100)
    assert build_gate(load_config_text([("t.yaml", base)]), clock=FakeClock()) is None


def test_the_fast_front_reads_the_key_from_either_header() -> None:
    def head(extra: bytes) -> RequestHead:
        raw = b"POST /rpc/eth HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" + extra + b"\r\n{}"
        h = parse_head(raw)
        assert isinstance(h, RequestHead)
        return h

    assert head(b"X-Lasso-Key: k1\r\n").key == "k1"
    assert head(b"Authorization: Bearer k2\r\n").key == "k2"
    assert head(b"Authorization: Basic eHg=\r\n").key is None
    assert head(b"Authorization: Bearer k2\r\nX-Lasso-Key: k1\r\n").key == "k1"
    assert head(b"").key is None
