"""`lasso-rpc mock` options → knobs per provider; `--version`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lasso_rpc.battle.mock_cli import fleet_knobs, parse_override
from lasso_rpc.battle.providers.spec import FailureMode, Knobs
from lasso_rpc.cli import app

NONE = {"latency_ms": 0.0, "jitter_ms": 0.0, "failure_mode": "none", "error_rate": None}


def test_common_options_then_one_provider_changed() -> None:
    knobs = fleet_knobs(
        3,
        common={**NONE, "latency_ms": 30.0},
        overrides=["gamma:failure_mode=http_500,error_rate=0.25", "beta:latency_ms=200"],
    )
    assert list(knobs) == ["alpha", "beta", "gamma"]
    assert knobs["alpha"] == Knobs(latency_ms=30.0)
    assert knobs["beta"] == Knobs(latency_ms=200.0)
    assert knobs["gamma"] == Knobs(
        latency_ms=30.0, failure_mode=FailureMode.HTTP_500, error_rate=0.25
    )
    assert parse_override("alpha:unsupported_methods=eth_getLogs+trace_block,lag_blocks=3") == (
        "alpha",
        {"unsupported_methods": frozenset({"eth_getLogs", "trace_block"}), "lag_blocks": 3},
    )


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("beta", "expected ID:knob=value"),
        ("beta:latency", "is not knob=value"),
        ("beta:speed=3", "unknown knob 'speed'"),
        ("omega:latency_ms=3", "no provider 'omega'"),
        ("beta:failure_mode=explode", "explode"),
        ("beta:error_rate=2", "error_rate"),
    ],
)
def test_bad_overrides_say_what_is_wrong(override: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        fleet_knobs(2, common=NONE, overrides=[override])


def test_the_cli_rejects_a_bad_failure_mode_before_starting() -> None:
    out = CliRunner().invoke(app, ["mock", "--failure-mode", "explode"], env={"COLUMNS": "200"})
    assert out.exit_code == 2 and "explode" in out.output


def test_version() -> None:
    out = CliRunner().invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.startswith("lasso-rpc 0.")
