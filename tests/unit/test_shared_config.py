"""The ``state:`` and ``access:`` blocks as a user writes them."""

from __future__ import annotations

import pytest

from lasso_rpc.config import load_config_text
from lasso_rpc.errors import ConfigError

BASE = """
name: T
slug: default
chains:
  ethereum:
    chain_id: 1
    providers: [{id: a, url: "http://127.0.0.1:1"}]
"""


def _load(extra: str) -> object:
    return load_config_text([("t.yaml", BASE + extra)], env={"K1": "k1-secret-value"})


def test_defaults_are_memory_and_no_access() -> None:
    cfg = load_config_text([("t.yaml", BASE)])
    assert cfg.state.backend == "memory"
    assert cfg.access is None


def test_redis_backend_needs_a_redis_url() -> None:
    with pytest.raises(ConfigError) as exc:
        _load("state: {backend: redis}\n")
    assert any("state" in e and "url is required" in e for e in exc.value.errors)
    with pytest.raises(ConfigError) as exc:
        _load("state: {backend: redis, url: 'http://x'}\n")
    assert any("redis://" in e for e in exc.value.errors)
    cfg = _load("state: {backend: redis, url: 'unix:///tmp/r.sock'}\n")
    assert cfg.state.url == "unix:///tmp/r.sock"  # type: ignore[attr-defined]


def test_access_keys_and_their_defaults() -> None:
    cfg = _load(
        "access:\n  keys:\n    - {key: '${K1}', rate_limit: {rps: 2.5}, quota: {requests: 5}}\n"
    )
    access = cfg.access  # type: ignore[attr-defined]
    assert access.keys[0].key == "k1-secret-value"
    assert access.keys[0].rate_limit.capacity == 3  # burst defaults to rps, rounded up
    assert access.keys[0].quota.period_s == 86_400
    assert access.allows_anonymous is False  # keys configured: a key is required
    assert _load("access: {per_ip: {rps: 5}}\n").access.allows_anonymous is True  # type: ignore[attr-defined]


def test_access_errors_name_the_key_path_and_never_the_key() -> None:
    with pytest.raises(ConfigError) as exc:
        _load(
            "access:\n  keys:\n    - {key: '${K1}', profile: nope}\n"
            "    - {key: '${K1}'}\n    - {key: short}\n"
        )
    text = "\n".join(exc.value.errors)
    assert "access.keys[2].key: must be a string of at least 8 characters" in text
    assert "k1-secret-value" not in text
    with pytest.raises(ConfigError) as exc:
        _load("access:\n  keys:\n    - {key: '${K1}'}\n    - {key: '${K1}'}\n")
    text = "\n".join(exc.value.errors)
    assert "the same key is given twice" in text and "k1-secret-value" not in text
    with pytest.raises(ConfigError) as exc:
        _load("access:\n  keys:\n    - {key: '${K1}', profile: nope}\n")
    assert exc.value.errors == ["access.keys[0].profile: unknown profile 'nope'; known: default"]


def test_a_method_rule_must_limit_something() -> None:
    with pytest.raises(ConfigError) as exc:
        _load("access:\n  keys:\n    - {key: '${K1}', methods: [{methods: [eth_getLogs]}]}\n")
    assert any("methods[0]: give rate_limit, quota or both" in e for e in exc.value.errors)


def test_the_nodes_example_config_loads() -> None:
    from pathlib import Path

    from lasso_rpc.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples/configs/nodes.yaml")
    assert cfg.state.backend == "redis"
    assert cfg.access is not None and cfg.access.keys[0].name == "acme"
