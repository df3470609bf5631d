"""SLO notifications end to end: a local HTTP receiver (a Slack-style hook and a generic JSON
hook that fails once) and a local SMTP server (aiosmtpd, with a login) get a message for a
failing battle and for a regression, nothing for a passing battle; secrets never surface."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from lasso_rpc.battle import Scenario, Workload
from lasso_rpc.battle.measure.baseline import compare
from lasso_rpc.battle.notify import notify_result
from lasso_rpc.battle.providers.spec import MockFleetSpec
from lasso_rpc.battle.report.schema import dump_result

HOOK_TOKEN = "T0KEN-hook-4f9a1c"
SLACK_PATH = "/services/T000/B000/sl4ck-s3cret-77"
SMTP_PASSWORD = "smtp-pa55-word-9b2e"


@dataclass
class Receiver:
    url: str
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_first: set[str] = field(default_factory=set)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        path = request.path
        if path in rec.fail_first:
            rec.fail_first.discard(path)
            return web.Response(status=503, text="try later")
        rec.posts.append((path + ("?" + request.query_string if request.query_string else ""),
                          orjson.loads(await request.read())))  # fmt: skip
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}"
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class Mailbox:
    port: int
    messages: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox(0)

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == SMTP_PASSWORD
        if ok:
            box.logins.append(data.login.decode())
        return AuthResult(success=ok)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(box, authenticator=authenticator, auth_require_tls=False),
        "127.0.0.1",
        0,
    )
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


def scenario(receiver: Receiver, mailbox: Mailbox, *, p50_target: float) -> Scenario:
    return (
        Scenario("notify me")
        .providers(MockFleetSpec.of(alpha={"latency_ms": 5}, beta={"latency_ms": 10}))
        .workload(Workload.constant(rate=20, duration_s=1.0))
        .slo(success_rate=0.99, p50_latency_ms=p50_target)
        .notify(
            webhook=[
                {"url": receiver.url + SLACK_PATH, "format": "slack"},
                {"url": f"{receiver.url}/hook?token={HOOK_TOKEN}", "format": "json"},
            ],
            email={
                "host": "127.0.0.1",
                "port": mailbox.port,
                "from": "battle@example.test",
                "to": ["ops@example.test"],
                "username": "battle",
                "password": SMTP_PASSWORD,
            },
            retries=2,
            backoff_s=0.05,
        )
    )


def assert_no_secret(text: str) -> None:
    for secret in (HOOK_TOKEN, SLACK_PATH, "sl4ck-s3cret", SMTP_PASSWORD):
        assert secret not in text


async def test_a_failing_run_is_sent_by_webhook_and_email_and_a_passing_run_is_not(
    receiver: Receiver, mailbox: Mailbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lasso_rpc")
    receiver.fail_first.add("/hook")  # the generic hook answers 503 once: retried
    # 5 ms providers cannot answer in 0.001 ms: p50 is violated
    failed = await scenario(receiver, mailbox, p50_target=0.001).run()
    assert not failed.passed
    posts = dict(receiver.posts)
    slack, generic = posts[SLACK_PATH], posts[f"/hook?token={HOOK_TOKEN}"]
    assert slack["text"].startswith("battle notify me: FAILED (1 SLO violation)")
    assert slack["blocks"][0]["type"] == "header"
    assert "p50_latency_ms" in slack["blocks"][1]["text"]["text"]
    assert generic["event"] == "battle.violation" and generic["passed"] is False
    assert generic["id"] == failed.id and generic["violations"][0].startswith("p50_latency_ms")
    assert generic["summary"]["requests"] == 20
    (mail,) = mailbox.messages
    msg = message_from_bytes(mail.content)  # type: ignore[arg-type]
    assert msg["Subject"].startswith("[lasso-rpc] battle notify me: FAILED")
    assert mail.rcpt_tos == ["ops@example.test"] and mailbox.logins == ["battle"]
    assert "p50_latency_ms" in msg.get_payload()
    deliveries = {d["channel"] + d["target"]: d for d in failed.data["notifications"]}
    assert all(d["ok"] for d in deliveries.values()), deliveries
    assert [d["attempts"] for d in failed.data["notifications"]] == [1, 2, 1]
    assert failed.data["notifications"][1]["target"] == receiver.url + "/***"

    # secrets: not in the result, the reports, or the logs
    paths = failed.write_reports(tmp_path)
    assert_no_secret(dump_result(failed.data).decode())
    for p in (paths.markdown, paths.html, paths.junit):
        assert_no_secret(p.read_text())
    assert_no_secret(caplog.text)
    assert failed.data["scenario"]["notify"]["email"]["password"] == "***"

    receiver.posts.clear()
    mailbox.messages.clear()
    passed = await scenario(receiver, mailbox, p50_target=1000).run()
    assert passed.passed, passed.summary
    assert receiver.posts == [] and mailbox.messages == []
    assert passed.data["notifications"] == []

    # the same passing run against a baseline it regressed from: sent as a regression
    baseline = copy.deepcopy(passed.data)
    baseline["id"] = "baseline-1"
    baseline["summary"]["latency_ms"]["p95"] = passed.data["summary"]["latency_ms"]["p95"] / 10
    regressed = dict(passed.data, comparison=compare(passed.data, baseline).to_dict())
    config = scenario(receiver, mailbox, p50_target=1000).notify_config
    assert config is not None
    sent = await notify_result(config, regressed)
    assert [d.ok for d in sent] == [True, True, True]
    generic = dict(receiver.posts)[f"/hook?token={HOOK_TOKEN}"]
    assert generic["event"] == "battle.regression" and generic["baseline_id"] == "baseline-1"
    assert [r["metric"] for r in generic["regressions"]] == ["latency_p95_ms"]
    (mail,) = mailbox.messages
    assert "REGRESSED (1 metric)" in message_from_bytes(mail.content)["Subject"]  # type: ignore[arg-type]
