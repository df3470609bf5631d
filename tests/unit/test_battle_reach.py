"""Contenders in scenarios, notifications and the report fixes, without sockets: parsing,
run order, the same schedule for every contender, payloads, retries, masking, chart bands."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from lasso_rpc.battle import Scenario, Workload
from lasso_rpc.battle.contenders import EthersOptions, ViemOptions, schedule_of
from lasso_rpc.battle.contenders.choice import Contender
from lasso_rpc.battle.drive import Drive
from lasso_rpc.battle.notify.config import NotifyConfig
from lasso_rpc.battle.notify.message import json_payload, slack_payload, triggers_of
from lasso_rpc.battle.notify.send import Permanent, with_retries
from lasso_rpc.battle.providers.spec import MockFleetSpec
from lasso_rpc.battle.report.bands import chaos_bands
from lasso_rpc.battle.router_config import router_config
from lasso_rpc.errors import ConfigError
from lasso_rpc.observability.redact import redact

FIXTURE = Path(__file__).parent.parent / "fixtures" / "battle_result_sample.json"
SAMPLE: dict[str, Any] = json.loads(FIXTURE.read_text())

# --------------------------------------------------------------------------- contenders


@pytest.mark.parametrize(
    ("value", "expected", "label"),
    [
        ("router", Contender("router"), "router (fastest)"),
        ("router:load-balanced", Contender("router", strategy="load-balanced"),
         "router (load-balanced)"),
        ("direct:alpha", Contender("direct", provider="alpha"), "direct alpha"),
        ("viem", Contender("viem"), "viem fallback"),
        ("ethers", Contender("ethers"), "ethers FallbackProvider"),
        ({"ethers": {"quorum": 1}}, Contender("ethers", options=EthersOptions(quorum=1)),
         "ethers FallbackProvider (quorum 1)"),
        ({"viem": {"rank": True}, "label": "viem ranked"},
         Contender("viem", options=ViemOptions(rank=True), label="viem ranked"), "viem ranked"),
    ],
)  # fmt: skip
def test_contenders_parse_and_round_trip(value: Any, expected: Contender, label: str) -> None:
    c = Contender.parse(value)
    assert c == expected and c.name("fastest") == label
    assert Contender.parse(c.to_dict()) == c


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("router:fastst", "unknown strategy"),
        ("direct", "name the provider"),
        ("geth", "unknown contender 'geth'"),
        ({"ethers": {"quroum": 1}}, "unknown ethers options"),
        ({"viem": {}, "ethers": {}}, "one of router, direct, viem, ethers per contender"),
        ("viem:rank", "takes options as a mapping"),
        (3, "a name or a mapping"),
    ],
)
def test_bad_contenders_are_errors(value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Contender.parse(value)


def fleet_scenario() -> Scenario:
    return (
        Scenario("reach")
        .providers(MockFleetSpec.of(alpha={"latency_ms": 5}, beta={"latency_ms": 9}))
        .router(strategy="fastest")
        .workload(Workload.poisson(40, 2.0).mix({"eth_blockNumber": 3, "eth_getBalance": 1}))
        .slo(success_rate=0.99)
    )


def test_runs_start_with_the_scenarios_router_and_list_each_contender_once() -> None:
    sc = fleet_scenario().contenders(
        ["router", "router:fastest", "router:priority", "direct:beta", "viem", "viem", "ethers"]
    )
    assert [c.name("fastest") for c in sc.runs()] == [
        "router (fastest)", "router (priority)", "direct beta", "viem fallback",
        "ethers FallbackProvider",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="contender direct:gamma: no such provider"):
        fleet_scenario().contenders(["direct:gamma"]).validate()


def test_contenders_and_validity_and_notify_round_trip_through_yaml(tmp_path: Path) -> None:
    doc = {
        "name": "yaml reach",
        "providers": {"alpha": {"latency_ms": 5}, "beta": {}},
        "workload": {"shape": "constant", "rate": 10, "duration_s": 1},
        "contenders": ["direct:alpha", {"ethers": {"quorum": 1}, "label": "ethers q1"}],
        "validity": {"max_generator_lag_ms": 80},
        "notify": {"webhook": "https://hooks.slack.com/services/T/B/SECRETXYZ", "on": "violation"},
        "slo": {"success_rate": 0.9, "max_failover_latency_ms": 300,
                "optional": ["max_failover_latency_ms"]},
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    sc = Scenario.from_yaml(path)
    assert [c.name("fastest") for c in sc.runs()] == ["router (fastest)", "direct alpha",
                                                      "ethers q1"]  # fmt: skip
    assert sc.max_generator_lag_ms == 80.0 and sc.slos is not None
    assert sc.slos.optional == {"max_failover_latency_ms"}
    assert sc.notify_config is not None and sc.notify_config.webhooks[0].format == "slack"
    d = sc.to_dict()
    assert d["contenders"] == ["direct:alpha", {"ethers": {"quorum": 1}, "label": "ethers q1"}]
    assert d["notify"]["webhook"] == [{"url": "https://hooks.slack.com/***", "format": "slack"}]
    assert "SECRETXYZ" not in json.dumps(d) and "SECRETXYZ" not in repr(sc.notify_config)
    assert "SECRETXYZ" not in redact("posting to https://x.test/SECRETXYZ failed")
    assert d["slos"]["optional"] == ["max_failover_latency_ms"]
    again = Scenario.from_dict({**d, "notify": doc["notify"]})
    assert again.contender_list == sc.contender_list and again.slos == sc.slos


def test_every_contender_is_sent_the_same_schedule() -> None:
    """The runner draws one Random per unary workload in scenario order; the sidecar gets
    ``schedule_of`` that same Random, so every contender sends the same calls at the same
    offsets as the router's load generator."""
    sc = fleet_scenario().workload(Workload.subscribe(2, duration_s=1.0))
    sc = sc.workload(Workload.constant(5, 1.0, method="eth_chainId"))
    schedules = []
    for _ in range(2):
        rng = random.Random(sc.seed)
        rng.random()  # the context's Random is drawn first
        plan = Drive(sc, Contender("viem"), None, {}, {}, 1, rng, None)  # type: ignore[arg-type]
        assert plan.rngs[1] is None  # the subscribe workload draws nothing
        schedules.append([schedule_of(w, r) for w, r in zip(sc.workloads, plan.rngs, strict=True)
                          if r is not None])  # fmt: skip
    assert schedules[0] == schedules[1] and len(schedules[0]) == 2
    assert {c.method for c in schedules[0][1]} == {"eth_chainId"}


