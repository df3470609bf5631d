"""Where a battle's verdicts are sent (``notify:`` in a scenario, SPEC §8), as frozen values.

::

    notify:
      on: [violation, regression]          # the default: a failed or invalid run, a regression
      webhook: https://hooks.slack.com/services/T000/B000/XXXX    # Slack payload (by host)
      # webhook: {url: https://ci.example/hook, format: json, headers: {X-Token: ${TOKEN}}}
      email:
        host: smtp.example.com
        port: 587                            # STARTTLS by default on 587; ssl: true for 465
        from: battle@example.com
        to: [ops@example.com]
        username: battle
        password: ${SMTP_PASSWORD}
      retries: 3                             # per channel, after the first try
      backoff_s: 1.0                         # doubled after every failed try

``${ENV}`` placeholders are read from the environment. Webhook URLs (they carry the hook's
secret), header values and the SMTP password are secrets: they are masked in the result JSON,
reports, console output and logs (``masked()``, and the redactor learns them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from lasso_rpc.config.loader import remember_secrets
from lasso_rpc.errors import ConfigError
from lasso_rpc.observability.redact import mask_url

__all__ = ["TRIGGERS", "EmailTarget", "NotifyConfig", "Trigger", "WebhookTarget"]

Trigger = Literal["violation", "regression"]
TRIGGERS: tuple[Trigger, ...] = ("violation", "regression")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _env(value: Any, where: str, errors: list[str]) -> str:
    text = str(value)

    def repl(m: re.Match[str]) -> str:
        got = os.environ.get(m.group(1))
        if got is None:
            errors.append(f"{where}: ${{{m.group(1)}}} is not set in the environment")
            return ""
        return got

    return _ENV.sub(repl, text)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    format: Literal["slack", "json"] = "json"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def masked(self) -> dict[str, Any]:
        d: dict[str, Any] = {"url": self.masked_url, "format": self.format}
        if self.headers:
            d["headers"] = dict.fromkeys(self.headers, "***")
        return d


@dataclass(frozen=True, slots=True)
class EmailTarget:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    ssl: bool = False
    timeout_s: float = 10.0

    def masked(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "from": self.sender,
            "to": list(self.to),
            "username": self.username,
            "password": None if self.password is None else "***",
            "starttls": self.starttls,
            "ssl": self.ssl,
        }


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    webhooks: tuple[WebhookTarget, ...] = ()
    email: EmailTarget | None = None
    on: tuple[Trigger, ...] = TRIGGERS
    retries: int = 3
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        remember_secrets(*(w.url for w in self.webhooks))
        remember_secrets(*(v for w in self.webhooks for v in w.headers.values()))
        if self.email is not None and self.email.password:
            remember_secrets(self.email.password)

    def __repr__(self) -> str:
        return f"NotifyConfig({self.masked()})"

    @property
    def secrets(self) -> tuple[str, ...]:
        out = [w.url for w in self.webhooks]
        out += [v for w in self.webhooks for v in w.headers.values()]
        if self.email is not None and self.email.password:
            out.append(self.email.password)
        return tuple(s for s in out if s)

    def masked(self) -> dict[str, Any]:
        """The YAML form with every secret masked (for the result JSON and reports)."""
        return {
            "on": list(self.on),
            "webhook": [w.masked() for w in self.webhooks],
            "email": self.email.masked() if self.email is not None else None,
            "retries": self.retries,
            "backoff_s": self.backoff_s,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "notify") -> NotifyConfig:
        if not isinstance(d, Mapping):
            raise ConfigError([f"{where}: must be a mapping"])
        errors: list[str] = []
        known = {"on", "webhook", "email", "retries", "backoff_s"}
        errors += [f"{where}.{k}: unknown key; known: {sorted(known)}" for k in d if k not in known]
        on = d.get("on", list(TRIGGERS))
        on = [on] if isinstance(on, str) else list(on)
        bad = [t for t in on if t not in TRIGGERS]
        if bad or not on:
            errors.append(f"{where}.on: a list of {', '.join(TRIGGERS)}, got {d.get('on')!r}")
        hooks = d.get("webhook") or []
        hooks = hooks if isinstance(hooks, Sequence) and not isinstance(hooks, str) else [hooks]
        webhooks = [_webhook(h, f"{where}.webhook", errors) for h in hooks]
        email = _email(d["email"], f"{where}.email", errors) if d.get("email") else None
        retries, backoff = d.get("retries", 3), d.get("backoff_s", 1.0)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
            errors.append(f"{where}.retries: an integer within 0..20, got {retries!r}")
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
            errors.append(f"{where}.backoff_s: a number >= 0, got {backoff!r}")
        if not webhooks and email is None and not errors:
            errors.append(f"{where}: give a webhook, an email, or both")
        if errors:
            raise ConfigError(errors)
        return cls(
            tuple(w for w in webhooks if w is not None),
            email,
            tuple(on),
            int(retries),
            float(backoff),
        )


def _webhook(h: Any, where: str, errors: list[str]) -> WebhookTarget | None:
    if isinstance(h, str):
        h = {"url": h}
    if not isinstance(h, Mapping) or "url" not in h:
        errors.append(f"{where}: a URL or {{url, format, headers}}")
        return None
    unknown = set(h) - {"url", "format", "headers", "timeout_s"}
    if unknown:
        known = "format, headers, timeout_s, url"
        errors.append(f"{where}: unknown keys {sorted(unknown)}; known: {known}")
    url = _env(h["url"], f"{where}.url", errors)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(f"{where}.url: an http(s) URL, got {mask_url(url)!r}")
    fmt: Literal["slack", "json"] = "slack" if parts.hostname == "hooks.slack.com" else "json"
    given = h.get("format")
    if given in ("slack", "json"):
        fmt = given
    elif given is not None:
        errors.append(f"{where}.format: slack or json, got {given!r}")
    raw_headers = h.get("headers") or {}
    headers = {str(k): _env(v, f"{where}.headers.{k}", errors) for k, v in raw_headers.items()}
    return WebhookTarget(url, fmt, headers, float(h.get("timeout_s", 10.0)))


def _email(e: Any, where: str, errors: list[str]) -> EmailTarget | None:
    if not isinstance(e, Mapping):
        errors.append(f"{where}: a mapping with host, from, to")
        return None
    known = {"host", "port", "from", "to", "username", "password", "starttls", "ssl", "timeout_s"}
    errors += [f"{where}.{k}: unknown key; known: {sorted(known)}" for k in e if k not in known]
    for key in ("host", "from", "to"):
        if not e.get(key):
            errors.append(f"{where}.{key}: required")
    if errors:
        return None
    to = e["to"]
    to = (to,) if isinstance(to, str) else tuple(str(x) for x in to)
    ssl = bool(e.get("ssl", False))
    port = int(e.get("port", 465 if ssl else 587))
    password = e.get("password")
    username = e.get("username")
    return EmailTarget(
        host=_env(e["host"], f"{where}.host", errors),
        sender=str(e["from"]),
        to=to,
        port=port,
        username=None if username is None else _env(username, f"{where}.username", errors),
        password=None if password is None else _env(password, f"{where}.password", errors),
        starttls=bool(e.get("starttls", port == 587 and not ssl)),
        ssl=ssl,
        timeout_s=float(e.get("timeout_s", 10.0)),
    )
