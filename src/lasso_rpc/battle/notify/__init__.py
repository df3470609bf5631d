"""SLO notifications (SPEC §8 ``notify``): a failed, invalid or regressed battle is sent to a
webhook (Slack-compatible or generic JSON) and/or by e-mail over SMTP, with retries; nothing is
sent for a run that passed and did not regress. Secrets are masked everywhere.

``config`` (what and where), ``message`` (what it says, from the result JSON), ``send`` (how,
with retries), and here ``notify_result``, which does all of it for one result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from lasso_rpc.battle.notify.config import EmailTarget, NotifyConfig, WebhookTarget
from lasso_rpc.battle.notify.message import (
    email_message,
    json_payload,
    slack_payload,
    triggers_of,
)
from lasso_rpc.battle.notify.send import Delivery, Sleep, send_email, send_webhook, with_retries

__all__ = ["Delivery", "EmailTarget", "NotifyConfig", "WebhookTarget", "notify_result"]


async def notify_result(
    config: NotifyConfig, result: Mapping[str, Any], *, sleep: Sleep = asyncio.sleep
) -> list[Delivery]:
    """Send ``result`` (its ``comparison`` too, when it has one) if it is worth a message;
    one ``Delivery`` per channel tried (none for a passing, non-regressed run)."""
    triggers = [t for t in triggers_of(result) if t in config.on]
    if not triggers:
        return []
    policy: dict[str, Any] = {
        "retries": config.retries,
        "backoff_s": config.backoff_s,
        "secrets": config.secrets,
        "sleep": sleep,
    }
    jobs = []
    for hook in config.webhooks:
        payload = (slack_payload if hook.format == "slack" else json_payload)(result, triggers)

        def post(hook: WebhookTarget = hook, payload: dict[str, Any] = payload) -> Any:
            return send_webhook(hook, payload)

        jobs.append(with_retries("webhook", hook.masked_url, post, **policy))
    if config.email is not None:
        target = config.email
        subject, body = email_message(result, triggers)

        def mail() -> Any:
            return send_email(target, subject, body)

        jobs.append(with_retries("email", ", ".join(target.to), mail, **policy))
    return list(await asyncio.gather(*jobs))
