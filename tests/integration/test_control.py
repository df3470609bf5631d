"""Control API: off by default, bearer token, loopback only; config reload keeps the last good."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.router_process import RouterProcess
from lasso_rpc.config import ControlConfig, load_config
from lasso_rpc.server.app import RouterServer
from lasso_rpc.server.control import ControlHandlers
from tests.conftest import RouterFactory, fleet_config, rpc

TOKEN = "s3cret-control-token"
CONTROL = {"control": {"enabled": True, "token": TOKEN}}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADDR = "0x" + "55" * 20


async def _post(
    http: aiohttp.ClientSession, url: str, body: dict, headers: dict | None = None
) -> tuple[int, dict]:
    async with http.post(url, json=body, headers=headers or {}) as r:
        return r.status, await r.json()


async def test_control_api_is_off_by_default(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router()
    status, _ = await _post(
        http, s.url + "/api/control/breaker/open", {"chain": "ethereum", "provider": "alpha"}, AUTH
    )
    assert status == 404
    assert s.router.chains()[0].providers["alpha"].breaker.state == "closed"


async def test_control_api_requires_the_token(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    s = await make_router(server=CONTROL)
    target = {"chain": "ethereum", "provider": "alpha"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, _ = await _post(http, s.url + "/api/control/breaker/open", target, headers)
        assert status == 401
    assert s.router.chains()[0].providers["alpha"].breaker.state == "closed"
    status, body = await _post(http, s.url + "/api/control/breaker/open", target, AUTH)
    assert status == 200 and body["state"] == "open"
    async with http.get(s.url + "/api/providers?chain=ethereum") as r:
        alpha = next(p for p in (await r.json())["providers"] if p["id"] == "alpha")
    assert alpha["breaker"]["state"] == "open"
    status, body = await _post(http, s.url + "/api/control/breaker/close", target, AUTH)
    assert status == 200 and body["state"] == "closed"
    status, body = await _post(
        http, s.url + "/api/control/breaker/open", {"chain": "ethereum", "provider": "zzz"}, AUTH
    )
    assert status == 400 and "unknown provider" in body["error"]


async def test_cordon_moves_traffic_away_and_back(
    make_router: RouterFactory, http: aiohttp.ClientSession, fleet: MockFleet
) -> None:
    s = await make_router(server=CONTROL)
    target = {"chain": "eth", "provider": "alpha"}
    assert (await _post(http, s.url + "/api/control/cordon", target, AUTH))[0] == 200
    for _ in range(10):
        _, _body, resp = await rpc(
            http, s.url + "/rpc/priority/ethereum?include_meta=headers", "eth_getBalance", [ADDR]
        )
        assert resp.headers["X-Lasso-Provider"] == "beta"
    async with http.get(s.url + "/api/providers") as r:
        assert (
            next(p for p in (await r.json())["providers"] if p["id"] == "alpha")["cordoned"] is True
        )
    assert (await _post(http, s.url + "/api/control/uncordon", target, AUTH))[0] == 200
    _, _, resp = await rpc(
        http, s.url + "/rpc/priority/ethereum?include_meta=headers", "eth_getBalance", [ADDR]
    )
    assert resp.headers["X-Lasso-Provider"] == "alpha"


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("peer", "allow_remote", "expected"),
    [
        ("10.1.2.3", False, 403),
        ("192.0.2.7", False, 403),
        ("127.0.0.1", False, 200),
        ("::1", False, 200),
        ("10.1.2.3", True, 200),
    ],
)
async def test_control_api_serves_loopback_clients_only_by_default(
    make_router: RouterFactory, peer: str, allow_remote: bool, expected: int
) -> None:
    s = await make_router(server=CONTROL)
    handlers = ControlHandlers(
        s.router, ControlConfig(enabled=True, token=TOKEN, allow_remote=allow_remote), None
    )
    route = next(r for r in handlers.routes() if r.path == "/api/control/cordon")
    req = make_mocked_request(
        "POST",
        "/api/control/cordon",
        headers={**AUTH, "Content-Length": "0"},
        transport=_Transport(peer),
    )
    req._read_bytes = b'{"chain":"ethereum","provider":"beta"}'
    resp = await route.handler(req)  # type: ignore[misc]
    assert resp.status == expected


def _non_loopback_ip() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


async def test_control_api_refuses_a_real_non_loopback_connection(
    fleet: MockFleet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address")
    path = tmp_path / "p.yaml"
    path.write_text(fleet_config(fleet, server={**CONTROL, "host": "0.0.0.0"}))
    async with RouterServer(load_config(path), port=0) as s:
        url = f"http://{ip}:{s.port}/api/control/breaker/open"
        status, body = await _post(http, url, {"chain": "ethereum", "provider": "alpha"}, AUTH)
        assert status == 403 and "loopback" in body["error"]
        status, _ = await _post(
            http,
            f"http://127.0.0.1:{s.port}/api/control/breaker/open",
            {"chain": "ethereum", "provider": "alpha"},
            AUTH,
        )
        assert status == 200


async def test_reload_with_invalid_file_keeps_serving_old_config(
    fleet: MockFleet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "p.yaml"
    good = fleet_config(fleet, server=CONTROL)
    path.write_text(good)
    events: list = []
    async with RouterServer(load_config(path), port=0, reloader=lambda: load_config(path)) as s:
        s.router.bus.subscribe(lambda e: events.append(e) if e.kind == "config.reloaded" else None)
        path.write_text(good.replace("chain_id: 1", "chain_id: -5"))
        status, body = await _post(http, s.url + "/api/control/reload", {}, AUTH)
        assert status == 422 and any("chain_id" in e for e in body["errors"])
        _, reply, _ = await rpc(http, s.url + "/rpc/ethereum", "eth_getBalance", [ADDR])
        assert "result" in reply
        assert events[-1].ok is False and events[-1].errors
        path.write_text(good.replace("- mainnet", "- mainnet\n    - homestead"))
        status, body = await _post(http, s.url + "/api/control/reload", {}, AUTH)
        assert status == 200
        _, reply, _ = await rpc(http, s.url + "/rpc/homestead", "eth_getBalance", [ADDR])
        assert "result" in reply
        assert events[-1].ok is True


async def test_sighup_reload_of_a_running_process(
    fleet: MockFleet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "p.yaml"
    good = fleet_config(fleet)
    path.write_text(good)
    async with RouterProcess(path, startup_timeout_s=20) as node:
        url = node.url
        path.write_text("chains: [not, valid]\n")
        node.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.3)
        _, reply, _ = await rpc(http, url + "/rpc/ethereum", "eth_getBalance", [ADDR])
        assert "result" in reply and node.running
        path.write_text(good.replace("- mainnet", "- mainnet\n    - homestead"))
        node.send_signal(signal.SIGHUP)
        for _ in range(50):
            await asyncio.sleep(0.1)
            _, reply, _ = await rpc(http, url + "/rpc/homestead", "eth_getBalance", [ADDR])
            if "result" in reply:
                break
        assert "result" in reply
    assert node.returncode == 0  # SIGTERM stopped it cleanly, no SIGKILL needed
