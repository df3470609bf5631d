"""Secret-leak scan (issue 16): a secret in every provider URL, everything the router and the battle
framework put out, grepped for it.

Secrets sit in each form a provider URL carries them: the path (``/v2/KEY``), the query
(``?apikey=KEY``), the userinfo (``user:KEY@host``), an ``${ENV}`` placeholder, and a provider
header. The run: calls that succeed, fail over and fail (a provider returning 500s, one that
refuses connections, one pinned and dead), batches, ``include_meta`` in body and headers,
WebSocket calls, subscriptions and errors, reads answered from the response cache, a reload that
works and one that is refused, then a short failing battle whose router has the same kinds of
URLs, with its reports written and its notifications sent (webhooks, one unreachable).

Outputs scanned (``OUTPUTS`` below): logs as JSON lines and as text (every logger, with
tracebacks), HTTP answer bodies and headers, WebSocket frames, cache hits (body and header
meta), /metrics, /api/chains, /api/providers, /api/subscriptions, /health, /ready, /api/events
(Server-Sent Events), the dashboard's page and assets and its ``stats.summary`` feed (SSE and
WebSocket), every key and value in the router's Redis (``state: redis``: provider records, the
response cache, rate-limit buckets; a client API key is one more secret), control API answers, ``lasso-rpc check-config`` on a refused file, the battle's
result and reports (JSON, Markdown, HTML, JUnit), its logs, and its notifications (JSON and
Slack webhook bodies, the e-mail text, the delivery records).

To scan a new output: collect its text with ``env.out("name", text)`` where it is produced
(or add a step to ``_scan_router``, or an entry to ``COLLECTORS``), and name it in ``OUTPUTS``;
the test fails when a named output was not collected, so a renamed endpoint cannot silently
leave the scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web

from lasso_rpc.battle import Chaos, MockProvider, Scenario, Workload
from lasso_rpc.battle import runner as battle_runner
from lasso_rpc.battle.notify.message import email_message, triggers_of
from lasso_rpc.battle.providers.fleet import MockFleet
from lasso_rpc.battle.providers.redis_server import RedisServer
from lasso_rpc.config import load_config
from lasso_rpc.observability.logs import _JsonFormatter
from lasso_rpc.server.app import RouterServer

pytestmark = pytest.mark.asyncio

SECRETS = {
    "path": "pathKEY7f3a9c1e5b",
    "query": "queryKEY2d8b4e6f0a",
    "userinfo": "userKEY9c1e7a3b5d",
    "env": "envKEY4a6c8e0b2d",
    "header": "hdrKEY1b3d5f7a9c",
    "webhook": "hookKEY6e8a0c2f4b",  # the notification webhook's own token
    "api_key": "apiKEY3f5b7d9e1c",  # a client's API key (access.keys), in a header and a path
}
TOKEN = "control-token-for-the-scan"
OUTPUTS = [
    "log:json",
    "log:text",
    "http:bodies",
    "http:headers",
    "ws:frames",
    "/metrics",
    "/api/chains",
    "/api/providers",
    "/health",
    "/ready",
    "/api/events",
    "control:answers",
    "battle:result",
    "battle:reports",
    "battle:logs",
    "cli:check-config",
    "cache:answers",
    "/dashboard",
    "/api/subscriptions",
    "stats.summary:sse",
    "stats.summary:ws",
    "notify:webhook",
    "notify:email",
    "redis",
]


class Env:
    def __init__(self) -> None:
        self.outputs: dict[str, list[str]] = {}

    def out(self, name: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.outputs.setdefault(name, []).append(text)


class _Capture(logging.Handler):
    """Every record of every logger, formatted as the router's JSON lines and as plain text."""

    def __init__(self, env: Env) -> None:
        super().__init__(logging.DEBUG)
        self.env = env
        self.json = _JsonFormatter()
        self.text = logging.Formatter("%(levelname)s %(name)s: %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.env.out("log:json", self.json.format(record))
        self.env.out("log:text", self.text.format(record))


@contextlib.contextmanager
def capture_logs(env: Env) -> Any:
    handler = _Capture(env)
    loggers = [logging.getLogger(n) for n in ("", "lasso_rpc", "aiohttp", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def secret_urls(port: int, form: str) -> tuple[str, str]:
    s = SECRETS
    if form == "path":
        return f"http://127.0.0.1:{port}/v2/{s['path']}", f"ws://127.0.0.1:{port}/ws/{s['path']}"
    if form == "query":
        return (
            f"http://127.0.0.1:{port}/rpc?apikey={s['query']}&x=1",
            f"ws://127.0.0.1:{port}/?apikey={s['query']}",
        )
    return (
        f"http://lasso:{s['userinfo']}@127.0.0.1:{port}/",
        f"ws://lasso:{s['userinfo']}@127.0.0.1:{port}/",
    )


def profile(fleet: MockFleet, dead_port: int, redis_url: str) -> dict[str, Any]:
    providers = []
    for p, form in zip(fleet, ("path", "query", "userinfo"), strict=True):
        url, ws = secret_urls(p.port, form)
        providers.append({"id": p.id, "url": url, "ws_url": ws})
    providers[0]["headers"] = {"X-Api-Key": "${LEAK_HEADER_KEY}"}
    providers.append({"id": "dead", "url": f"http://127.0.0.1:{dead_port}/v3/${{LEAK_ENV_KEY}}"})
    return {
        "name": "Leak scan",
        "slug": "leak",
        "routing": {"head_poll_ms": 100, "hedge": {"enabled": False}, "max_attempts": 4},
        "chains": {"ethereum": {"chain_id": 1, "providers": providers}},
        "cache": {"enabled": True},
        "state": {"backend": "redis", "url": redis_url},  # records, cache, limits: all in Redis
        "access": {
            "keys": [
                {
                    "key": SECRETS["api_key"],
                    "name": "leaky",
                    "rate_limit": {"rps": 2},
                    "quota": {"requests": 1000, "period": "day"},
                }
            ],
            "anonymous": True,
        },
        "server": {
            "host": "127.0.0.1",
            "port": 0,
            "control": {"enabled": True, "token": TOKEN},
        },
    }


def call(method: str, params: list[Any] | None = None, id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params or []}


async def _scan_router(
    env: Env, s: RouterServer, fleet: MockFleet, cfg_path: Path, doc: dict[str, Any]
) -> None:
    base = s.url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:

        async def post(path: str, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            async with http.post(base + path, data=data, headers=headers or {}) as r:
                env.out("http:bodies", await r.read())
                env.out("http:headers", "\n".join(f"{k}: {v}" for k, v in r.headers.items()))

        async def get(path: str, name: str) -> None:
            async with http.get(base + path) as r:
                env.out(name, await r.read())

        async def events(query: str, name: str) -> None:
            async with http.get(base + "/api/events" + query) as r:
                async for line in r.content:
                    env.out(name, line)

        async def summaries_ws() -> None:  # the dashboard's feed, as the page reads it
            async with http.ws_connect(ws_base + "/api/events?types=stats.summary") as ws:
                async for frame in ws:
                    env.out("stats.summary:ws", str(frame.data))

        ws_base = base.replace("http", "ws", 1)
        streams = [
            asyncio.create_task(events("", "/api/events")),
            asyncio.create_task(events("?types=stats.summary", "stats.summary:sse")),
            asyncio.create_task(summaries_ws()),
        ]
        await asyncio.sleep(0.3)  # the health polls meet the dead provider
        # Calls that succeed, fail over, and fail.
        first, second, third = list(fleet)
        first.set_failure("http_500", error_rate=0.5)
        for i in range(12):
            await post(
                "/rpc/ethereum?include_meta=body",
                call("eth_getBalance", ["0x" + "11" * 20, "latest"], i),
            )
            await post(
                "/rpc/priority/ethereum",
                call("eth_blockNumber", id=i),
                {"X-Lasso-Include-Meta": "headers"},
            )
        await post("/rpc/provider/dead/ethereum?include_meta=body", call("eth_blockNumber"))
        await post(
            "/rpc/provider/dead/ethereum?failover=true&include_meta=body", call("eth_blockNumber")
        )
        await post("/rpc/provider/nobody/ethereum", call("eth_blockNumber"))
        second.set_failure("malformed")
        third.set_failure("reset")
        await post(
            "/rpc/ethereum?include_meta=body", [call("eth_blockNumber", id=n) for n in range(5)]
        )
        key = SECRETS["api_key"]
        for i in range(
            4
        ):  # a client's key, in a header, as a bearer and in the path; over its limit
            await post("/rpc/ethereum", call("eth_blockNumber", id=i), {"X-Lasso-Key": key})
            await post(
                "/rpc/ethereum", call("eth_chainId", id=i), {"Authorization": f"Bearer {key}"}
            )
            await post(f"/rpc/key/{key}/ethereum", call("eth_blockNumber", id=i))
        await post("/rpc/key/apiKEYunknown/ethereum", call("eth_blockNumber"))
        await post("/rpc/ethereum", b"{nope")
        await post("/rpc/ethereum", call("eth_subscribe", ["newHeads"]))
        for p in fleet:
            p.heal()
        # The response cache: the same reads again, answered from it (meta in body and headers).
        for _ in range(3):
            for q, h in (("?include_meta=body", None), ("", {"X-Lasso-Include-Meta": "headers"})):
                for c in (
                    call("eth_getBalance", ["0x" + "11" * 20, "latest"]),
                    call("eth_getBlockByNumber", ["0x1", False]),
                ):
                    async with http.post(base + "/rpc/ethereum" + q, json=c, headers=h) as r:
                        env.out("cache:answers", await r.read())
                        env.out(
                            "cache:answers", "\n".join(f"{k}: {v}" for k, v in r.headers.items())
                        )
        assert "HIT" in "".join(env.outputs["cache:answers"]), "the cache was never hit"
        # WebSocket: calls, a bad frame, subscriptions, a pinned dead provider.
        for path in ("/ws/rpc/ethereum", "/ws/rpc/provider/dead/ethereum", "/ws/rpc/nowhere"):
            with contextlib.suppress(aiohttp.WSServerHandshakeError):
                async with http.ws_connect(base.replace("http", "ws", 1) + path) as ws:
                    for msg in (
                        call("eth_blockNumber"),
                        call("eth_subscribe", ["newHeads"], 2),
                        call("eth_subscribe", ["logs", {"address": "0x" + "22" * 20}], 3),
                        call("eth_unsubscribe", ["0xnot-a-subscription"], 4),
                    ):
                        await ws.send_bytes(orjson.dumps(msg))
                    await ws.send_str("{not json")
                    fleet.chain.mine(2)
                    await asyncio.sleep(0.2)
                    await get("/api/subscriptions", "/api/subscriptions")
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.5):
                            async for frame in ws:
                                env.out(
                                    "ws:frames",
                                    frame.data
                                    if isinstance(frame.data, str | bytes)
                                    else str(frame.data),
                                )
        # Reloads: one that works (a new provider URL with a secret), one refused.
        doc["chains"]["ethereum"]["providers"][1]["url"] += "&again=1"
        cfg_path.write_text(yaml.safe_dump(doc))
        await post("/api/control/reload", {}, auth)
        bad = {**doc, "routing": {"no_such_key": 1}}
        bad_providers = [dict(p) for p in doc["chains"]["ethereum"]["providers"]]
        bad_providers[0]["url"] = f"ftp://127.0.0.1/v2/{SECRETS['path']}"  # invalid, with its key
        bad_providers[1]["ws_url"] = f"http://127.0.0.1/?apikey={SECRETS['query']}"
        bad["chains"] = {
            "ethereum": {**doc["chains"]["ethereum"], "chain_id": "x", "providers": bad_providers}
        }
        cfg_path.write_text(yaml.safe_dump(bad))
        async with http.post(base + "/api/control/reload", json={}, headers=auth) as r:
            env.out("control:answers", await r.read())
        async with http.post(
            base + "/api/control/cordon",
            json={"chain": "ethereum", "provider": "dead"},
            headers=auth,
        ) as r:
            env.out("control:answers", await r.read())
        # The CLI's verdict on the same refused file (its stdout and stderr).
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lasso_rpc", "check-config", str(cfg_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode != 0
        env.out("cli:check-config", out)
        await asyncio.sleep(0.3)
        for path in ("/metrics", "/api/chains", "/api/providers", "/health", "/ready"):
            await get(path, path)
        for path in ("/dashboard", "/dashboard/app.js", "/dashboard/app.css"):
            await get(path, "/dashboard")
        for collect in COLLECTORS:
            await collect(env, s)
        for stream in streams:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await stream


#: More outputs to scan, each an ``async (env, server)`` run after the traffic above. Shared state
#: kept outside the process (Redis, issue 13) belongs here: dump every key and value it holds with
#: ``env.out("redis", ...)`` and name "redis" in ``OUTPUTS``.
COLLECTORS: list[Callable[[Env, RouterServer], Awaitable[None]]] = []


async def _dump_redis(env: Env, s: RouterServer) -> None:
    """Every key in the router's Redis and what it holds (records, cache, limits, events)."""
    from redis.asyncio import Redis

    url = s.router.config.state.url
    assert url is not None
    r = Redis.from_url(url)
    try:
        async for key in r.scan_iter(count=1000):
            kind = (await r.type(key)).decode()
            value: Any
            if kind == "string":
                value = await r.get(key)
            elif kind == "hash":
                value = await r.hgetall(key)
            elif kind == "set":
                value = await r.smembers(key)
            elif kind == "zset":
                value = await r.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                value = await r.lrange(key, 0, -1)
            elif kind == "stream":
                value = await r.xrange(key)
            else:
                value = kind
            env.out("redis", f"{key!r} ({kind}): {value!r}")
    finally:
        await r.aclose()


COLLECTORS.append(_dump_redis)


@contextlib.asynccontextmanager
async def webhook_sink(env: Env) -> AsyncIterator[str]:
    """A local webhook receiver; the body of every message it gets is an output (its URL and
    headers carry the webhook's own token by design)."""

    async def hook(request: web.Request) -> web.Response:
        env.out("notify:webhook", await request.text())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    runner = web.AppRunner(app, access_log=None)  # its log is the receiver's, not ours
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _inject_secrets(original: Any) -> Any:
    """The battle's router config, with each provider URL carrying a secret (a test seam on the
    runner's config builder: the battle's mock providers serve any path and ignore the query)."""

    def router_config(
        sc: Any, urls: dict[str, str], token: str, chain_id: int, ws_urls: dict[str, str]
    ) -> str:
        forms = ["path", "query", "userinfo"]
        urls = dict(urls)
        for i, pid in enumerate(sorted(urls)):
            port = int(urls[pid].rsplit(":", 1)[1].split("/")[0])
            urls[pid] = secret_urls(port, forms[i % 3])[0]
        return str(original(sc, urls, token, chain_id, ws_urls))

    return router_config


async def test_no_output_carries_a_provider_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAK_ENV_KEY", SECRETS["env"])
    monkeypatch.setenv("LEAK_HEADER_KEY", SECRETS["header"])
    env = Env()
    with capture_logs(env):
        fleet = await MockFleet.start(3, block_time_ms=0)
        async with fleet:
            fleet.chain.mine(3)
            with socket.socket() as sock:  # a port nobody listens on
                sock.bind(("127.0.0.1", 0))
                dead_port = sock.getsockname()[1]
            async with RedisServer() as redis:
                doc = profile(fleet, dead_port, redis.url)
                cfg_path = tmp_path / "leak.yaml"
                cfg_path.write_text(yaml.safe_dump(doc))
                async with RouterServer(
                    load_config(cfg_path), port=0, reloader=lambda: load_config(cfg_path)
                ) as s:
                    await _scan_router(env, s, fleet, cfg_path, doc)
        # A short battle whose router has secret URLs, and its reports.
        monkeypatch.setattr(
            battle_runner, "router_config", _inject_secrets(battle_runner.router_config)
        )
        log_before = len(env.outputs.get("log:text", []))
        key = SECRETS["webhook"]
        async with webhook_sink(env) as hooks:
            notify = {
                "webhook": [
                    f"{hooks}/hooks/{key}",
                    {"url": f"{hooks}/slack/{key}", "format": "slack",
                     "headers": {"Authorization": f"Bearer {key}"}},
                    f"http://127.0.0.1:{dead_port}/hooks/{key}?token={key}",  # unreachable
                ],
                "retries": 0,
            }  # fmt: skip
            result = await (
                Scenario("leak scan")
                .providers(MockProvider.fleet(alpha={}, beta={}, gamma={}))
                .workload(Workload.constant(rate=40, duration_s=2.0, method="eth_blockNumber"))
                .chaos(Chaos.kill_provider("alpha", at_s=0.5, duration_s=0.8))
                # A latency no run meets: the result fails, so the notifications are sent.
                .slo(success_rate=0.5, p99_latency_ms=0.001)
                .notify(notify)
                .run()
            )
        sent = result.data.get("notifications", [])
        assert [d["ok"] for d in sent] == [True, True, False], sent
        subject, body = email_message(result.data, triggers_of(result.data))
        env.out("notify:email", f"{subject}\n{body}")
        env.out("battle:result", orjson.dumps(result.data, default=str))
        paths = result.write_reports(tmp_path / "reports")
        for p in (paths.json, paths.markdown, paths.html, paths.junit):
            env.out("battle:reports", Path(p).read_text(errors="replace"))
        env.outputs["battle:logs"] = env.outputs.get("log:text", [])[log_before:] or [""]

    missing = [o for o in OUTPUTS if not "".join(env.outputs.get(o, []))]
    assert not missing, f"outputs not collected (renamed? empty?): {missing}"
    leaks = [
        f"{name}: the {form} secret in: ...{text[max(0, text.find(secret) - 150) : text.find(secret) + 60]}..."
        for name, texts in env.outputs.items()
        for text in texts
        for form, secret in SECRETS.items()
        if secret in text
    ]
    assert not leaks, "\n".join(leaks[:10])
    # The scan saw the failures it was meant to see (the URLs were there to leak).
    joined = "".join(env.outputs["http:bodies"])
    assert "all attempts failed" in joined.lower() or "-32002" in joined
    assert "***" in "".join(env.outputs["log:json"]) + joined
    for name in ("stats.summary:sse", "stats.summary:ws"):  # summaries came, not only keep-alives
        assert "stats.summary" in "".join(env.outputs[name]), name
    assert "newHeads" in "".join(env.outputs["/api/subscriptions"])
    redis = "".join(env.outputs["redis"])  # what Redis held: records, cached answers, limits
    assert ":rl:" in redis and "cordon" in redis.lower(), redis[:2000]
    assert 'lasso_access_requests_total{client="leaky"' in "".join(env.outputs["/metrics"])
