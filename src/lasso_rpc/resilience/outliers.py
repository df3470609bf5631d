"""Outlier detection for one chain: which provider to eject, from what its attempts said.

The pipeline reports every finished attempt as one of three outcomes:

==========  ===========================================================================
outcome     when
==========  ===========================================================================
ok          answered (a result or a client error) no slower than ``latency_factor`` x the
            median of the other providers' latency for the method (+ ``latency_margin_ms``)
slow        answered slower than that; or timed out; or cancelled after losing the race to
            a hedge that was sent *after* it (a censored sample: it took at least that long
            while a peer with less time answered); or cut by the request's deadline
fault       a provider fault other than a timeout (connection refused, 5xx, bad body)
==========  ===========================================================================

A hedge that loses to the attempt it backed up says nothing (it started later), and neither do
rate-limit answers (the backoff handles them) or capability and lag skips.

A provider is ejected (``Ejection.eject_for``) after ``consecutive_slow`` slow outcomes in a row,
or when faults and slow outcomes are at least ``failure_rate`` of its outcomes over
``window_ms`` (with ``min_requests`` of them). A hung provider loses every race it starts, so it
is out after five of its calls: at 50 req/s within about a second. Consecutive faults are the
breaker's job (``resilience/breaker.py``); the window catches the intermittent ones.

Never ejected: the last usable provider of the chain (not cordoned, breaker not open, not
ejected), nor more than ``max_ejected_percent`` of the providers (at least one may be).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from lasso_rpc.config.resilience import EjectionConfig
from lasso_rpc.resilience.breaker import BreakerState
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["OutlierDetector"]

_SLOTS = 10
_PEERS_MS = 250.0
_MAX_PEER_KEYS = 4096


class _Track:
    """One provider's recent outcomes: a run of slow ones and a ring of per-slot counts (with
    their running sums, so an outcome costs no loop over the ring)."""

    __slots__ = ("bad", "idx", "nbad", "ntotal", "run", "total")

    def __init__(self) -> None:
        self.run = 0
        self.idx = -1
        self.total = [0] * _SLOTS
        self.bad = [0] * _SLOTS
        self.nbad = self.ntotal = 0

    def add(self, slot: int, bad: bool) -> None:
        """Count one outcome in absolute slot ``slot`` (the window's sums: ``nbad``, ``ntotal``)."""
        if slot > self.idx:
            if slot - self.idx >= _SLOTS:
                self.total = [0] * _SLOTS
                self.bad = [0] * _SLOTS
                self.nbad = self.ntotal = 0
            else:
                total, bads = self.total, self.bad
                for k in range(self.idx + 1, slot + 1):
                    i = k % _SLOTS
                    self.ntotal -= total[i]
                    self.nbad -= bads[i]
                    total[i] = bads[i] = 0
            self.idx = slot
        i = self.idx % _SLOTS
        self.total[i] += 1
        self.ntotal += 1
        if bad:
            self.bad[i] += 1
            self.nbad += 1

    def clear(self) -> None:
        self.run = 0
        self.idx = -1
        self.total = [0] * _SLOTS
        self.bad = [0] * _SLOTS
        self.nbad = self.ntotal = 0


class OutlierDetector:
    """Fed by the pipeline (``ok``, ``slow``, ``fault``); ejects through ``ProviderRuntime``."""

    def __init__(self, providers: Mapping[str, ProviderRuntime], config: EjectionConfig) -> None:
        self._providers = providers
        self._config = config
        self._enabled = config.enabled
        self._margin_ms = config.latency_margin_ms
        self._slot_ms = config.window_ms / _SLOTS
        self._tracks: dict[str, _Track] = {pid: _Track() for pid in providers}
        #: (provider, method, transport) -> (when, peers' median): refreshed every _PEERS_MS.
        self._peers: dict[tuple[str, str, str], tuple[float, float | None]] = {}

    @property
    def enabled(self) -> bool:
        return self._config.enabled

    # -- outcomes --------------------------------------------------------------------------

    def ok(
        self, p: ProviderRuntime, method: str, transport: str, latency_ms: float, now_ms: float
    ) -> None:
        """An answer; slow when far above the other providers' latency for ``method``."""
        if not self._enabled:
            return
        if latency_ms > self._margin_ms:
            peers = self._peer_median(p, method, transport, now_ms)
            c = self._config
            if (
                peers is not None
                and latency_ms > peers * c.latency_factor
                and latency_ms > peers + c.latency_margin_ms
            ):
                why = f"{latency_ms:.0f} ms for {method} where the others take {peers:.0f} ms"
                self._count(p, now_ms, slow=True, bad=True, why=why)
                return
        # The common case, inline: an answer ends a slow run and counts in the window.
        t = self._tracks.get(p.id)
        if t is None:
            t = self._tracks[p.id] = _Track()
        t.run = 0
        slot = int(now_ms // self._slot_ms)
        if slot == t.idx:
            t.total[slot % _SLOTS] += 1
            t.ntotal += 1
        else:
            t.add(slot, False)

    def slow(self, p: ProviderRuntime, now_ms: float, why: str) -> None:
        """Timed out, cut by the deadline, or lost a race it had a head start in."""
        if self._config.enabled:
            self._count(p, now_ms, slow=True, bad=True, why=why)

    def fault(self, p: ProviderRuntime, now_ms: float) -> None:
        """A provider fault that is not a timeout."""
        if self._config.enabled:
            self._count(p, now_ms, slow=None, bad=True, why="")

    # -- reading ---------------------------------------------------------------------------

    def _peer_median(
        self, p: ProviderRuntime, method: str, transport: str, now_ms: float
    ) -> float | None:
        """``peer_median_ms``, computed at most every ``_PEERS_MS`` per key."""
        key = (p.id, method, transport)
        hit = self._peers.get(key)
        if hit is not None and now_ms - hit[0] < _PEERS_MS:
            return hit[1]
        if len(self._peers) >= _MAX_PEER_KEYS:
            self._peers.clear()  # clients choose method names: stay bounded
        value = self.peer_median_ms(p, method, transport)
        self._peers[key] = (now_ms, value)
        return value

    def peer_median_ms(self, p: ProviderRuntime, method: str, transport: str) -> float | None:
        """Median latency (EWMA) of the other providers for ``method``; None without data."""
        xs: list[float] = []
        for q in self._providers.values():
            if q is not p:
                s = q.stats.get(method, transport)
                if s is not None and s.ewma_ms is not None:
                    xs.append(s.ewma_ms)
        if not xs:
            return None
        xs.sort()
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0

    def may_eject(self, p: ProviderRuntime, now_ms: float) -> bool:
        """Ejecting ``p`` keeps a usable provider and stays within ``max_ejected_percent``."""
        others_usable = 0
        ejected = 0
        for q in self._providers.values():
            if q.ejection.active(now_ms):
                ejected += 1
            elif q is not p and not q.cordoned and q.breaker.state is not BreakerState.OPEN:
                others_usable += 1
        cap = max(1, math.floor(len(self._providers) * self._config.max_ejected_percent / 100))
        return others_usable > 0 and ejected < cap

    # -- deciding --------------------------------------------------------------------------

    def _count(
        self, p: ProviderRuntime, now_ms: float, *, slow: bool | None, bad: bool, why: str
    ) -> None:
        t = self._tracks.get(p.id)
        if t is None:
            t = self._tracks[p.id] = _Track()
        if slow is True:
            t.run += 1
        elif slow is False:
            t.run = 0
        t.add(int(now_ms // self._slot_ms), bad)
        if not bad or p.ejection.ejected:
            return
        nbad, total = t.nbad, t.ntotal
        c = self._config
        if t.run >= c.consecutive_slow:
            reason = f"{t.run} slow attempts in a row (last: {why})"
        elif total >= c.min_requests and nbad >= c.failure_rate * total:
            reason = f"{nbad} of {total} attempts failed or slow within {c.window_ms} ms"
        else:
            return
        if self.may_eject(p, now_ms):
            p.ejection.eject_for(reason)
            t.clear()

    def __repr__(self) -> str:
        runs = ", ".join(f"{pid}: {t.run}" for pid, t in self._tracks.items())
        return f"OutlierDetector(enabled={self._config.enabled}, slow runs: {runs})"
