"""The contender sidecar's spec, wire lines and look-ups, without node or sockets."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from lasso_rpc.battle.contenders import (
    EthersOptions,
    ScheduledCall,
    SidecarSpec,
    SidecarUnavailable,
    ViemOptions,
    find_node,
    find_node_modules,
    schedule_of,
)
from lasso_rpc.battle.contenders.spec import _Request, _Summary, line_decoder
from lasso_rpc.battle.load.workload import Workload

PROVIDERS = [("alpha", "http://127.0.0.1:1/"), ("beta", "http://127.0.0.1:2/key")]


def test_the_schedule_is_the_workloads_for_the_same_seed() -> None:
    w = Workload.poisson(50, 2.0).mix({"eth_blockNumber": 3, "eth_getBalance": 1})
    calls = schedule_of(w, random.Random(7))
    expected = list(w.schedule(random.Random(7)))
    assert [(c.offset_s, c.method, c.params) for c in calls] == expected
    assert {c.method for c in calls} == {"eth_blockNumber", "eth_getBalance"}


def test_the_spec_line_carries_params_verbatim_and_only_the_options_set() -> None:
    calls = [
        ScheduledCall(0.0, "eth_blockNumber"),
        ScheduledCall(0.5, "eth_getBalance", b'["0xabc","latest"]'),
    ]
    opts = EthersOptions(quorum=1, rpc_static_network=True)
    spec = SidecarSpec.of("ethers", PROVIDERS, calls, chain_id=5, timeout_ms=800, options=opts)
    line = spec.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    doc = orjson.loads(line)
    assert doc["requests"][1] == {
        "offset_s": 0.5,
        "method": "eth_getBalance",
        "params": ["0xabc", "latest"],
    }
    assert doc["options"] == {"quorum": 1, "rpc_staticNetwork": True, "warmup": True}
    assert (doc["client"], doc["chain_id"], doc["timeout_ms"]) == ("ethers", 5, 800)
    assert doc["providers"][1] == {"id": "beta", "url": "http://127.0.0.1:2/key"}


def test_library_defaults_send_no_options() -> None:
    spec = SidecarSpec.of("viem", PROVIDERS, [], warmup=False)
    assert orjson.loads(spec.encode())["options"] == {"warmup": False}
    ranked = SidecarSpec.of("viem", PROVIDERS, [], options=ViemOptions(retry_count=0))
    assert orjson.loads(ranked.encode())["options"] == {
        "rank": False,
        "retry_count": 0,
        "warmup": True,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client": "web3"}, "client must be"),
        ({"providers": []}, "non-empty"),
        ({"providers": [("a", "u"), ("a", "v")]}, "unique ids"),
        ({"calls": [ScheduledCall(1.0, "m"), ScheduledCall(0.5, "m")]}, "non-decreasing"),
        ({"calls": [ScheduledCall(float("nan"), "m")]}, "finite"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"options": EthersOptions()}, "viem takes ViemOptions"),
    ],
)
def test_a_bad_spec_is_refused_before_node_starts(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"client": "viem", "providers": PROVIDERS, "calls": []} | kwargs
    with pytest.raises(ValueError, match=message):
        SidecarSpec.of(**args)  # type: ignore[arg-type]


def test_request_lines_become_records() -> None:
    raw = (
        b'{"type":"request","i":3,"method":"eth_blockNumber","intended_s":1.0,"start_s":1.001,'
        b'"end_s":1.25,"ok":false,"error_class":"HttpRequestError","error":"fetch failed",'
        b'"rpc_code":null,"provider":null,"attempts":3}'
    )
    line = line_decoder.decode(raw)
    assert isinstance(line, _Request)
    record = line.value()
    assert (record.i, record.outcome, record.error_class, record.attempts) == (
        3,
        "error",
        "HttpRequestError",
        3,
    )
    assert not record.ok
    assert record.latency_ms == pytest.approx(250.0)
    assert record.service_ms == pytest.approx(249.0)
    summary = line_decoder.decode(
        b'{"type":"summary","sent":1,"ok":1,"errors":0,"cancelled":0,"scheduled":2,"unsent":1,'
        b'"stopped_early":true,"max_send_lag_ms":0.5,"elapsed_s":0.2}'
    )
    assert isinstance(summary, _Summary) and summary.unsent == 1


def test_missing_node_and_packages_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(SidecarUnavailable, match=r"install Node\.js .*`make`"):
        find_node(env={"PATH": str(tmp_path)})
    with pytest.raises(SidecarUnavailable, match="LASSO_NODE="):
        find_node(env={"LASSO_NODE": str(tmp_path / "node")})
    with pytest.raises(SidecarUnavailable, match=r"viem not found in .*npm install"):
        find_node_modules(["viem"], env={}, roots=[tmp_path])
    (tmp_path / "node_modules" / "viem").mkdir(parents=True)
    (tmp_path / "node_modules" / "viem" / "package.json").write_text("{}")
    assert find_node_modules(["viem"], env={}, roots=[tmp_path]) == tmp_path / "node_modules"
    with pytest.raises(SidecarUnavailable, match="ethers"):
        find_node_modules(["viem", "ethers"], env={}, roots=[tmp_path])
    explicit = {"LASSO_NODE_MODULES": str(tmp_path / "node_modules")}
    assert find_node_modules(["viem"], env=explicit) == tmp_path / "node_modules"
