"""A request's bucket checks, from its client and the methods it calls (pure; no I/O).

- anonymous: ``per_ip`` (one bucket per client address), if configured;
- a key: its ``rate_limit`` and ``quota``, then each ``methods`` rule with the calls whose
  method matches one of its globs (a rule no call matches costs nothing).

A batch costs one token per call; rules count their matching calls. The check keys name the
client (``k:acme``), never the secret.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Sequence

from lasso_rpc.access.buckets import BUCKET, WINDOW, Check
from lasso_rpc.access.keys import Client
from lasso_rpc.config.shared import QuotaConfig, RateLimitConfig

__all__ = ["checks_for", "describe_check"]

_RULE = re.compile(r":m\d+(:|$)")  # names never hold a colon (config/shared.py)


def _bucket(key: str, rl: RateLimitConfig, cost: int) -> Check:
    return Check(key, BUCKET, rl.rps, float(rl.capacity), cost)


def _window(key: str, q: QuotaConfig, cost: int) -> Check:
    return Check(f"{key}:{q.period_s}", WINDOW, float(q.period_s), float(q.requests), cost)


@functools.lru_cache(maxsize=8192)
def _matches(globs: tuple[str, ...], method: str) -> bool:
    return any(fnmatch.fnmatchcase(method, g) for g in globs)


def checks_for(
    client: Client, peer: str, methods: Sequence[str], per_ip: RateLimitConfig | None
) -> list[Check]:
    n = len(methods)
    spec = client.spec
    if spec is None:
        return [_bucket(f"ip:{peer}", per_ip, n)] if per_ip is not None else []
    name = client.name
    out: list[Check] = []
    if spec.rate_limit is not None:
        out.append(_bucket(f"k:{name}", spec.rate_limit, n))
    if spec.quota is not None:
        out.append(_window(f"q:{name}", spec.quota, n))
    for i, rule in enumerate(spec.methods):
        globs = tuple(rule.methods)
        m = sum(1 for method in methods if _matches(globs, method))
        if not m:
            continue
        if rule.rate_limit is not None:
            out.append(_bucket(f"k:{name}:m{i}", rule.rate_limit, m))
        if rule.quota is not None:
            out.append(_window(f"q:{name}:m{i}", rule.quota, m))
    return out


def describe_check(check: Check) -> str:
    """Which limit refused (for the error's data and the metrics label)."""
    key = check.key
    if key.startswith("ip:"):
        return "per_ip"
    kind = "quota" if check.kind == WINDOW else "rate_limit"
    return f"methods {kind}" if _RULE.search(key) else kind
