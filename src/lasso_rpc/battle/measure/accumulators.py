"""Mutable per-bucket counters the collector fills; ``freeze`` turns one into its frozen value."""

from __future__ import annotations

from lasso_rpc.battle.measure.data import ClientBucket, RouterBucket

__all__ = ["ClientAcc", "RouterAcc", "bump"]


class RouterAcc:
    __slots__ = (
        "attempts", "errors", "failovers", "first", "hedged", "requests", "served", "status",
    )  # fmt: skip

    def __init__(self) -> None:
        self.requests = 0
        self.status: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.failovers = 0
        self.hedged = 0
        self.served: dict[str, int] = {}
        self.attempts: dict[str, dict[str, int]] = {}
        self.first: dict[str, int] = {}

    def freeze(self, hist: str | None) -> RouterBucket:
        attempts = {p: dict(o) for p, o in self.attempts.items()}
        return RouterBucket(
            self.requests, dict(self.status), dict(self.errors), self.failovers, self.hedged,
            dict(self.served), attempts, hist, dict(self.first),
        )  # fmt: skip


class ClientAcc:
    __slots__ = (
        "by_class", "client_errors", "errors", "failovers", "hedged", "ok", "providers", "requests",
    )  # fmt: skip

    def __init__(self) -> None:
        self.requests = self.ok = self.client_errors = self.errors = 0
        self.failovers = self.hedged = 0
        self.by_class: dict[str, int] = {}
        self.providers: dict[str, int] = {}

    def freeze(self, hist: str | None) -> ClientBucket:
        return ClientBucket(
            self.requests, self.ok, self.client_errors, self.errors, dict(self.by_class),
            self.failovers, self.hedged, dict(self.providers), hist,
        )  # fmt: skip


def bump(d: dict[str, int], key: str) -> None:
    d[key] = d.get(key, 0) + 1
