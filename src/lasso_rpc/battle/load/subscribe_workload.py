"""``Workload.subscribe``: N WebSocket clients holding a subscription through the router."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lasso_rpc.errors import ConfigError

__all__ = ["SubscribeWorkload"]

_KINDS = ("newHeads", "logs")
_KEYS = {"shape", "count", "kind", "duration_s", "filter", "path"}


@dataclass(frozen=True, slots=True)
class SubscribeWorkload:
    count: int
    kind: str = "newHeads"
    duration_s: float = 30.0
    filter: Mapping[str, Any] | None = field(default=None)
    path: str = "/ws/rpc/ethereum"

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(
                [f"workload.kind: one of {', '.join(_KINDS)} expected, got {self.kind!r}"]
            )
        if self.count < 1 or self.duration_s <= 0:
            raise ConfigError(["workload: count must be >= 1 and duration_s > 0"])
        if self.kind == "newHeads" and self.filter:
            raise ConfigError(["workload.filter: only a logs subscription takes a filter"])

    def scaled(self, factor: float) -> SubscribeWorkload:
        return dataclasses.replace(self, duration_s=self.duration_s * factor)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"shape": "subscribe", "count": self.count, "kind": self.kind}
        d["duration_s"] = self.duration_s
        if self.filter:
            d["filter"] = dict(self.filter)
        if self.path != "/ws/rpc/ethereum":
            d["path"] = self.path
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "workload") -> SubscribeWorkload:
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ConfigError(
                [
                    f"{where}.{k}: unknown key for shape 'subscribe'; allowed: {sorted(_KEYS)}"
                    for k in unknown
                ]
            )
        if "count" not in data:
            raise ConfigError([f"{where}.count: required"])
        return cls(
            count=int(data["count"]),
            kind=str(data.get("kind", "newHeads")),
            duration_s=float(data.get("duration_s", 30.0)),
            filter=data.get("filter"),
            path=str(data.get("path", "/ws/rpc/ethereum")),
        )
