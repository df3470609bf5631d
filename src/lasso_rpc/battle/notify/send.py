"""Sending notifications: webhooks over HTTP (aiohttp) and e-mail over SMTP (smtplib in a
thread), each retried with a doubling backoff. Failures are reported, never raised: a battle's
verdict does not depend on whether its notification got through.

Retried: connection errors, timeouts, HTTP 429 and 5xx, SMTP errors other than a refused
login or refused recipients (those would fail the same way again).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiohttp
import orjson

from lasso_rpc.battle.notify.config import EmailTarget, WebhookTarget
from lasso_rpc.observability.redact import redact

__all__ = ["Delivery", "Permanent", "send_email", "send_webhook", "with_retries"]

log = logging.getLogger("lasso_rpc.battle.notify")
Sleep = Callable[[float], Awaitable[None]]


class Permanent(Exception):
    """A failure that a retry would repeat (HTTP 4xx, SMTP login refused)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str  # "webhook" | "email"
    target: str  # masked: scheme://host/*** or the recipients
    ok: bool
    attempts: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "target": self.target,
            "ok": self.ok,
            "attempts": self.attempts,
            "error": self.error,
        }


def _mask(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return redact(text)


async def with_retries(
    channel: str,
    target: str,
    send: Callable[[], Awaitable[None]],
    *,
    retries: int,
    backoff_s: float,
    secrets: Sequence[str],
    sleep: Sleep = asyncio.sleep,
) -> Delivery:
    """``send`` until it succeeds, at most ``retries`` more times, waiting ``backoff_s``,
    then twice that, ... between tries; a ``Permanent`` failure stops at once."""
    delay = backoff_s
    for attempt in range(1, retries + 2):
        try:
            await send()
        except Exception as exc:  # every failure ends up in the Delivery (masked)
            error = _mask(f"{type(exc).__name__}: {exc}", secrets)
            log.warning("notify %s %s: try %d failed: %s", channel, target, attempt, error)
            if isinstance(exc, Permanent) or attempt > retries:
                return Delivery(channel, target, False, attempt, error)
            await sleep(delay)
            delay *= 2
        else:
            return Delivery(channel, target, True, attempt)
    raise AssertionError("unreachable")


async def send_webhook(target: WebhookTarget, payload: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json", **target.headers}
    timeout = aiohttp.ClientTimeout(total=target.timeout_s)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(target.url, data=orjson.dumps(payload), headers=headers) as r,
    ):
        if 200 <= r.status < 300:
            return
        text = (await r.text())[:200]
        if r.status == 429 or r.status >= 500:
            raise RuntimeError(f"HTTP {r.status}: {text}")
        raise Permanent(f"HTTP {r.status}: {text}")


def _smtp_send(target: EmailTarget, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if target.ssl:
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=target.timeout_s, context=context)
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=target.timeout_s)
    with smtp:
        smtp.ehlo()
        if target.starttls and not target.ssl:
            smtp.starttls(context=context)
            smtp.ehlo()
        if target.username:
            try:
                smtp.login(target.username, target.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                raise Permanent(f"login refused ({exc.smtp_code})") from None
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise Permanent(f"recipients refused: {sorted(exc.recipients)}") from None


async def send_email(target: EmailTarget, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    message["Subject"] = subject
    message.set_content(body)
    await asyncio.to_thread(_smtp_send, target, message)
