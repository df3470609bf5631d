"""Who is asking: loopback clients get the control API and the dashboard without more ado."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(remote: str | None) -> bool:
    """``request.remote`` is 127.0.0.0/8 or ::1 (an IPv6 zone suffix is ignored)."""
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False
