"""What both HTTP transports share: a parsed upstream URL, its request headers, Retry-After.

The URL's path, query and userinfo may hold API keys: only ``Endpoint.origin``
(``scheme://host:port``) is safe to show in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "Endpoint", "parse_retry_after", "transport_endpoint"]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed upstream URL. ``origin`` is the only part safe to show anywhere."""

    scheme: str
    host: str
    port: int
    target: str  # path + query: secret
    host_header: str
    authorization: str | None  # from userinfo: secret

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def url_without_userinfo(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.target}"

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        # Error messages below never quote the URL: it may carry a key.
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError("upstream URL scheme must be http or https")
        host = parts.hostname
        if not host:
            raise ValueError("upstream URL has no host")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise ValueError("upstream URL has an invalid port") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not target.isascii() or any(c <= " " or c == "\x7f" for c in target):
            raise ValueError("upstream URL path holds characters not allowed in a request target")
        bracketed = f"[{host}]" if ":" in host else host
        default_port = 443 if scheme == "https" else 80
        host_header = bracketed if port == default_port else f"{bracketed}:{port}"
        authorization = None
        if parts.username is not None:
            creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(creds.encode()).decode("ascii")
        return cls(scheme, host, port, target, host_header, authorization)

    def request_headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        """Headers every request carries (besides Host and Content-Length); extra ones win."""
        headers = {"Content-Type": "application/json", "User-Agent": "lasso-rpc"}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization
        for name, value in (extra or {}).items():
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the transport")
            if any(c in name or c in value for c in "\r\n\0") or not name.strip():
                raise ValueError(f"invalid header {name!r}")
            for old in [k for k in headers if k.lower() == name.lower()]:
                del headers[old]
            headers[name] = value
        return headers


def transport_endpoint(url: str, *, pool_size: int, max_response_bytes: int) -> Endpoint:
    """The checks every ``UpstreamTransport`` constructor makes, then the parsed URL."""
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    if max_response_bytes < 0:
        raise ValueError("max_response_bytes must not be negative")
    return Endpoint.parse(url)


def parse_retry_after(value: str | bytes | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is unusable