def test_a_router_contender_gets_its_own_strategy() -> None:
    sc = fleet_scenario().router(strategy="fastest", hedge={"enabled": False})
    urls = {"alpha": "http://127.0.0.1:1/", "beta": "http://127.0.0.1:2/"}
    own = yaml.safe_load(router_config(sc, urls, "t", 1, {}))
    other = yaml.safe_load(router_config(sc, urls, "t", 1, {}, strategy="load-balanced"))
    assert own["routing"]["default_strategy"] == "fastest"
    assert other["routing"] == {**own["routing"], "default_strategy": "load-balanced"}


# --------------------------------------------------------------------------- notifications


def failed_result() -> dict[str, Any]:
    d = copy.deepcopy(SAMPLE)
    d["passed"] = False
    d["slos"][1].update(passed=False, message="p95_latency_ms: 250.4 > 200 (violated)")
    return d


def test_which_results_are_worth_a_message() -> None:
    assert triggers_of(SAMPLE) == []
    assert triggers_of(failed_result()) == ["violation"]
    regressed = dict(SAMPLE, comparison={"regressed": True, "rows": [], "baseline_id": "b"})
    assert triggers_of(regressed) == ["regression"]


def test_payloads_say_what_failed() -> None:
    d = failed_result()
    d["validity"] = {"valid": False, "reasons": ["the generator lagged"]}
    generic = json_payload(d, ["violation"])
    assert generic["event"] == "battle.violation" and generic["valid"] is False
    assert generic["violations"] == ["p95_latency_ms: 250.4 > 200 (violated)"]
    assert generic["invalid_reasons"] == ["the generator lagged"]
    assert generic["text"] == "battle Provider failover: INVALID (1 SLO violation)"
    slack = slack_payload(d, ["violation"])
    assert slack["text"] == generic["text"]
    body = slack["blocks"][1]["text"]["text"]
    assert "- p95_latency_ms: 250.4 > 200" in body and "- invalid: the generator lagged" in body


