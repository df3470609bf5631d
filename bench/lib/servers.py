"""The servers a benchmark starts (upstream, aiohttp echo, router, nginx) and how it talks to them.

The helper servers are scripts of their own in ``bench/servers/``; each binds 127.0.0.1 on a
free port and prints ``listening PORT``. The router is ``lasso-rpc serve`` started through
``lasso_rpc``'s one router launcher (``RouterProcessSync``), pinned with ``taskset``; the
instrumented router (``servers/router.py``) is the same CLI with GC accounting.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lasso_rpc.battle.providers.router_process_sync import RouterProcessSync
from lib.machine import (
    AUX_CPU,
    BENCH_DIR,
    HOST,
    PYTHON,
    REPO,
    SUT_CPU,
    free_port,
    require,
    wait_port,
)
from lib.processes import Child, Stack, pinned

BLOCK_NUMBER = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
GET_LOGS = (
    b'{"jsonrpc":"2.0","id":7,"method":"eth_getLogs","params":[{"fromBlock":"0x112a880",'
    b'"toBlock":"0x112a8e4","address":"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"}]}'
)
CHAIN = "bench"
SERVERS = BENCH_DIR / "servers"


@dataclass
class Server:
    name: str
    url: str  # base URL, no trailing slash
    child: Child
    extra: list[Child] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)  # pids printed by the router's workers

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def processes(self) -> list[Any]:
        return [p for c in (self.child, *self.extra) for p in c.processes()]


def start_upstream(stack: Stack, *, cpus: str | None = AUX_CPU, mode: str = "echo") -> Server:
    child = stack.start(
        f"upstream-{mode}-{len(stack.children)}",
        [PYTHON, str(SERVERS / "upstream.py"), "--mode", mode],
        cpus=cpus,
    )
    port = child.wait_for(r"listening (\d+)")[0].group(1)
    return Server(f"upstream({mode})", f"http://{HOST}:{port}", child)


def start_aiohttp_echo(stack: Stack, *, cpus: str | None = SUT_CPU) -> Server:
    child = stack.start("aiohttp-echo", [PYTHON, str(SERVERS / "aiohttp_echo.py")], cpus=cpus)
    port = child.wait_for(r"listening (\d+)")[0].group(1)
    return Server("aiohttp.web echo", f"http://{HOST}:{port}", child)


def router_config(
    providers: Sequence[dict[str, Any]],
    *,
    routing: dict[str, Any] | None = None,
    log_level: str = "info",
) -> dict[str, Any]:
    """A one-chain profile (chain ``bench``, chain id 1) served on port 0."""
    profile: dict[str, Any] = {
        "name": "Bench",
        "slug": "bench",
        "chains": {CHAIN: {"chain_id": 1, "providers": list(providers)}},
        "server": {"host": HOST, "port": 0, "log_level": log_level},
    }
    if routing:
        profile["routing"] = routing
    return profile


def start_router(
    stack: Stack,
    config: dict[str, Any],
    *,
    cpus: str | None = SUT_CPU,
    workers: int = 1,
    name: str = "router",
    instrumented: str | None = None,
    trace_malloc: bool = False,
) -> Server:
    """``python -m lasso_rpc serve`` on a generated config (JSON is YAML); waits for every worker.

    ``instrumented`` (a GC mode: ``default``, ``off`` or ``T0,T1,T2``) starts the same CLI
    through ``servers/router.py`` instead, which adds GC accounting (``router_stats``); one
    worker only.
    """
    n = len(stack.children)
    path = stack.tmp / f"{name}-{n}.yaml"
    path.write_text(json.dumps(config, indent=1))
    prefix = [PYTHON, "-m", "lasso_rpc"]
    if instrumented is not None or trace_malloc:
        if workers != 1:
            raise ValueError("an instrumented router runs one worker")
        prefix = [PYTHON, str(SERVERS / "router.py"), "--gc", instrumented or "default"]
        prefix += ["--tracemalloc"] if trace_malloc else []
    node = RouterProcessSync(
        path,
        log=stack.tmp / f"{name}-{n}.log",
        workers=workers,
        launcher=pinned(prefix, cpus),
        cwd=REPO,
        startup_timeout_s=60,
    )
    node.start()
    child = stack.adopt(Child(f"{name}-{n}", node.popen, node.log, cpus, node=node))
    return Server(f"router(w{workers})", node.url, child, workers=node.worker_pids)


def router_url(server: Server, route: str = CHAIN) -> str:
    return f"{server.url}/rpc/{route}"


def start_nginx(stack: Stack, upstream: Server, *, cpus: str | None = SUT_CPU) -> Server:
    """nginx as a plain keep-alive reverse proxy: 1 worker, no access log, everything in tmp."""
    require("nginx")
    root = stack.tmp / "nginx"
    root.mkdir(exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream rpc {{ server {HOST}:{upstream.port}; keepalive 64; }}
  server {{
    listen {HOST}:{port} reuseport;
    location / {{
      proxy_pass http://rpc;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    argv = ["nginx", "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)]
    argv += ["-g", "daemon off;"]
    child = stack.start("nginx", argv, cpus=cpus)
    try:
        wait_port(port)
    except TimeoutError:
        raise RuntimeError(f"nginx did not start:\n{child.log_text()}") from None
    return Server("nginx", f"http://{HOST}:{port}", child)


def post(url: str, body: bytes, timeout_s: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def check_ok(url: str, body: bytes = BLOCK_NUMBER) -> bytes:
    """One call; fails loudly unless it is a JSON-RPC result (or an array of them)."""
    status, out = post(url, body)
    doc = json.loads(out)
    items = doc if isinstance(doc, list) else [doc]
    if status != 200 or not items or any("result" not in i for i in items):
        raise RuntimeError(f"{url}: unexpected answer {status} {out[:300]!r}")
    return out


def metrics(server: Server) -> dict[str, float]:
    """The router's Prometheus samples, ``name{labels}`` -> value (one worker's view)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[key] = float(value)
    return out


def metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, v in samples.items():
        named = key == name or key.startswith(name + "{")
        if named and all(f'{k}="{val}"' in key for k, val in labels.items()):
            total += v
    return total


def request_outcomes(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """lasso_requests_total by status between two scrapes."""
    out: dict[str, int] = {}
    for key, v in after.items():
        if key.startswith("lasso_requests_total{"):
            m = re.search(r'status="([^"]*)"', key)
            status = m.group(1) if m else "?"
            out[status] = out.get(status, 0) + int(v - before.get(key, 0.0))
    return {k: v for k, v in out.items() if v}


def router_stats(server: Server, timeout_s: float = 5.0) -> dict[str, Any]:
    """Asks a router started with ``instrumented=...`` for its ``STATS`` line (SIGUSR1)."""
    child = server.child
    before = len(re.findall(r"^STATS ", child.log_text(), re.M))
    os.kill(child.pid, signal.SIGUSR1)
    found = child.wait_for(r"(?m)^STATS (\{.*\})$", count=before + 1, timeout_s=timeout_s)
    return dict(json.loads(found[-1].group(1)))
