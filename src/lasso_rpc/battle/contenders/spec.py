"""What the contender sidecar is told and what it answers: frozen values and the wire format.

The spec is one JSON line on the sidecar's stdin (times in seconds, durations in ms)::

    {"client": "viem" | "ethers", "chain_id": 1, "timeout_ms": 30000, "warmup": true,
     "providers": [{"id": "alpha", "url": "http://..."}],
     "requests": [{"offset_s": 0.0, "method": "eth_blockNumber", "params": []}, ...],
     "options": {...}}    # ViemOptions / EthersOptions fields that are set; {} = library defaults

Each finished request comes back as one ``{"type": "request", ...}`` line (``ContenderRecord``);
the run ends with one ``{"type": "summary", ...}`` line (``SidecarSummary``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec
import orjson

if TYPE_CHECKING:
    from lasso_rpc.battle.load.workload import Workload

__all__ = [
    "ClientName",
    "ContenderRecord",
    "EthersOptions",
    "ProviderTarget",
    "ScheduledCall",
    "SidecarReady",
    "SidecarSpec",
    "SidecarSummary",
    "ViemOptions",
    "schedule_of",
]

ClientName = Literal["viem", "ethers"]


@dataclass(frozen=True, slots=True)
class ProviderTarget:
    id: str
    url: str


@dataclass(frozen=True, slots=True)
class ScheduledCall:
    """One request of the open-loop schedule; ``params`` is encoded JSON, as ``Workload`` yields."""

    offset_s: float
    method: str
    params: bytes = b"[]"


def schedule_of(workload: Workload, rng: random.Random) -> tuple[ScheduledCall, ...]:
    """The workload's schedule, fixed: the same seed gives the router's load generator and the
    sidecar identical requests at identical offsets."""
    return tuple(ScheduledCall(t, m, p) for t, m, p in workload.schedule(rng))


@dataclass(frozen=True, slots=True)
class ViemOptions:
    """viem ``fallback([http(url), ...], {rank, retryCount, retryDelay})``; None = viem's default
    (retryCount 3 over the whole fallback chain, retryDelay 150 ms, http timeout 10 s)."""

    rank: bool = False
    retry_count: int | None = None
    retry_delay_ms: int | None = None
    transport_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class EthersOptions:
    """ethers v6 ``FallbackProvider([JsonRpcProvider, ...])``; None = ethers' default (quorum
    ceil(n/2), stallTimeout 400 ms, request coalescing cacheTimeout 250 ms, fetch timeout 300 s).
    ``rpc_*`` go to each ``JsonRpcProvider`` (``rpc_static_network=True``: no eth_chainId probe)."""

    quorum: int | None = None
    stall_timeout_ms: int | None = None
    cache_timeout_ms: int | None = None
    transport_timeout_ms: int | None = None
    rpc_static_network: bool | None = None
    rpc_batch_max_count: int | None = None
    rpc_cache_timeout: int | None = None


_RPC_NAMES = {
    "rpc_static_network": "rpc_staticNetwork",
    "rpc_batch_max_count": "rpc_batchMaxCount",
    "rpc_cache_timeout": "rpc_cacheTimeout",
}


@dataclass(frozen=True, slots=True)
class SidecarSpec:
    """One contender run: a client library over ``providers``, sending ``calls`` open loop."""

    client: ClientName
    providers: tuple[ProviderTarget, ...]
    calls: tuple[ScheduledCall, ...]
    chain_id: int = 1
    timeout_ms: int = 30_000  # the caller's deadline per request (outcome "timeout")
    options: ViemOptions | EthersOptions | None = None  # None: the library's defaults
    warmup: bool = True  # one eth_blockNumber through the client before "ready"

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", tuple(self.providers))
        object.__setattr__(self, "calls", tuple(self.calls))
        if self.client not in ("viem", "ethers"):
            raise ValueError(f'client must be "viem" or "ethers", got {self.client!r}')
        ids = [p.id for p in self.providers]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("providers must be non-empty with unique ids")
        last = 0.0
        for call in self.calls:
            if not math.isfinite(call.offset_s) or call.offset_s < last:
                raise ValueError("call offsets must be finite, >= 0 and non-decreasing")
            last = call.offset_s
        if self.timeout_ms <= 0:
            raise ValueError("timeout_ms must be > 0")
        wanted = ViemOptions if self.client == "viem" else EthersOptions
        if self.options is not None and not isinstance(self.options, wanted):
            raise ValueError(f"{self.client} takes {wanted.__name__}, got {self.options!r}")

    @classmethod
    def of(
        cls,
        client: ClientName,
        providers: Iterable[tuple[str, str]] | Iterable[ProviderTarget],
        calls: Iterable[ScheduledCall],
        **kwargs: Any,
    ) -> SidecarSpec:
        targets = tuple(
            p if isinstance(p, ProviderTarget) else ProviderTarget(*p) for p in providers
        )
        return cls(client, targets, tuple(calls), **kwargs)

    def options_dict(self) -> dict[str, Any]:
        if self.options is None:
            return {}
        out = {}
        for f in dataclasses.fields(self.options):
            value = getattr(self.options, f.name)
            if value is not None:
                out[_RPC_NAMES.get(f.name, f.name)] = value
        return out

    def encode(self) -> bytes:
        """The spec line (newline included); params are spliced in as the JSON they already are."""
        doc = {
            "client": self.client,
            "chain_id": self.chain_id,
            "timeout_ms": self.timeout_ms,
            "providers": [{"id": p.id, "url": p.url} for p in self.providers],
            "requests": [
                {"offset_s": c.offset_s, "method": c.method, "params": orjson.Fragment(c.params)}
                for c in self.calls
            ],
            "options": {**self.options_dict(), "warmup": self.warmup},
        }
        return orjson.dumps(doc) + b"\n"


@dataclass(frozen=True, slots=True)
class ContenderRecord:
    """One request as the client library saw it; times in seconds since the run's ``t0``.

    ``error_class`` is in the library's own words (viem's error class, e.g.
    ``HttpRequestError``; ethers' error code, e.g. ``SERVER_ERROR``) or the sidecar's:
    ``timeout`` (no answer within ``timeout_ms``), ``cancelled`` (the run was stopped),
    ``UnsupportedMethod`` (ethers has no typed call for it). ``provider`` and ``attempts`` only
    where the library tells (viem's ``onResponse``); None otherwise.
    """

    i: int
    method: str
    intended_s: float
    start_s: float
    end_s: float
    outcome: Literal["ok", "error"]
    error_class: str | None = None
    error: str | None = None  # short message, provider URLs replaced by their ids
    rpc_code: int | None = None  # a JSON-RPC error code from the provider, when there is one
    provider: str | None = None
    attempts: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def latency_ms(self) -> float:
        return (self.end_s - self.intended_s) * 1000.0

    @property
    def service_ms(self) -> float:
        return (self.end_s - self.start_s) * 1000.0


@dataclass(frozen=True, slots=True)
class SidecarReady:
    """The clients are built (and warmed up): what runs and how it is configured."""

    library: str
    version: str | None
    quorum: int | None  # ethers' effective quorum
    warmup: str | None  # "ok", the warm-up's error message, or None when skipped


@dataclass(frozen=True, slots=True)
class SidecarSummary:
    scheduled: int
    sent: int
    ok: int
    errors: int
    cancelled: int
    unsent: int  # not sent because the run was stopped
    stopped_early: bool
    max_send_lag_ms: float  # how late the sidecar sent vs intended (its own lag, open loop)
    elapsed_s: float
    clock: str  # "shared": t0 taken as is (same monotonic clock); "local": mapped at "go"
    go_skew_ms: float  # how long after t0 the sidecar got "go"


# -- wire (sidecar → driver) ----------------------------------------------------------------


class _Request(msgspec.Struct, tag="request"):
    i: int
    method: str
    intended_s: float
    start_s: float
    end_s: float
    ok: bool
    error_class: str | None = None
    error: str | None = None
    rpc_code: int | None = None
    provider: str | None = None
    attempts: int | None = None

    def value(self) -> ContenderRecord:
        return ContenderRecord(
            self.i, self.method, self.intended_s, self.start_s, self.end_s,
            "ok" if self.ok else "error", self.error_class, self.error, self.rpc_code,
            self.provider, self.attempts,
        )  # fmt: skip


class _Ready(msgspec.Struct, tag="ready"):
    library: str
    version: str | None = None
    quorum: int | None = None
    warmup: str | None = None


class _Started(msgspec.Struct, tag="started"):
    clock: str
    skew_ms: float


class _Summary(msgspec.Struct, tag="summary"):
    scheduled: int
    sent: int
    ok: int
    errors: int
    cancelled: int
    unsent: int
    stopped_early: bool
    max_send_lag_ms: float
    elapsed_s: float


class _Fatal(msgspec.Struct, tag="fatal"):
    error: str


Line: TypeAlias = _Request | _Ready | _Started | _Summary | _Fatal
line_decoder: msgspec.json.Decoder[Line] = msgspec.json.Decoder(Line)
