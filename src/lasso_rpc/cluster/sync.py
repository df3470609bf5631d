"""``StateSync``: a Router's provider state, kept in step with the other processes' through Peers.

Out: a breaker that opens or closes, a cordon set or lifted (``breaker.changed`` and
``provider.health`` on the bus), and a reload asked through the control API
(``config.reloaded`` with source "control api") become records or commands, published at once.
In: the others' records are applied when newer than what this process knows (``records.newer``);
a record about a provider this process does not have is kept (a reload may add it) but
changes nothing. While a record is applied, the events it causes are not published again.

After a reload the new runtimes start closed and uncordoned: the known records are applied to
them again, so a reload never forgets an operator's cordon or an open breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Any

from lasso_rpc.cluster.peers import Peers, PeerStatus
from lasso_rpc.cluster.records import Command, StateRecord, newer, target_of
from lasso_rpc.errors import ConfigError
from lasso_rpc.observability.events import (
    BreakerChanged,
    ConfigReloaded,
    Event,
    ProviderEjection,
    ProviderHealth,
    RequestFinished,
)
from lasso_rpc.resilience.breaker import BreakerState
from lasso_rpc.router import Router
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["StateSync"]

log = logging.getLogger("lasso_rpc.cluster")

_CONTROL = "control api"
_TICK_S = 1e-6  # a local change is always newer than what this process knew


class StateSync:
    """``await sync.start()`` once the router runs; ``await sync.aclose()`` before it closes."""

    def __init__(
        self,
        router: Router,
        peers: Peers,
        *,
        node_id: str,
        reloader: Callable[[], Any] | None = None,
    ) -> None:
        self._router = router
        self._clock = router.clock
        self.peers = peers
        self.node_id = node_id
        self._reloader = reloader
        self._known: dict[str, StateRecord] = {}
        self._applying = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.published = 0
        self.applied = 0
        self._unsubscribe: Callable[[], None] | None = router.bus.subscribe(self._on_event)

    async def start(self) -> None:
        await self.peers.start(self)

    async def aclose(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for t in list(self._tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.peers.aclose()

    def status(self) -> PeerStatus:
        return self.peers.status()

    # -- out -------------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        kind = type(ev)
        if kind is RequestFinished or self._applying:
            return
        if kind is BreakerChanged:
            assert isinstance(ev, BreakerChanged)
            self._breaker_changed(ev)
        elif kind is ProviderHealth:
            assert isinstance(ev, ProviderHealth)
            self._health(ev)
        elif kind is ProviderEjection:
            assert isinstance(ev, ProviderEjection)
            self._publish(
                "eject",
                target_of(ev.profile, ev.chain, ev.provider),
                "ejected" if ev.ejected else "restored",
                until=ev.until_s,
                reason=ev.reason,
            )
        elif kind is ConfigReloaded:
            assert isinstance(ev, ConfigReloaded)
            self._reloaded(ev)

    def _breaker_changed(self, ev: BreakerChanged) -> None:
        if ev.to_state == BreakerState.HALF_OPEN:
            return  # reached by each process by itself when the deadline passes
        p = self._provider(ev.profile, ev.chain, ev.provider)
        breaker = p.breaker if p is not None else None
        if breaker is None or breaker.state != ev.to_state:
            return  # an old runtime (before a reload), or already moved on
        until: float | None = None
        held = breaker.snapshot().held
        if ev.to_state == BreakerState.OPEN and not held:
            deadline = breaker.open_until_ms
            if deadline is not None:
                until = self._clock.wall_s() + (deadline - self._clock.now_ms()) / 1000.0
        self._publish(
            "breaker",
            target_of(ev.profile, ev.chain, ev.provider),
            ev.to_state,
            until=until,
            held=held,
            opens=breaker.consecutive_opens,
            reason=ev.reason,
        )

    def _health(self, ev: ProviderHealth) -> None:
        target = target_of(ev.profile, ev.chain, ev.provider)
        known = self._known.get(f"cordon:{target}")
        if ev.cordoned != (known is not None and known.state == "on"):
            self._publish("cordon", target, "on" if ev.cordoned else "off")

    def _reloaded(self, ev: ConfigReloaded) -> None:
        if not ev.ok:
            return
        self._reapply()
        if ev.source == _CONTROL:
            self.peers.publish(Command(name="reload", origin=self.node_id, ts=ev.ts))
            self.published += 1

    def _publish(self, aspect: Any, target: str, state: str, **kw: Any) -> None:
        field = f"{aspect}:{target}"
        ts = self._clock.wall_s()
        known = self._known.get(field)
        if known is not None and ts <= known.ts:
            ts = known.ts + _TICK_S
        rec = StateRecord(
            aspect=aspect, target=target, state=state, ts=ts, origin=self.node_id, **kw
        )
        self._known[field] = rec
        self.published += 1
        self.peers.publish(rec)

    # -- in (PeerSink) -----------------------------------------------------------------------

    def apply(self, record: StateRecord) -> None:
        if record.origin == self.node_id or not newer(record, self._known.get(record.field)):
            return
        self._known[record.field] = record
        self.applied += 1
        self._enact(record)

    def run_command(self, command: Command) -> None:
        if command.origin == self.node_id or command.name != "reload" or self._reloader is None:
            return
        task = asyncio.get_running_loop().create_task(self._reload(command.origin))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def records(self) -> list[StateRecord]:
        return list(self._known.values())

    async def _reload(self, origin: str) -> None:
        with contextlib.suppress(ConfigError):  # the old config keeps serving; an event says why
            await self._router.reload(self._reloader, f"peer {origin}")

    # -- applying ----------------------------------------------------------------------------

    def _reapply(self) -> None:
        for rec in list(self._known.values()):
            self._enact(rec)

    def _enact(self, rec: StateRecord) -> None:
        profile, chain, pid = rec.target.split("/", 2)
        p = self._provider(profile, chain, pid)
        if p is None:
            return
        self._applying = True
        try:
            if rec.aspect == "breaker":
                self._enact_breaker(p, rec)
            elif rec.aspect == "cordon":
                self._router.resolve(chain, profile).set_cordoned(pid, rec.state == "on")
            elif rec.aspect == "eject":
                self._enact_ejection(p, rec)
        except Exception:  # a bad record must not stop the others
            log.exception("could not apply shared state %s", rec.field)
        finally:
            self._applying = False

    def _enact_breaker(self, p: ProviderRuntime, rec: StateRecord) -> None:
        reason = (
            f"shared by {rec.origin}: {rec.reason}" if rec.reason else f"shared by {rec.origin}"
        )
        if rec.state != BreakerState.OPEN:
            p.breaker.adopt(
                BreakerState.CLOSED, open_until_ms=0.0, held=False, opens=0, reason=reason
            )
            return
        now_ms = self._clock.now_ms()
        if rec.held or rec.until is None:
            until_ms = math.inf
        else:
            until_ms = now_ms + (rec.until - self._clock.wall_s()) * 1000.0
            if until_ms <= now_ms:
                return  # already past: each process probes by itself
        p.breaker.adopt(
            BreakerState.OPEN,
            open_until_ms=until_ms,
            held=rec.held,
            opens=rec.opens,
            reason=reason,
        )

    def _enact_ejection(self, p: ProviderRuntime, rec: StateRecord) -> None:
        reason = (
            f"shared by {rec.origin}: {rec.reason}" if rec.reason else f"shared by {rec.origin}"
        )
        if rec.state != "ejected":
            p.restore(reason)
            return
        if rec.until is None:
            return
        now_ms = self._clock.now_ms()
        until_ms = now_ms + (rec.until - self._clock.wall_s()) * 1000.0
        if until_ms > now_ms:  # else over already: each process brings it back by itself
            p.eject(until_ms, reason)

    def _provider(self, profile: str, chain: str, pid: str) -> ProviderRuntime | None:
        prof = self._router.profiles.get(profile)
        rt = prof.chains.get(chain) if prof is not None else None
        return rt.providers.get(pid) if rt is not None else None

    def __repr__(self) -> str:
        return (
            f"StateSync({self.node_id}, backend={self.peers.backend}, known={len(self._known)},"
            f" published={self.published}, applied={self.applied})"
        )
