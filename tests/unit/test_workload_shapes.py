"""Arrival schedules and the Workload value: counts, spacing, mixes, determinism, YAML form."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import orjson
import pytest

from lasso_rpc.battle.load.calls import DEFAULT_PARAMS, MethodSpec
from lasso_rpc.battle.load.shapes import Burst
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.errors import ConfigError


def offsets(w: Workload, seed: int = 1) -> list[float]:
    return [t for t, _, _ in w.schedule(random.Random(seed))]


def in_window(ts: list[float], lo: float, hi: float) -> int:
    return sum(1 for t in ts if lo <= t < hi)


def test_constant_is_evenly_spaced_and_exact() -> None:
    ts = offsets(Workload.constant(100, 30))
    assert len(ts) == 3000
    assert ts[0] == 0.0 and ts[-1] < 30.0
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(ts)}
    assert gaps == {0.01}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_poisson_count_and_exponential_gaps(seed: int) -> None:
    ts = offsets(Workload.poisson(200, 30), seed)
    # 6000 expected; sd ≈ 77, so ±5 sd.
    assert abs(len(ts) - 6000) < 400
    assert ts == sorted(ts) and ts[0] >= 0.0 and ts[-1] < 30.0
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(1 / 200, rel=0.05)
    # Exponential: sd ≈ mean, and P(gap > mean) ≈ e⁻¹ (an even schedule would give 0 and 0).
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert sd == pytest.approx(mean, rel=0.1)
    assert sum(g > mean for g in gaps) / len(gaps) == pytest.approx(math.exp(-1), abs=0.03)


def test_burst_rates_inside_and_outside_bursts() -> None:
    w = Workload.burst(base_rate=10, burst_rate=200, burst_every_s=5, burst_len_s=1, duration_s=20)
    ts = offsets(w)
    # Bursts at [5,6), [10,11), [15,16): 3 s at 200/s + 17 s at 10/s.
    assert len(ts) == pytest.approx(770, abs=2) == pytest.approx(w.expected_requests, abs=2)
    assert in_window(ts, 0, 5) == pytest.approx(50, abs=1)
    for k in (5, 10, 15):
        assert in_window(ts, k, k + 1) == pytest.approx(200, abs=1)
        assert in_window(ts, k + 1, k + 5) == pytest.approx(40, abs=1)
    assert ts == sorted(ts)


def test_burst_with_poisson_arrivals_keeps_the_rates() -> None:
    w = Workload.burst(10, 400, 5, 1, 20, arrivals="poisson")
    ts = offsets(w, seed=7)
    inside = sum(in_window(ts, k, k + 1) for k in (5, 10, 15))
    assert inside == pytest.approx(1200, rel=0.12)
    assert len(ts) - inside == pytest.approx(170, rel=0.35)
    assert ts == sorted(ts)


def test_burst_with_a_zero_base_rate_sends_only_in_bursts() -> None:
    ts = offsets(Workload.burst(0, 100, 2, 0.5, 7))
    assert len(ts) == 150
    assert all(any(k <= t < k + 0.5 for k in (2, 4, 6)) for t in ts)


@pytest.mark.parametrize(("start", "end"), [(0, 200), (200, 0), (50, 150), (100, 100)])
def test_ramp_follows_the_line(start: float, end: float) -> None:
    w = Workload.ramp(start, end, 10)
    ts = offsets(w)
    assert len(ts) == pytest.approx((start + end) / 2 * 10, abs=1)
    assert ts == sorted(ts) and ts[-1] < 10
    for second in range(10):
        mid_rate = start + (end - start) * (second + 0.5) / 10
        assert in_window(ts, second, second + 1) == pytest.approx(mid_rate, abs=1.5)


def test_poisson_ramp_counts() -> None:
    ts = offsets(Workload.ramp(0, 400, 10, arrivals="poisson"), seed=3)
    assert len(ts) == pytest.approx(2000, rel=0.08)
    assert in_window(ts, 0, 5) == pytest.approx(500, rel=0.15)
    assert in_window(ts, 5, 10) == pytest.approx(1500, rel=0.1)


def test_mix_proportions_and_default_params() -> None:
    w = Workload.constant(1000, 20).mix({"eth_blockNumber": 5, "eth_getBalance": 3, "eth_call": 1})
    items = list(w.schedule(random.Random(5)))
    counts = Counter(m for _, m, _ in items)
    n = len(items)
    assert n == 20_000
    assert counts["eth_blockNumber"] / n == pytest.approx(5 / 9, abs=0.015)
    assert counts["eth_getBalance"] / n == pytest.approx(3 / 9, abs=0.015)
    assert counts["eth_call"] / n == pytest.approx(1 / 9, abs=0.015)
    params = {m: orjson.loads(p) for _, m, p in items}
    assert params["eth_blockNumber"] == []
    address, tag = params["eth_getBalance"]
    assert len(bytes.fromhex(address[2:])) == 20 and tag == "latest"
    call, tag = params["eth_call"]
    assert set(call) == {"to", "data"} and tag == "latest"


def test_default_params_of_common_methods() -> None:
    assert DEFAULT_PARAMS["eth_getBlockByNumber"] == ["latest", False]
    logs = DEFAULT_PARAMS["eth_getLogs"][0]
    assert logs["fromBlock"] == logs["toBlock"] == "latest"  # a one-block range


def test_mix_as_constructor_and_with_explicit_params() -> None:
    w = Workload.mix(
        {"eth_getBalance": {"weight": 2, "params": ["0x" + "11" * 20, "0x1"]}, "eth_chainId": 1},
        rate=50,
        duration_s=2,
    )
    items = list(w.schedule(random.Random(0)))
    assert len(items) == 100
    by_method = {m: p for _, m, p in items}
    assert orjson.loads(by_method["eth_getBalance"]) == ["0x" + "11" * 20, "0x1"]
    assert w.methods("eth_chainId").calls == (MethodSpec.of("eth_chainId"),)


def test_same_seed_same_schedule() -> None:
    w = Workload.poisson(300, 10).mix({"eth_blockNumber": 1, "eth_call": 1, "eth_getLogs": 1})
    assert list(w.schedule(random.Random(42))) == list(w.schedule(random.Random(42)))
    assert list(w.schedule(random.Random(42))) != list(w.schedule(random.Random(43)))


def test_schedule_is_lazy() -> None:
    w = Workload.poisson(100_000, 30 * 60)  # 180 M requests: would not fit if materialized
    first = list(itertools.islice(w.schedule(random.Random(1)), 1000))
    assert len(first) == 1000 and first[-1][0] < 0.1


def test_fluent_api_composes_and_stays_frozen() -> None:
    base = Workload.poisson(200, 30)
    w = (
        base.mix({"eth_blockNumber": 5, "eth_getBalance": 3})
        .over("http")
        .path("/rpc/fastest/ethereum")
        .concurrency(256)
        .timeout_s(15)
    )
    assert (w.max_in_flight, w.request_timeout_s, w.target_path) == (
        256,
        15,
        "/rpc/fastest/ethereum",
    )
    assert [c.method for c in w.calls] == ["eth_blockNumber", "eth_getBalance"]
    assert base.calls[0].method == "eth_blockNumber" and base.max_in_flight == 1024
    with pytest.raises(AttributeError):
        w.duration_s = 1  # type: ignore[misc]


def test_scaled_shortens_every_time_but_keeps_rates() -> None:
    w = Workload.burst(10, 100, 10, 2, 60).scaled(0.1)
    assert w.duration_s == pytest.approx(6)
    assert isinstance(w.shape, Burst) and w.shape.burst_len_s == pytest.approx(0.2)
    assert w.shape.burst_rate == 100


@pytest.mark.parametrize(
    "w",
    [
        Workload.constant(100, 30, method="eth_getBalance"),
        Workload.poisson(200, 30).mix({"eth_blockNumber": 5, "eth_call": 1}).concurrency(64),
        Workload.burst(10, 100, 5, 1, 20, arrivals="poisson").path("/rpc/fastest/ethereum"),
        Workload.ramp(0, 100, 10, method="eth_call", params=[{"to": "0x" + "22" * 20}, "latest"]),
        Workload.mix({"eth_getLogs": {"weight": 1, "params": [{}]}, "eth_chainId": 2}, 5, 1),
    ],
)
def test_to_dict_round_trips(w: Workload) -> None:
    d = w.to_dict()
    assert Workload.from_dict(d) == w
    assert Workload.from_dict(orjson.loads(orjson.dumps(d))) == w


def test_from_dict_yaml_forms() -> None:
    w = Workload.from_dict(
        {"shape": "constant", "rate": 100, "duration_s": 30, "method": "eth_blockNumber"}
    )
    assert w == Workload.constant(100, 30)
    mixed = Workload.from_dict(
        {"shape": "poisson", "rate": 10, "duration_s": 5, "mix": {"eth_call": 1, "eth_chainId": 3}}
    )
    assert mixed.arrivals == "poisson" and len(mixed.calls) == 2


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "sped": 2},
            ["workload.sped: unknown key", "allowed:"],
        ),
        ({"shape": "constant", "duration_s": 1}, ["workload.rate: required"]),
        ({"shape": "square", "rate": 1, "duration_s": 1}, ["workload.shape: one of constant"]),
        ({"shape": "constant", "rate": -1, "duration_s": 1}, ["workload.rate: must be >= 0"]),
        (
            {"shape": "constant", "rate": "fast", "duration_s": 1},
            ["workload.rate: must be a finite number"],
        ),
        ({"shape": "constant", "rate": 1, "duration_s": 0}, ["workload.duration_s: must be > 0"]),
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "arrivals": "poisson"},
            ["workload.arrivals: unknown key"],
        ),
        (
            {
                "shape": "burst",
                "base_rate": 1,
                "burst_rate": 9,
                "burst_every_s": 1,
                "burst_len_s": 2,
                "duration_s": 5,
            },
            ["workload.burst_len_s"],
        ),
        (
            {
                "shape": "constant",
                "rate": 1,
                "duration_s": 1,
                "mix": {"eth_call": 1},
                "method": "eth_call",
            },
            ["either method"],
        ),
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "mix": {"eth_call": 0}},
            ["workload.mix.eth_call.weight: must be > 0"],
        ),
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "mix": {"eth_call": {"wait": 1}}},
            ["workload.mix.eth_call: unknown key"],
        ),
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "mix": {}},
            ["workload.mix: needs at least one method"],
        ),
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "params": "latest"},
            ["workload.params"],
        ),
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "concurrency": 0},
            ["workload.concurrency: must be >= 1"],
        ),
        (
            {"shape": "constant", "rate": 1, "duration_s": 1, "path": "rpc/x"},
            ["workload.path: must start with '/'"],
        ),
        ({"shape": "constant", "rate": 1, "duration_s": 1, "over": "udp"}, ["workload.over"]),
    ],
)
def test_from_dict_errors_name_the_key(data: dict[str, object], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Workload.from_dict(data)
    text = "\n".join(info.value.errors)
    for fragment in fragments:
        assert fragment in text


def test_from_dict_reports_every_unknown_key_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Workload.from_dict(
            {"shape": "ramp", "start_rate": 1, "end_rate": 2, "duration_s": 1, "a": 1, "b": 2}
        )
    assert [e.split(":")[0] for e in info.value.errors] == ["workload.a", "workload.b"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Workload.constant(-5, 10),
        lambda: Workload.constant(5, float("inf")),
        lambda: Workload.burst(1, 2, 0, 0, 5),
        lambda: Workload.constant(1, 1).concurrency(0),
        lambda: Workload.constant(1, 1).timeout_s(0),
        lambda: Workload.constant(1, 1).methods(),
        lambda: Workload.constant(1, 1).methods("eth_call", "eth_call"),
        lambda: Workload.constant(1, 1, method=""),
    ],
)
def test_invalid_values_are_refused_at_construction(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]