def test_notify_config_errors_name_their_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as e:
        NotifyConfig.from_dict(
            {
                "webhook": {"url": "ftp://x", "format": "xml"},
                "email": {"host": "h"},
                "on": ["always"],
                "retries": -1,
                "colour": 1,
            }
        )
    assert e.value.errors == [
        "notify.colour: unknown key; known: ['backoff_s', 'email', 'on', 'retries', 'webhook']",
        "notify.on: a list of violation, regression, got ['always']",
        "notify.webhook.url: an http(s) URL, got 'ftp://x'",
        "notify.webhook.format: slack or json, got 'xml'",
        "notify.email.from: required",
        "notify.email.to: required",
        "notify.retries: an integer within 0..20, got -1",
    ]
    with pytest.raises(ConfigError, match=r"\$\{NO_SUCH_PASSWORD\} is not set"):
        NotifyConfig.from_dict(
            {"email": {"host": "h", "from": "a@b", "to": "c@d", "password": "${NO_SUCH_PASSWORD}"}}
        )
    monkeypatch.setenv("LASSO_TEST_SMTP_PW", "pw-from-env-1234")
    cfg = NotifyConfig.from_dict(
        {
            "email": {
                "host": "h",
                "port": 465,
                "ssl": True,
                "from": "a@b",
                "to": "c@d",
                "password": "${LASSO_TEST_SMTP_PW}",
            }
        }
    )
    assert cfg.email is not None and cfg.email.password == "pw-from-env-1234"
    assert (cfg.email.port, cfg.email.ssl, cfg.email.starttls) == (465, True, False)
    assert cfg.masked()["email"]["password"] == "***"
    assert "pw-from-env-1234" not in redact("login pw-from-env-1234 refused")


async def test_retries_back_off_and_stop_on_a_permanent_failure() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("HTTP 503 from https://hook.test/s3cr3t-path")

    d = await with_retries("webhook", "t", flaky, retries=3, backoff_s=0.5,
                           secrets=["s3cr3t-path"], sleep=sleep)  # fmt: skip
    assert (d.ok, d.attempts, waits) == (True, 3, [0.5, 1.0])

    async def refused() -> None:
        raise Permanent("HTTP 404: no such hook s3cr3t-path")

    waits.clear()
    d = await with_retries("webhook", "t", refused, retries=3, backoff_s=0.5,
                           secrets=["s3cr3t-path"], sleep=sleep)  # fmt: skip
    assert (d.ok, d.attempts, waits) == (False, 1, [])
    assert d.error == "Permanent: HTTP 404: no such hook ***"

    async def down() -> None:
        raise OSError("connection refused")

    d = await with_retries("email", "t", down, retries=2, backoff_s=0.1, secrets=[], sleep=sleep)
    assert (d.ok, d.attempts) == (False, 3) and d.error == "OSError: connection refused"


# --------------------------------------------------------------------------- report fixes


def test_overlapping_chaos_windows_become_one_band_with_every_label() -> None:
    chaos = [
        {"action": "kill_provider", "target": p, "at_s": 10.0, "end_s": 15.0} for p in "abc"
    ] + [
        {"action": "error_rate", "target": "d", "at_s": 14.0, "end_s": 18.0},
        {"action": "blackhole", "target": "e", "at_s": 20.0, "end_s": 21.0},
        {"action": "lag_provider", "target": "a", "at_s": 25.0, "end_s": None},
        {"action": "lag_provider", "target": "b", "at_s": 25.0, "end_s": None},
    ]
    bands = chaos_bands(chaos)
    assert [(b.start, b.end, b.label) for b in bands] == [
        (10.0, 18.0, "kill_provider a + kill_provider b + kill_provider c + error_rate d"),
        (20.0, 21.0, "blackhole e"),
        (25.0, None, "lag_provider a + lag_provider b"),
    ]


def _figure(page: str, chart_id: str) -> dict[str, Any]:
    start = page.index(f'Plotly.newPlot(                        "{chart_id}",')
    decoder = json.JSONDecoder()
    rest = page[page.index("[", start) :]
    data, end = decoder.raw_decode(rest)
    layout, _ = decoder.raw_decode(rest[end:].lstrip(", \n"))
    return {"data": data, "layout": layout}


