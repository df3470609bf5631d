"""Config: env substitution, per-chain routing overrides, every error with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasso_rpc.config import load_config, load_config_text
from lasso_rpc.errors import ConfigError
from lasso_rpc.observability.redact import mask_url, redact

GOOD = """
name: Local
slug: local
routing:
  default_strategy: fastest
  max_attempts: 4
  breaker: {failure_threshold: 3}
chains:
  ethereum:
    chain_id: 1
    aliases: [eth, mainnet]
    routing: {max_attempts: 2}
    providers:
      - id: alpha
        url: https://rpc.example/v2/${ALPHA_KEY}
        ws_url: wss://rpc.example/ws/${ALPHA_KEY}
        priority: 1
        methods: {deny: ["trace_*"]}
      - id: beta
        url: http://127.0.0.1:8545
  base:
    chain_id: 8453
    providers:
      - {id: one, url: "http://127.0.0.1:9000/${MISSING:-fallback}"}
"""


def test_good_config_merges_routing_and_substitutes_env() -> None:
    cfg = load_config_text([("local.yaml", GOOD)], env={"ALPHA_KEY": "sekret-123"})
    prof = cfg.profiles["local"]
    eth = prof.chains["ethereum"]
    assert eth.providers[0].url == "https://rpc.example/v2/sekret-123"
    assert eth.routing.max_attempts == 2  # chain override
    assert eth.routing.default_strategy == "fastest"  # profile default
    assert eth.routing.breaker.failure_threshold == 3
    assert prof.chains["base"].routing.max_attempts == 4
    assert prof.chains["base"].providers[0].url.endswith("/fallback")
    assert not eth.providers[0].methods.permits("trace_block")
    assert eth.providers[0].methods.permits("eth_call")
    # substituted values are secrets from now on
    assert "sekret-123" not in redact("upstream said: key sekret-123 is invalid")


def test_every_error_is_listed_with_its_path() -> None:
    bad = """
name: X
slug: x
routing: {max_attempts: 0, default_strategy: fastestest}
chains:
  ethereum:
    chain_id: -1
    providers:
      - {id: a, url: "ftp://nope"}
      - {id: a, url: "http://ok"}
      - {id: c, url: "http://ok/${NOPE_UNSET_VAR}", weight: 0}
"""
    with pytest.raises(ConfigError) as ei:
        load_config_text([("x.yaml", bad)], env={})
    errs = ei.value.errors
    text = "\n".join(errs)
    assert "chains.ethereum.providers[2].url: unresolved placeholder ${NOPE_UNSET_VAR}" in text
    assert any(e.startswith("chains.ethereum.providers[0].url:") for e in errs)
    assert any(e.startswith("chains.ethereum.chain_id:") for e in errs)
    assert any(e.startswith("chains.ethereum.providers[2].weight:") for e in errs)
    assert any(e.startswith("routing.max_attempts:") for e in errs) or any(
        "max_attempts" in e for e in errs
    )


def test_directory_of_profiles(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("${ALPHA_KEY}", "k"))
    (tmp_path / "b.yaml").write_text(
        "name: B\nslug: b\nchains:\n  eth:\n    chain_id: 1\n    providers: [{id: p, url: 'http://x'}]\n"
    )
    cfg = load_config(tmp_path)
    assert set(cfg.profiles) == {"local", "b"}


def test_duplicate_slug_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("${ALPHA_KEY}", "k"))
    (tmp_path / "b.yaml").write_text(GOOD.replace("${ALPHA_KEY}", "k"))
    with pytest.raises(ConfigError, match="duplicate profile slug"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_control_api_needs_a_token() -> None:
    text = GOOD.replace("${ALPHA_KEY}", "k") + "server: {control: {enabled: true}}\n"
    with pytest.raises(ConfigError, match=r"server\.control"):
        load_config_text([("x", text)])


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://eth-mainnet.g.alchemy.com/v2/abcdef123", "https://eth-mainnet.g.alchemy.com/***"),
        ("https://user:pw@host:8443/x?apikey=1", "https://host:8443/***"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("wss://mainnet.infura.io/ws/v3/KEY", "wss://mainnet.infura.io/***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert redact(f"failed to reach {url} now") == f"failed to reach {masked} now"
