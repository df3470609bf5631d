"""Config errors as a user needs them: once, at the path written, in plain words, all together."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError
from typer.testing import CliRunner

from lasso_rpc.config import load_config, load_config_text
from lasso_rpc.config.loader import secrets_of
from lasso_rpc.config.messages import validation_errors
from lasso_rpc.errors import ConfigError

ONE_PROVIDER = "providers: [{id: a, url: 'http://127.0.0.1:1'}]"


def errors_of(text: str, env: dict[str, str] | None = None, name: str = "x.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text([(name, text)], env=env or {})
    return info.value.errors


def profile(chains: str, top: str = "") -> str:
    return f"name: X\nslug: x\n{top}chains:\n{chains}"


def test_unknown_key_suggests_the_closest_known_key() -> None:
    errs = errors_of(
        profile("  ethereum:\n    chain_id: 1\n    providers:\n      - {id: a, urll: 'http://x'}\n")
    )
    # the misspelt key is the whole story: no extra "url: required" beside it
    assert errs == ["chains.ethereum.providers[0].urll: unknown key; did you mean 'url'?"]


@pytest.mark.parametrize(
    ("written", "meant"),
    [("chain", "chains"), ("routng", "routing"), ("sever", "server"), ("Slug", "slug")],
)
def test_did_you_mean_at_the_top_level(written: str, meant: str) -> None:
    text = profile(f"  e: {{chain_id: 1, {ONE_PROVIDER}}}\n", top=f"{written}: {{}}\n")
    errs = errors_of(text)
    assert f"{written}: unknown key; did you mean {meant!r}?" in errs


def test_other_spellings_of_a_key_are_recognised() -> None:
    text = profile(f"  e: {{chain_id: 1, {ONE_PROVIDER}, routing: {{max-attempts: 2}}}}\n")
    assert errors_of(text) == [
        "chains.e.routing.max-attempts: unknown key; did you mean 'max_attempts'?"
    ]


def test_an_unknown_key_with_no_near_miss_lists_the_known_keys() -> None:
    text = profile(f"  e: {{chain_id: 1, {ONE_PROVIDER}}}\n", top="routing: {hedge: {zzz: 1}}\n")
    assert errors_of(text) == [
        "routing.hedge.zzz: unknown key (known keys: enabled, after, max_extra, min_delay_ms,"
        " median_factor, budget_percent, min_per_second, budget_window_ms)"
    ]


def test_a_profile_routing_error_is_reported_once_where_it_was_written() -> None:
    chains = "".join(f"  c{i}: {{chain_id: {i}, {ONE_PROVIDER}}}\n" for i in range(1, 4))
    chains += f"  c9:\n    chain_id: 9\n    routing: {{max_attempts: 0}}\n    {ONE_PROVIDER}\n"
    errs = errors_of(profile(chains, top="routing: {max_attempts: 0, retries: 3}\n"))
    assert errs == [
        "routing.max_attempts: must be an integer from 1 to 10 (got 0)",
        "routing.retries: unknown key (known keys: default_strategy, request_timeout_ms, "
        "attempt_timeout_ms, max_attempts, hedge, breaker, ejection, max_lag_blocks, "
        "max_batch_size, max_body_bytes, max_response_bytes, head_poll_ms, shaping)",
        "chains.c9.routing.max_attempts: must be an integer from 1 to 10 (got 0)",
    ]


BAD_EVERYWHERE = """
name: X
slug: x
routing: {default_strategy: fastestest, hedge: {after: p33, max_extra: 9}, max_lag_blocks: -1}
chains:
  ethereum:
    chain_id: abc
    block_time_ms: 1.5
    providers:
      - {id: a, url: "ftp://nope", weight: 0, methods: {deny: trace_*}}
      - {id: a, url: "http://ok", pool_size: lots, archive: maybe}
      - {id: "b c", url: "http://ok", error_overrides: {-32000: bogus}}
