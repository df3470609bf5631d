"""What an operator meets first: `lasso-rpc mock` with latency and failures, and the known
chains in the error for an unknown one."""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp

from lasso_rpc.config import load_config_text
from tests.conftest import RouterFactory, rpc


async def test_mock_with_latency_and_one_failing_provider() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lasso_rpc", "mock", "-n", "2", "--latency-ms", "40",
        "--set", "beta:failure_mode=http_500,http_status=503",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        text = b""
        async with asyncio.timeout(20):
            while b"priority: 2" not in text:
                chunk = await proc.stdout.readline()
                assert chunk, "mock exited early"
                text += chunk
            text += await asyncio.wait_for(proc.stdout.readline(), 5)
        alpha, beta = (
            load_config_text([("m.yaml", text.decode())])
            .profiles["local"]
            .chains["ethereum"]
            .providers
        )
        async with aiohttp.ClientSession() as http:
            t0 = time.monotonic()
            _, body, _ = await rpc(http, alpha.url, "eth_blockNumber")
            assert "result" in body and time.monotonic() - t0 >= 0.04  # the latency knob
            call = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
            async with http.post(beta.url, data=call) as r:
                assert r.status == 503  # the failure mode, with the status asked for
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def test_an_unknown_chain_lists_the_known_ones(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    _, body, _ = await rpc(http, s.url + "/rpc/polygon")
    err = body["error"]
    assert err["code"] == -32602
    assert err["message"] == "unknown chain 'polygon'; known chains: ethereum (eth, mainnet, 1)"
    assert err["data"] == {
        "known_chains": [{"name": "ethereum", "aliases": ["eth", "mainnet"], "chain_id": 1}]
    }
    _, body, _ = await rpc(http, s.url + "/rpc/profile/nope/ethereum")
    assert body["error"]["message"] == "unknown profile 'nope'; known profiles: local"
