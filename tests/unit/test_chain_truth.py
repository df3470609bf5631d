"""Answers checked against the simulated chain's truth, the reorg chaos action, and the
scenario's cache options."""

from __future__ import annotations

import time

import orjson
import pytest

from lasso_rpc.battle.chaos.basic_context import BasicChaosContext
from lasso_rpc.battle.chaos.parse import chaos_from_dict
from lasso_rpc.battle.measure.staleness import STALE_GRACE_S, ChainTruth, TruthFigures
from lasso_rpc.battle.providers.chain import SimulatedChain
from lasso_rpc.battle.providers.mock import MockProvider
from lasso_rpc.battle.spec import ScenarioSpec
from lasso_rpc.clock import FakeClock


def _body(result: object) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": result, "lasso_meta": {}})


async def test_an_answer_naming_a_replaced_block_is_stale_only_after_the_reorg() -> None:
    chain = SimulatedChain(initial_blocks=20, block_time_ms=0, clock=FakeClock())
    t0 = time.monotonic() - 100.0  # run time is now about 100 s
    truth = ChainTruth(chain, t0, check=True)
    old = chain.block(19)
    assert old is not None
    block = _body(old.to_rpc())
    truth.inspect(99.0, block)  # sent before any reorg: fine
    chain.reorg(3)
    replaced_at = time.monotonic() - t0
    truth.inspect(replaced_at - 1.0, block)  # sent before the reorg, answered after: fine
    truth.inspect(replaced_at + STALE_GRACE_S / 2, block)  # in flight at the reorg: not counted
    truth.inspect(replaced_at + 1.0, block)  # sent after: stale
    logs = _body([lg.to_rpc() for lg in old.logs])
    truth.inspect(replaced_at + 1.0, logs)  # its logs too
    new = chain.block(19)
    assert new is not None
    truth.inspect(replaced_at + 1.0, _body(new.to_rpc()))  # the new block: fine
    truth.inspect(replaced_at + 1.0, _body("0x10"))  # names no block: not checked
    truth.inspect(replaced_at + 1.0, b'{"jsonrpc":"2.0","id":1,"error":{"code":1}}')
    f = truth.figures(upstream_calls=3)
    assert (f.answers_checked, f.stale_answers, f.reorgs) == (6, 2, 1)
    assert "named block 19" in f.examples[0]
    chain.reorg(2)
    chain.reorg(5)
    assert truth.figures(None).reorgs == 3
    truth.close()


async def test_upstream_calls_saved() -> None:
    truth = ChainTruth(None, 0.0, check=False)
    for _ in range(10):
        truth.record(None)  # type: ignore[arg-type]
    f = truth.figures(upstream_calls=4)
    assert f.upstream_saved_pct == pytest.approx(60.0)
    assert f.stale_answers is None and f.answers_checked is None
    assert f.to_dict()["upstream_calls"] == 4


async def test_the_reorg_action_replaces_the_last_blocks_of_the_fleets_chain() -> None:
    chain = SimulatedChain(initial_blocks=30, block_time_ms=0, clock=FakeClock())
    ctx = BasicChaosContext(mocks={"alpha": MockProvider(chain, "alpha")})
    before = {n: chain.block(n).hash for n in range(20, 31)}  # type: ignore[union-attr]
    action = chaos_from_dict({"action": "reorg", "depth": 4, "at_s": 0})
    await action.run(ctx)
    after = {n: chain.block(n).hash for n in range(20, 31)}  # type: ignore[union-attr]
    assert [n for n in before if before[n] != after[n]] == [27, 28, 29, 30]
    (rec, reverted) = ctx.records[0]
    assert rec.action == "reorg" and rec.details == {"depth": 4, "from_block": 27, "to_block": 30}
    assert not reverted and rec.end_s == rec.at_s
    with pytest.raises(ValueError, match="needs mock providers"):
        await action.run(BasicChaosContext(provider_ids=["node1"]))
    with pytest.raises(ValueError, match="depth must be >= 1"):
        chaos_from_dict({"action": "reorg", "depth": 0, "at_s": 0})


def test_scenario_router_cache_block_round_trips() -> None:
    sc = ScenarioSpec.from_dict(
        {
            "name": "x",
            "providers": {"alpha": {}},
            "router": {
                "strategy": "priority",
                "cache": {"enabled": True},
                "routing": {"max_attempts": 2},
            },
            "workload": {"shape": "constant", "rate": 1, "duration_s": 1},
            "chaos": [{"action": "reorg", "depth": 2, "at_s": 0.5}],
            "slo": {"max_stale_answers": 0},
        }
    )
    assert dict(sc.router_opts.cache) == {"enabled": True}
    d = sc.to_dict()
    assert d["router"]["cache"] == {"enabled": True}
    again = {k: v for k, v in d.items() if k in ("name", "router", "chaos")}
    again["workloads"] = d["workload"]
    again["providers"] = d["providers"]
    assert ScenarioSpec.from_dict(again).router_opts == sc.router_opts
    with pytest.raises(
        ValueError, match="valid: cache, nodes, process, routing, state, strategy, workers"
    ):
        ScenarioSpec.from_dict({"name": "x", "router": {"cach": {}}})


def test_reports_show_upstream_calls_saved_and_stale_answers() -> None:
    from pathlib import Path

    from lasso_rpc.battle.report.html import render_html
    from lasso_rpc.battle.report.markdown import render_markdown

    sample = Path(__file__).resolve().parents[1] / "fixtures" / "battle_result_sample.json"
    d = orjson.loads(sample.read_bytes())
    d["truth"] = TruthFigures(
        1000, 250, 800, 2, 3, ("request sent at 1.000s named block 9",)
    ).to_dict()
    md = render_markdown(d)
    assert (
        "| upstream calls saved | 75 % (client requests 1000, calls received by the providers 250"
        in md
    )
    assert "| stale answers (vs the chain) | 2 of 800 answers naming a block (3 reorgs" in md
    assert "named block 9" in md
    html = render_html(d)
    assert "upstream calls saved" in html and "stale answers" in html
