"""Who a request is from: API keys from the config (and Redis), and anonymous clients.

Keys are found by the SHA-256 of what the client sent, then confirmed with
``hmac.compare_digest`` against the configured secret: no comparison whose time depends on
how much of a guess was right, and the index leaks nothing about a key (only about its hash).
A key never appears in logs, metrics or errors: a client is shown by its ``name`` (configured,
else ``key-`` and 8 hex digits of the hash).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from lasso_rpc.config.shared import ApiKeyConfig, RateLimitConfig

__all__ = ["ANONYMOUS", "Client", "KeyRing", "digest", "mask_path_key", "split_path_key"]


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True, slots=True)
class Client:
    """A request's client: a key (its limits) or an anonymous address (per_ip)."""

    name: str
    profile: str | None = None
    spec: ApiKeyConfig | None = None  # None: anonymous

    @property
    def anonymous(self) -> bool:
        return self.spec is None

    def __repr__(self) -> str:  # the key itself never shows
        return f"Client({self.name}, profile={self.profile})"


ANONYMOUS = Client("anonymous")


def key_name(spec: ApiKeyConfig, hexdigest: str) -> str:
    return spec.name or f"key-{hexdigest[:8]}"


class KeyRing:
    """The configured keys, indexed by digest."""

    def __init__(self, keys: list[ApiKeyConfig]) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Client]] = {}
        for spec in keys:
            d = digest(spec.key)
            client = Client(key_name(spec, d.hex()), spec.profile, spec)
            self._by_digest[d] = (spec.key.encode("utf-8", "surrogateescape"), client)

    def find(self, presented: str) -> Client | None:
        raw = presented.encode("utf-8", "surrogateescape")
        hit = self._by_digest.get(hashlib.sha256(raw).digest())
        if hit is None:
            return None
        secret, client = hit
        return client if hmac.compare_digest(secret, raw) else None

    def __len__(self) -> int:
        return len(self._by_digest)

    def __repr__(self) -> str:
        return f"KeyRing(keys={len(self._by_digest)})"


def stored_client(spec_json: bytes | str, hexdigest: str) -> Client:
    """A key stored in Redis (``<prefix>:keys``): its block as JSON, without ``key``."""
    import msgspec

    fields = msgspec.json.decode(spec_json)
    if not isinstance(fields, dict):
        raise ValueError("a stored key must be a JSON object")
    fields.pop("key", None)
    spec = ApiKeyConfig.model_validate({**fields, "key": "x" * 8 + hexdigest})
    return Client(key_name(spec, hexdigest), spec.profile, spec)


def split_path_key(tail: str) -> tuple[str, str | None]:
    """``key/<KEY>/rest`` → (``rest``, KEY); anything else is returned as it is."""
    if tail.startswith("key/"):
        _, key, rest = (tail + "/").split("/", 2)
        return rest.rstrip("/"), key or None
    return tail, None


def mask_path_key(tail: str) -> str:
    """``key/<KEY>/rest`` with the key hidden (for logs)."""
    rest, key = split_path_key(tail)
    return f"key/***/{rest}" if key is not None else tail


def legacy_per_ip(rps: float, burst: int) -> RateLimitConfig:
    """``server.rate_limit`` (the older spelling) as an ``access.per_ip`` bucket."""
    return RateLimitConfig(rps=rps, burst=burst)
