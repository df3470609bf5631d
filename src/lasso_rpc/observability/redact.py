"""Provider URLs carry API keys: every text that leaves the process goes through here."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from lasso_rpc.config.loader import secrets_of

__all__ = ["mask_url", "redact"]

_URL = re.compile(r"\b(?:https?|wss?)://[^\s\"'<>]+")


def mask_url(url: str) -> str:
    """``https://user:pw@host/v2/KEY?apikey=X`` → ``https://host/***``: only scheme, host, port."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    tail = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{tail}"


def redact(text: str) -> str:
    """Masks URLs and every value that came from an ``${ENV}`` placeholder."""
    text = _URL.sub(lambda m: mask_url(m.group(0)), text)
    for secret in secrets_of():
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text
