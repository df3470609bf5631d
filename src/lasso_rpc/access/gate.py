"""``AccessGate``: who is calling, may they use this profile, and are they within their limits.

The server asks it twice per request: ``identify`` before routing (the key decides the
profile), ``check`` once the body is decoded (a batch costs one token per call; method rules
count their calls). Refusals are ``Unauthorized`` (401), ``Forbidden`` (403) and
``RateLimited`` (429 with ``retry_after_s``), all JSON-RPC error -32005/-32006 from the
server's one error table.

When the shared store cannot answer (Redis down, the hub gone), ``access.on_state_down``
decides: ``open`` lets the call through, ``local`` checks it against this process's own
buckets, ``closed`` refuses it. Each such call is counted (``lasso_access_fallbacks_total``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lasso_rpc.access.buckets import PASS, MemoryBuckets, Verdict
from lasso_rpc.access.keys import ANONYMOUS, Client, KeyRing
from lasso_rpc.access.limits import checks_for, describe_check
from lasso_rpc.access.redis_keys import RedisKeys
from lasso_rpc.access.redis_store import RedisStore
from lasso_rpc.access.stores import BucketStore, HubStore, LocalStore
from lasso_rpc.clock import Clock
from lasso_rpc.config.models import Config
from lasso_rpc.config.shared import AccessConfig, RateLimitConfig
from lasso_rpc.errors import Forbidden, LassoError, RateLimited, Unauthorized

if TYPE_CHECKING:
    from lasso_rpc.cluster.hub_link import HubLink
    from lasso_rpc.cluster.redis_guard import RedisGuard

__all__ = ["AccessGate", "build_gate"]

_NO_KEY = (
    "an API key is required: send it as X-Lasso-Key, Authorization: Bearer, "
    "or in the path /rpc/key/<key>/..."
)


class AccessGate:
    def __init__(
        self,
        access: AccessConfig,
        store: BucketStore,
        *,
        clock: Clock,
        redis_keys: RedisKeys | None = None,
    ) -> None:
        self.access = access
        self.per_ip: RateLimitConfig | None = access.per_ip
        self.store = store
        self._ring = KeyRing(access.keys)
        self._redis_keys = redis_keys
        self._anonymous = access.allows_anonymous
        self._local = MemoryBuckets(clock)
        #: (client name, outcome) -> calls; outcome: allowed | limited | unauthorized | forbidden
        self.counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: (client name, which limit) -> refusals
        self.limited: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: checks the shared store could not answer, by what was done instead
        self.fallbacks: defaultdict[str, int] = defaultdict(int)

    async def identify(self, presented: str | None) -> Client:
        if presented:
            client = self._ring.find(presented)
            if client is None and self._redis_keys is not None:
                client = await self._redis_keys.find(presented)
            if client is None:
                self.counts["unknown", "unauthorized"] += 1
                raise Unauthorized("unknown API key")
            return client
        if not self._anonymous:
            self.counts["anonymous", "unauthorized"] += 1
            raise Unauthorized(_NO_KEY)
        return ANONYMOUS

    def profile_for(self, client: Client, wanted: str | None) -> str | None:
        """The profile serving ``client`` when the path names ``wanted`` (or none)."""
        if client.profile is None:
            return wanted
        if wanted is not None and wanted != client.profile:
            self.counts[client.name, "forbidden"] += 1
            raise Forbidden(f"this API key may not use profile {wanted!r}")
        return client.profile

    async def check(self, client: Client, peer: str, methods: Sequence[str]) -> None:
        checks = checks_for(client, peer, methods, self.per_ip)
        if not checks:
            self.counts[client.name, "allowed"] += 1
            return
        try:
            verdict = await self.store.take(checks)
        except LassoError:
            mode = self.access.on_state_down
            self.fallbacks[mode] += 1
            if mode == "open":
                verdict = PASS
            elif mode == "local":
                verdict = self._local.take(checks)
            else:
                verdict = Verdict(False, 1.0, 0)
        if verdict.ok:
            self.counts[client.name, "allowed"] += 1
            return
        which = describe_check(checks[max(verdict.failed, 0)])
        self.counts[client.name, "limited"] += 1
        self.limited[client.name, which] += 1
        retry = verdict.retry_after_s
        data = {"limit": which, "retry_after_s": None if retry == float("inf") else round(retry, 3)}
        raise RateLimited(
            f"rate limit exceeded ({which})",
            data=data,
            retry_after_s=None if retry == float("inf") else retry,
        )

    async def aclose(self) -> None:
        await self.store.aclose()

    def __repr__(self) -> str:
        return (
            f"AccessGate(keys={len(self._ring)}, store={self.store.kind}, "
            f"anonymous={self._anonymous}, per_ip={self.per_ip is not None})"
        )


def build_gate(
    config: Config,
    *,
    clock: Clock,
    hub: HubLink | None = None,
    guard: RedisGuard | None = None,
) -> AccessGate | None:
    """The gate ``config`` asks for (None: no access control, no client limit)."""
    access = config.access
    legacy = config.server.rate_limit
    if access is None and legacy is None:
        return None
    if access is None:
        access = AccessConfig()
    if access.per_ip is None and legacy is not None:  # the older spelling
        per_ip = RateLimitConfig(rps=legacy.requests_per_second, burst=legacy.burst)
        access = access.model_copy(update={"per_ip": per_ip})
    store: BucketStore
    if guard is not None:
        store = RedisStore(guard, config.state.prefix, clock=clock)
    elif hub is not None:
        store = HubStore(hub)
    else:
        store = LocalStore(MemoryBuckets(clock))
    keys = (
        RedisKeys(guard, config.state.prefix) if guard is not None and access.redis_keys else None
    )
    return AccessGate(access, store, clock=clock, redis_keys=keys)