server: {port: 99999, log_level: loud, front: fastest, rate_limit: {requests_per_second: 0}}
"""


def test_messages_name_no_pydantic_internals() -> None:
    errs = errors_of(BAD_EVERYWHERE)
    text = "\n".join(errs)
    for internal in (
        "constrained",
        "literal",
        "Input should",
        "input_type",
        "input_value",
        "Extra inputs",
        "Field required",
        "pydantic",
        "Value error",
        "[type=",
    ):
        assert internal not in text, f"{internal!r} leaked into:\n{text}"
    assert errs == [
        "routing.default_strategy: must be one of fastest, load-balanced (alias round-robin), "
        "latency-weighted, priority; did you mean 'fastest'?",
        "routing.hedge.after: must be one of p50, p75, p90, p95, p99 or an integer >= 1",
        "routing.hedge.max_extra: must be an integer from 0 to 3 (got 9)",
        "routing.max_lag_blocks: must be an integer >= 0 (got -1)",
        "chains.ethereum.chain_id: must be an integer >= 1",
        "chains.ethereum.block_time_ms: must be an integer >= 1 (got 1.5)",
        "chains.ethereum.providers[0].url: must be an http:// or https:// URL",
        "chains.ethereum.providers[0].weight: must be a number > 0 (got 0)",
        "chains.ethereum.providers[0].methods.deny: must be a list of strings",
        "chains.ethereum.providers[1].id: duplicate provider id 'a' (also providers[0])",
        "chains.ethereum.providers[1].pool_size: must be an integer from 1 to 4096",
        "chains.ethereum.providers[1].archive: must be true or false",
        "chains.ethereum.providers[2].id: must be a name of letters, digits, '_', '.' and '-', "
        "starting with a letter or digit",
        "chains.ethereum.providers[2].error_overrides.-32000: must be one of client, provider, "
        "rate_limited, capability, lagging",
        "server.port: must be an integer from 0 to 65535 (got 99999)",
        "server.log_level: must be one of debug, info, warning, error",
        "server.front: must be one of fast, aiohttp; did you mean 'fast'?",
        "server.rate_limit.requests_per_second: must be a number > 0 (got 0)",
    ]


def test_a_duplicate_provider_id_is_reported_with_other_errors() -> None:
    errs = errors_of(
        profile(
            "  eth:\n    chain_id: 0\n    providers:\n"
            "      - {id: alpha, url: 'http://x', weight: -1}\n"
            "      - {id: alpha, url: 'http://y'}\n"
        )
    )
    assert "chains.eth.providers[1].id: duplicate provider id 'alpha' (also providers[0])" in errs
    assert len(errs) == 3


def test_chain_name_alias_and_id_clashes_are_reported_with_other_errors() -> None:
    errs = errors_of(
        profile(
            f"  eth: {{chain_id: 1, aliases: [main], {ONE_PROVIDER}}}\n"
            f"  main: {{chain_id: 1, block_time_ms: 0, {ONE_PROVIDER}}}\n"
        )
    )
    assert errs == [
        "chains.main: 'main' is already a name, alias or id of chain 'eth'",
        "chains.main.chain_id: '1' is already a name, alias or id of chain 'eth'",
        "chains.main.block_time_ms: must be an integer >= 1 (got 0)",
    ]


def test_yaml_syntax_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: X\nslug: x\nchains:\n  eth: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (err,) = info.value.errors
    assert err.startswith("broken.yaml:5:1: invalid YAML: did not find expected ',' or ']'")
    assert "(while parsing a flow sequence at line 4, column 8)" in err
    assert "<unicode string>" not in err


def test_duplicate_yaml_keys_are_errors_with_both_lines() -> None:
    text = profile(
        f"  e: {{chain_id: 1, {ONE_PROVIDER}}}\n",
        top="routing:\n  max_attempts: 2\n  max_attempts: 5\n",
    )
    assert errors_of(text, name="p.yaml") == [
        "p.yaml:5:3: duplicate key 'max_attempts' (first at line 4; only one counts)"
    ]


def test_an_unresolved_placeholder_is_the_only_error_at_its_path() -> None:
    text = profile(f"  e: {{chain_id: 1, {ONE_PROVIDER}}}\n", top="server: {port: '${PORT}'}\n")
    assert errors_of(text) == ["server.port: unresolved placeholder ${PORT}"]
    cfg = load_config_text([("x", text)], env={"PORT": "4100"})
    assert cfg.server.port == 4100


def test_errors_of_several_files_name_their_file() -> None:
    good = profile(f"  e: {{chain_id: 1, {ONE_PROVIDER}}}\n").replace("slug: x", "slug: a")
    with pytest.raises(ConfigError) as info:
        load_config_text(
            [
                ("a.yaml", good + "server: {port: 4000}\n"),
                ("b.yaml", good.replace("slug: a", "slug: b") + "server: {port: 4001}\n"),
                ("c.yaml", "name: C\nslug: c\nchainz: {}\n"),
            ],
            env={},
        )
    assert info.value.errors == [
        "b.yaml: server: already defined in a.yaml",
        "c.yaml: chainz: unknown key; did you mean 'chains'?",
    ]


def test_error_overrides_take_numeric_codes_and_message_rules() -> None:
    text = profile(
        "  e:\n    chain_id: 1\n    providers:\n"
        "      - id: a\n        url: http://x\n"
        "        error_overrides: {-32000: client, '-32005': provider, 'msg:capacity': rate_limited}\n"
    )
    cfg = load_config_text([("x", text)], env={})
    overrides = cfg.profiles["x"].chains["e"].providers[0].error_overrides
    assert overrides == {"-32000": "client", "-32005": "provider", "msg:capacity": "rate_limited"}
    errs = errors_of(text.replace("-32000", "oops"))
    assert errs == [
        "chains.e.providers[0].error_overrides: key 'oops' must be a JSON-RPC error code "
        "(-32000) or msg:<text>"
    ]


def test_chain_routing_overrides_merge_key_by_key_with_the_profile() -> None:
    text = profile(
        f"  a: {{chain_id: 1, {ONE_PROVIDER}, routing: {{hedge: {{max_extra: 2}}}}}}\n"
        f"  b: {{chain_id: 2, {ONE_PROVIDER}, routing: }}\n",
        top="routing: {default_strategy: round-robin, hedge: {after: 250, enabled: false}}\n",
    )
    cfg = load_config_text([("x", text)], env={})
    a, b = cfg.profiles["x"].chains["a"].routing, cfg.profiles["x"].chains["b"].routing
    assert (a.hedge.after, a.hedge.enabled, a.hedge.max_extra) == (250, False, 2)
    assert a.default_strategy == b.default_strategy == "load-balanced"
    assert b.hedge.max_extra == 1 and b.hedge.after == 250


def test_check_config_prints_every_error_and_the_count(tmp_path: Path) -> None:
    from lasso_rpc.cli import app

    path = tmp_path / "bad.yaml"
    path.write_text(BAD_EVERYWHERE)
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 1
    assert "chains.ethereum.providers[1].id: duplicate provider id 'a'" in result.output
    assert "18 error(s)" in result.output


class _Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ratio: float = 0.1


class _WithUnion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hedge: bool | _Budget = True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"ratoi": 1}, [(("hedge", "ratoi"), "unknown key; did you mean 'ratio'?")]),
        (5, [(("hedge",), "must be true or false or a mapping (got 5)")]),
    ],
)
def test_a_block_that_may_also_be_a_flag_reports_the_branch_written(
    value: object, expected: list[tuple[tuple[str, ...], str]]
) -> None:
    # blocks to come (hedge budget, ejection) may take `true` or a mapping: no branch tags
    with pytest.raises(ValidationError) as info:
        _WithUnion.model_validate({"hedge": value})
    assert validation_errors(_WithUnion, info.value) == expected


def test_a_short_substituted_value_is_not_masked_as_a_secret() -> None:
    """A port from the environment is no credential: masking "4101" would rewrite log
    timestamps; a key-sized value is masked."""
    text = profile(f"  e: {{chain_id: 1, {ONE_PROVIDER}}}\n", top="server: {port: '${PORT}'}\n")
    text = text.replace("http://", "http://${KEY}@", 1)
    load_config_text([("x", text)], env={"PORT": "4101", "KEY": "k3y-abcdefgh"})
    assert "4101" not in secrets_of()
    assert "k3y-abcdefgh" in secrets_of()
