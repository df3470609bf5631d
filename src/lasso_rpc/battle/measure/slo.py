"""SLO targets and their verdicts against an :class:`~lasso_rpc.battle.measure.analyzer.Analysis`.

=========================  ==  ===============================================================
key                        op  measured as
=========================  ==  ===============================================================
success_rate               >=  summary.success_rate (client view); needs requests
p50/p90/p95/p99_latency_ms <=  client latency percentile (HDR); needs requests
max_latency_ms             <=  slowest client request; needs requests
max_failover_latency_ms    <=  slowest router request that failed over; needs a failover
max_recovery_s             <=  every chaos event's recovery_s (None = never recovered: fails);
                               needs chaos events
max_gap_count              <=  missing block numbers over every WS subscriber; needs subscribers
max_duplicate_count        <=  duplicate deliveries over every WS subscriber; needs subscribers
min_ws_uptime              >=  subscribed-and-connected time / subscribed time; needs subscribers
max_rss_mb                 <=  router RSS peak; needs system samples
max_rss_growth_pct         <=  router RSS, last 10 % of samples vs first 10 %; needs 2 samples
min_throughput_rps         >=  client requests / load window; needs requests
max_error_count            <=  client requests with outcome "error"; needs requests
max_feed_stall_s           <=  longest wait of a mined block for any WS subscriber (chain
                               truth); needs subscribers and the chain's truth
max_stalled_clients        <=  WS subscribers still behind the chain at the end (feed stopped);
                               needs subscribers and the chain's truth
max_stale_answers          <=  answers naming a block a reorg had replaced before the request
                               was sent (``measure.staleness``); needs a mock fleet's chain and
                               at least one answer naming a block
max_chaos_target_share     <=  the largest share of upstream attempts (hedges included) that
                               still went to a chaos event's target provider, from 2 s after
                               the event to its revert (``measure/shares.py``); needs a chaos
                               event aimed at a provider and router telemetry
=========================  ==  ===============================================================

``max_gap_count`` counts blocks the chain mined while a client was subscribed that it never
got (with the chain's truth; ``load.feed_truth``), so a feed that stops counts too; and
``min_ws_uptime`` is then the share of time each client's newest block was current.

A target the run did not measure (``max_failover_latency_ms`` when nothing failed over,
``max_error_count`` without requests, ...) is *not applicable*, and a not-applicable target
fails: an SLO must be able to fail. Name it in ``optional`` to let it pass as "not applicable"
instead; a verdict list where nothing applied still fails. ``SLO()`` without targets is allowed,
but its evaluation is one failing verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lasso_rpc.battle.measure.analysis import Analysis

__all__ = ["SLO", "SLO_KEYS", "SloVerdict", "all_passed"]

# key → (operator, reader). A reader returns the measured value, or a string saying why the
# value could not be measured.
Reader = Callable[[Analysis], "float | str"]


def _needs_requests(read: Callable[[Analysis], float]) -> Reader:
    return lambda a: read(a) if a.summary.requests else "not measured (no requests)"


def _ws(field: str) -> Reader:
    def read(a: Analysis) -> float | str:
        ws = a.summary.ws
        if ws is None:
            return "not measured (no WebSocket subscriptions)"
        return float(getattr(ws, field))

    return read


def _recovery(a: Analysis) -> float | str:
    if not a.chaos:
        return "not measured (no chaos events)"
    never = [f"{c.action} at {c.at_s:.2f} s" for c in a.chaos if c.recovery_s is None]
    if never:
        return "never recovered after " + ", ".join(never)
    return max(c.recovery_s for c in a.chaos if c.recovery_s is not None)


def _stale(a: Analysis) -> float | str:
    t = a.truth
    if t is None or t.stale_answers is None:
        return "not measured (answers are checked against a mock fleet's chain only)"
    if not t.answers_checked:
        return "not measured (no answer named a block)"
    return float(t.stale_answers)


def _target_share(a: Analysis) -> float | str:
    aimed = [c for c in a.chaos if c.target is not None]
    if not aimed:
        return "not measured (no chaos event aimed at a provider)"
    unmeasured = [f"{c.action} at {c.at_s:.2f} s" for c in aimed if c.target_share is None]
    if unmeasured:
        return "not measured (no upstream attempts after " + ", ".join(unmeasured) + ")"
    return max(c.target_share for c in aimed if c.target_share is not None)


def _optional(value: float | None, why: str) -> float | str:
    return value if value is not None else f"not measured ({why})"


def _failover_latency(a: Analysis) -> float | str:
    if not a.summary.failovers:
        return "not measured (no request failed over)"
    return a.summary.failover_latency_ms.max


def _truth(field: str) -> Reader:
    def read(a: Analysis) -> float | str:
        ws = a.summary.ws
        if ws is None:
            return "not measured (no WebSocket subscriptions)"
        value = getattr(ws, field)
        if ws.truth is None or value is None:
            return "not measured (no chain truth for the subscribers)"
        return float(value)

    return read


_KEYS: dict[str, tuple[str, Reader]] = {
    "success_rate": (">=", _needs_requests(lambda a: a.summary.success_rate)),
    "p50_latency_ms": ("<=", _needs_requests(lambda a: a.summary.latency_ms.p50)),
    "p90_latency_ms": ("<=", _needs_requests(lambda a: a.summary.latency_ms.p90)),
    "p95_latency_ms": ("<=", _needs_requests(lambda a: a.summary.latency_ms.p95)),
    "p99_latency_ms": ("<=", _needs_requests(lambda a: a.summary.latency_ms.p99)),
    "max_latency_ms": ("<=", _needs_requests(lambda a: a.summary.latency_ms.max)),
    "max_failover_latency_ms": ("<=", _failover_latency),
    "max_recovery_s": ("<=", _recovery),
    "max_gap_count": ("<=", _ws("gaps")),
    "max_duplicate_count": ("<=", _ws("duplicates")),
    "min_ws_uptime": (">=", _ws("uptime")),
    "max_rss_mb": ("<=", lambda a: _optional(a.summary.router_rss_mb_max, "no system samples")),
    "max_rss_growth_pct": (
        "<=",
        lambda a: _optional(a.summary.router_rss_growth_pct, "fewer than 2 system samples"),
    ),
    "min_throughput_rps": (">=", _needs_requests(lambda a: a.summary.throughput_rps)),
    "max_error_count": ("<=", _needs_requests(lambda a: float(a.summary.errors))),
    "max_feed_stall_s": ("<=", _truth("max_stall_s")),
    "max_stalled_clients": ("<=", _truth("stalled_clients")),
    "max_stale_answers": ("<=", _stale),
    "max_chaos_target_share": ("<=", _target_share),
}
SLO_KEYS = tuple(_KEYS)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


@dataclass(frozen=True, slots=True)
class SloVerdict:
    key: str
    op: str  # ">=" | "<=" | "defined"
    target: float | None
    actual: float | None  # None: not measured
    passed: bool
    message: str
    applicable: bool = True  # False: the run did not measure it
    optional: bool = False  # named in SLO(optional=...): passes when not applicable

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "op": self.op,
            "target": self.target,
            "actual": self.actual,
            "passed": self.passed,
            "message": self.message,
            "applicable": self.applicable,
            "optional": self.optional,
        }


class SLO:
    """``SLO(success_rate=0.999, p95_latency_ms=250)``; an unknown key is a ``ValueError``.

    ``optional`` names targets that may be not applicable in a run (see the module docstring).
    """

    __slots__ = ("optional", "targets")

    def __init__(self, *, optional: Iterable[str] = (), **targets: float) -> None:
        unknown = sorted(set(targets) - set(_KEYS))
        if unknown:
            raise ValueError(f"unknown SLO keys {unknown}; valid keys: {', '.join(SLO_KEYS)}")
        if isinstance(optional, str):
            optional = (optional,)
        stray = sorted(set(optional) - set(targets))
        if stray:
            raise ValueError(f"SLO optional {stray}: not among the targets {sorted(targets)}")
        self.optional: frozenset[str] = frozenset(optional)
        clean: dict[str, float] = {}
        for key, value in targets.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"SLO {key}: target must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"SLO {key}: target must be a finite number >= 0, got {value}")
            if key in ("success_rate", "min_ws_uptime") and value > 1:
                raise ValueError(f"SLO {key}: target is a fraction within 0..1, got {value}")
            clean[key] = float(value)
        self.targets: Mapping[str, float] = clean

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:g}" for k, v in self.targets.items())
        if self.optional:
            shown += f", optional={sorted(self.optional)}"
        return f"SLO({shown})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SLO)
            and dict(self.targets) == dict(other.targets)
            and self.optional == other.optional
        )

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.targets.items())), self.optional))

    def to_dict(self) -> dict[str, Any]:
        """The YAML form: the targets, and ``optional`` when some are."""
        d: dict[str, Any] = dict(self.targets)
        if self.optional:
            d["optional"] = sorted(self.optional)
        return d

    def evaluate(self, analysis: Analysis) -> list[SloVerdict]:
        if not self.targets:
            return [
                SloVerdict("slo", "defined", None, None, False, "no SLO targets: nothing can pass")
            ]
        verdicts = [self._verdict(k, t, analysis) for k, t in self.targets.items()]
        if not any(v.applicable for v in verdicts):
            message = "no SLO target applied to this run: it measured nothing the SLOs check"
            verdicts.append(SloVerdict("slo", "defined", None, None, False, message))
        return verdicts

    def _verdict(self, key: str, target: float, analysis: Analysis) -> SloVerdict:
        op, read = _KEYS[key]
        actual = read(analysis)
        if isinstance(actual, str) and not actual.startswith("not measured"):
            # measured, and no number can pass (a chaos event that never recovered)
            return SloVerdict(key, op, target, None, False, f"{key}: {actual} (violated)")
        if isinstance(actual, str):
            if key in self.optional:
                why = actual.removeprefix("not measured ")
                message = f"{key}: not applicable {why} (optional)"
                return SloVerdict(key, op, target, None, True, message, False, True)
            message = f"{key}: {actual} (violated)"
            return SloVerdict(key, op, target, None, False, message, False, False)
        passed = actual >= target if op == ">=" else actual <= target
        shown = op if passed else ("<" if op == ">=" else ">")
        state = "ok" if passed else "violated"
        message = f"{key}: {_fmt(actual)} {shown} {_fmt(target)} ({state})"
        return SloVerdict(
            key, op, target, float(actual), passed, message, True, key in self.optional
        )


def all_passed(verdicts: list[SloVerdict]) -> bool:
    """True only for a non-empty list of passing verdicts."""
    return bool(verdicts) and all(v.passed for v in verdicts)