def test_html_draws_one_band_per_overlap_a_chaos_lane_per_event_and_the_hedges() -> None:
    from lasso_rpc.battle.report.html import render_html

    d = copy.deepcopy(SAMPLE)
    d["chaos"] = [
        {"action": "kill_provider", "target": p, "at_s": 10.0, "end_s": 15.0,
         "recovery_s": 5.5 if p == "gamma" else None}
        for p in ("alpha", "beta", "gamma")
    ]  # fmt: skip
    n = len(d["timeseries"]["t"])
    d["timeseries"]["hedged"] = [3 if 10 <= i < 15 else 0 for i in range(n)]
    page = render_html(d)
    latency = _figure(page, "chart-latency")
    assert [(s["type"], s["x0"], s["x1"]) for s in latency["layout"]["shapes"]] == [
        ("rect", 10.0, 15.0)
    ]
    (note,) = latency["layout"]["annotations"]
    assert note["text"] == "kill_provider alpha + kill_provider beta + kill_provider gamma"
    lanes = _figure(page, "chart-chaos")
    bars = [t for t in lanes["data"] if t["type"] == "bar"]
    assert [t["y"][0] for t in bars] == [
        "1. kill_provider alpha", "2. kill_provider beta", "3. kill_provider gamma",
    ]  # fmt: skip
    assert all((t["base"][0], t["x"][0]) == (10.0, 5.0) for t in bars)
    (star,) = [t for t in lanes["data"] if t["type"] == "scatter"]
    assert star["x"] == [15.5]
    hedging = _figure(page, "chart-hedging")
    assert hedging["data"][0]["y"] == d["timeseries"]["hedged"]
    assert hedging["layout"]["title"]["text"] == "Hedging: 15 hedged requests"
    share = hedging["data"][1]["y"]
    assert share[10] == pytest.approx(300 / d["timeseries"]["requests"][10])


def test_reports_show_an_invalid_run_its_ground_truth_and_the_starved_client() -> None:
    from lasso_rpc.battle.report.html import render_html
    from lasso_rpc.battle.report.junit import render_junit
    from lasso_rpc.battle.report.markdown import render_markdown

    d = copy.deepcopy(SAMPLE)
    d["passed"] = False
    d["validity"] = {"valid": False, "reasons": ["the router's event stream dropped 34 events"],
                     "max_generator_lag_ms": 250.0}  # fmt: skip
    d["telemetry"] = {"source": "stream", "events_lost": 34, "stream_reconnects": 0,
                      "decode_errors": 0, "out_of_range": 0, "router_requests": 2966,
                      "answered_by_router": 3000}  # fmt: skip
    d["load"] = [{"workload": 0, "sender": "loadgen", "transport": "http", "sent": 3000,
                  "completed": 3000, "cancelled": 0, "delayed_by_cap": 0,
                  "generator_lag_ms_p99": 1.5, "generator_lag_ms_max": 4.0}]  # fmt: skip
    d["upstream"] = {"methods": ["eth_blockNumber"], "providers": {"alpha": {"claimed": 10,
                     "received": 12}}, "received_total": 12, "claimed_total": 10,
                     "requests": 10, "calls_per_request": 1.2, "unclaimed": 2,
                     "consistent": False}  # fmt: skip
    d["summary"]["ws"] = {"clients": 2, "events": 30, "gaps": 9, "duplicates": 0, "reorgs": 0,
                          "uptime": 0.7, "truth": "chain", "gaps_in_stream": 0,
                          "expected_blocks": 40, "max_stall_s": 9.0, "stalled_clients": 1,
                          "connected": 1.0}  # fmt: skip
    sub = {"client": 0, "kind": "newHeads", "events": 11, "gaps": 9, "duplicates": 0,
           "reorgs": 0, "expected_blocks": 20, "max_stall_s": 9.0, "behind_s": 9.0,
           "uptime": 0.4}  # fmt: skip
    d["subscribers"] = [sub, dict(sub, client=1, events=19, gaps=0, behind_s=0.0, uptime=1.0)]
    page = render_html(d)
    assert '<span class="badge fail">INVALID</span>' in page and "INVALID RUN" in page
    assert "dropped 34 events" in page and "INCONSISTENT (2 unclaimed)" in page
    assert "<td>router events from</td><td>stream</td>" in page
    ws = page[page.index("<h2>WebSocket subscribers</h2>") :]
    assert "longest stall 9 s, stalled at the end 1" in ws
    assert ws.count('<tr><td class="num">0</td><td>newHeads</td>') == 1  # only the victim
    md = render_markdown(d)
    assert md.startswith("# Battle: Provider failover — FAIL ❌ (INVALID RUN)")
    assert "## ⚠️ Invalid run" in md and "- the router's event stream dropped 34 events" in md
    assert "| request events / requests the router answered | 2966 / 3000 |" in md
    assert "alpha 10/12; 1.2 per request (INCONSISTENT)" in md
    junit = render_junit(d)
    assert 'name="valid run (ground truth complete, generator on time)"' in junit
