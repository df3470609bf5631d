"""Open-loop workloads: when each request is meant to go out, and which call it is.

A ``Workload`` is a frozen value built fluently::

    Workload.poisson(200, 30).mix({"eth_blockNumber": 5, "eth_getBalance": 3, "eth_call": 1})
        .over("http").path("/rpc/fastest/ethereum").concurrency(256).timeout_s(15)

It only *describes* the load; ``lasso_rpc.battle.load.loadgen.run_workload`` sends it.

The rate over time is a shape (``load.shapes``), the calls a mix of ``MethodSpec``s
(``load.calls``). ``schedule(rng)`` is a lazy iterator, so a 30-minute run never sits in
memory, and it is pure: the same ``random.Random`` seed gives the same schedule.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, overload

import orjson

from lasso_rpc.battle.load.calls import DEFAULT_CALLS, MethodSpec, Weight, specs_from_weights
from lasso_rpc.battle.load.shapes import (
    SHAPE_KEYS,
    Arrivals,
    BadField,
    Burst,
    Constant,
    Ramp,
    Shape,
    arrival_offsets,
    finite,
)
from lasso_rpc.battle.load.subscribe_workload import SubscribeWorkload
from lasso_rpc.errors import ConfigError

__all__ = ["Over", "Workload"]

Over = Literal["http", "ws"]


class _MixConstructor(Protocol):
    def __call__(
        self,
        weights: Mapping[str, Weight],
        rate: float,
        duration_s: float,
        *,
        arrivals: Arrivals = "even",
    ) -> Workload: ...


def _new_mix(
    cls: type[Workload],
    weights: Mapping[str, Weight],
    rate: float,
    duration_s: float,
    *,
    arrivals: Arrivals = "even",
) -> Workload:
    return cls(Constant(rate), duration_s, arrivals, specs_from_weights(weights))


def _replace_mix(workload: Workload, weights: Mapping[str, Weight]) -> Workload:
    return dataclasses.replace(workload, calls=specs_from_weights(weights))


class _Mix:
    """``Workload.mix(weights, rate, duration_s)`` builds; ``workload.mix(weights)`` replaces."""

    @overload
    def __get__(self, obj: None, owner: type[Workload]) -> _MixConstructor: ...
    @overload
    def __get__(
        self, obj: Workload, owner: type[Workload]
    ) -> Callable[[Mapping[str, Weight]], Workload]: ...
    def __get__(self, obj: Workload | None, owner: type[Workload]) -> Callable[..., Workload]:
        return (
            functools.partial(_new_mix, owner)
            if obj is None
            else functools.partial(_replace_mix, obj)
        )


@dataclass(frozen=True, slots=True)
class Workload:
    """What to send, when, where, and how much may be in flight. Build with the class methods."""

    shape: Shape
    duration_s: float
    arrivals: Arrivals = "even"
    calls: tuple[MethodSpec, ...] = DEFAULT_CALLS
    transport: Over = "http"
    target_path: str = "/rpc/ethereum"
    max_in_flight: int = 1024
    request_timeout_s: float = 30.0

    mix = _Mix()

    def __post_init__(self) -> None:
        finite("duration_s", self.duration_s, positive=True)
        if self.arrivals not in ("even", "poisson"):
            raise BadField("arrivals", f'must be "even" or "poisson", got {self.arrivals!r}')
        if not self.calls or len({c.method for c in self.calls}) != len(self.calls):
            raise BadField("mix", "needs at least one method, each at most once")
        if self.transport not in ("http", "ws"):
            raise BadField("over", f'must be "http" or "ws", got {self.transport!r}')
        if not isinstance(self.target_path, str) or not self.target_path.startswith("/"):
            raise BadField("path", f"must start with '/', got {self.target_path!r}")
        if isinstance(self.max_in_flight, bool) or not isinstance(self.max_in_flight, int):
            raise BadField("concurrency", f"must be an integer, got {self.max_in_flight!r}")
        if self.max_in_flight < 1:
            raise BadField("concurrency", f"must be >= 1, got {self.max_in_flight}")
        finite("timeout_s", self.request_timeout_s, positive=True)

    @staticmethod
    def subscribe(
        count: int,
        kind: str = "newHeads",
        duration_s: float = 30.0,
        *,
        filter: Mapping[str, Any] | None = None,
        path: str = "/ws/rpc/ethereum",
    ) -> SubscribeWorkload:
        """``count`` WebSocket clients holding a ``newHeads``/``logs`` subscription."""
        return SubscribeWorkload(count, kind, duration_s, filter, path)

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def constant(
        cls, rate: float, duration_s: float, method: str = "eth_blockNumber", params: Any = None
    ) -> Workload:
        """``rate`` requests per second, evenly spaced."""
        return cls(Constant(rate), duration_s, "even", (MethodSpec.of(method, 1.0, params),))

    @classmethod
    def poisson(
        cls, rate: float, duration_s: float, method: str = "eth_blockNumber", params: Any = None
    ) -> Workload:
        """``rate`` requests per second on average, as a Poisson process."""
        return cls(Constant(rate), duration_s, "poisson", (MethodSpec.of(method, 1.0, params),))

    @classmethod
    def burst(
        cls,
        base_rate: float,
        burst_rate: float,
        burst_every_s: float,
        burst_len_s: float,
        duration_s: float,
        method: str = "eth_blockNumber",
        params: Any = None,
        *,
        arrivals: Arrivals = "even",
    ) -> Workload:
        """``base_rate``, and ``burst_rate`` for ``burst_len_s`` every ``burst_every_s``."""
        shape = Burst(base_rate, burst_rate, burst_every_s, burst_len_s)
        return cls(shape, duration_s, arrivals, (MethodSpec.of(method, 1.0, params),))

    @classmethod
    def ramp(
        cls,
        start_rate: float,
        end_rate: float,
        duration_s: float,
        method: str = "eth_blockNumber",
        params: Any = None,
        *,
        arrivals: Arrivals = "even",
    ) -> Workload:
        """A rate changing linearly from ``start_rate`` to ``end_rate`` over the run."""
        shape = Ramp(start_rate, end_rate)
        return cls(shape, duration_s, arrivals, (MethodSpec.of(method, 1.0, params),))

    # -- fluent changes (each returns a new Workload) ------------------------------------

    def method(self, method: str, params: Any = None) -> Workload:
        return dataclasses.replace(self, calls=(MethodSpec.of(method, 1.0, params),))

    def methods(self, *methods: str | MethodSpec) -> Workload:
        """Several methods; names get weight 1 and default params, ``MethodSpec``s as given."""
        specs = tuple(m if isinstance(m, MethodSpec) else MethodSpec.of(m) for m in methods)
        return dataclasses.replace(self, calls=specs)

    def over(self, transport: Over) -> Workload:
        return dataclasses.replace(self, transport=transport)

    def path(self, path: str) -> Workload:
        """The router path, e.g. ``/rpc/fastest/ethereum`` (a query string is kept)."""
        return dataclasses.replace(self, target_path=path)

    def concurrency(self, max_in_flight: int) -> Workload:
        """At most this many requests in flight; later ones wait (their latency still counts)."""
        return dataclasses.replace(self, max_in_flight=max_in_flight)

    def timeout_s(self, seconds: float) -> Workload:
        return dataclasses.replace(self, request_timeout_s=seconds)

    def with_arrivals(self, arrivals: Arrivals) -> Workload:
        return dataclasses.replace(self, arrivals=arrivals)

    def scaled(self, factor: float) -> Workload:
        """Every time multiplied by ``factor`` (rates kept): a short CI variant of a scenario."""
        finite("factor", factor, positive=True)
        shape = self.shape
        if isinstance(shape, Burst):
            every, length = shape.burst_every_s * factor, shape.burst_len_s * factor
            shape = dataclasses.replace(shape, burst_every_s=every, burst_len_s=length)
        return dataclasses.replace(self, shape=shape, duration_s=self.duration_s * factor)

    # -- reading -------------------------------------------------------------------------

    @property
    def expected_requests(self) -> float:
        """Λ(duration): the mean number of requests the schedule yields."""
        segments = self.shape.segments(self.duration_s)
        return sum((r0 + r1) * 0.5 * (t1 - t0) for t0, t1, r0, r1 in segments)

    def schedule(self, rng: random.Random) -> Iterator[tuple[float, str, bytes]]:
        """Lazily: ``(intended offset in seconds, method, params JSON)``, offsets non-decreasing."""
        offsets = arrival_offsets(self.shape, self.duration_s, self.arrivals, rng)
        calls = self.calls
        if len(calls) == 1:
            only = calls[0]
            return ((t, only.method, only.params) for t in offsets)
        cum = list(itertools.accumulate(c.weight for c in calls))
        return self._mixed(offsets, calls, cum, rng)

    @staticmethod
    def _mixed(
        offsets: Iterator[float],
        calls: Sequence[MethodSpec],
        cum: list[float],
        rng: random.Random,
    ) -> Iterator[tuple[float, str, bytes]]:
        total, last = cum[-1], len(calls) - 1
        pick: Callable[[], float] = rng.random
        for t in offsets:
            c = calls[min(bisect.bisect_right(cum, pick() * total), last)]
            yield t, c.method, c.params

    def _kind(self) -> str:
        if isinstance(self.shape, Constant):
            return "poisson" if self.arrivals == "poisson" else "constant"
        return "ramp" if isinstance(self.shape, Ramp) else "burst"

    # -- YAML form -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        kind = self._kind()
        out: dict[str, Any] = {"shape": kind, **dataclasses.asdict(self.shape)}
        out["duration_s"] = self.duration_s
        if kind in ("ramp", "burst") and self.arrivals != "even":
            out["arrivals"] = self.arrivals
        first = self.calls[0]
        if len(self.calls) == 1 and first.weight == 1.0:
            out["method"] = first.method
            if not first.has_default_params:
                out["params"] = orjson.loads(first.params)
        else:
            out["mix"] = {
                c.method: c.weight
                if c.has_default_params
                else {"weight": c.weight, "params": orjson.loads(c.params)}
                for c in self.calls
            }
        return out | {
            key: getattr(self, attr) for key, attr in _OPTIONS.items() if key != "arrivals"
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "workload") -> Workload:
        """The inverse of ``to_dict``; raises ``ConfigError`` listing every bad key by path."""
        if not isinstance(data, Mapping) or data.get("shape") not in SHAPE_KEYS:
            got = data.get("shape") if isinstance(data, Mapping) else data
            raise ConfigError(
                [f"{where}.shape: one of {', '.join(SHAPE_KEYS)} expected, got {got!r}"]
            )
        kind = data["shape"]
        shape_cls, shape_keys = SHAPE_KEYS[kind]
        allowed = {"shape", "duration_s", *shape_keys, *_OPTIONS, "method", "params", "mix"}
        allowed -= {"arrivals"} if shape_cls is Constant else set()
        errors = [
            f"{where}.{k}: unknown key for shape {kind!r}; allowed: {', '.join(sorted(allowed))}"
            for k in data
            if k not in allowed
        ]
        errors += [f"{where}.{k}: required" for k in ("duration_s", *shape_keys) if k not in data]
        if "mix" in data and ("method" in data or "params" in data):
            errors.append(f"{where}.mix: give either method (+ params) or mix, not both")

        def attempt(build: Callable[[], Any], key: str) -> Any:
            try:
                return build()
            except BadField as exc:
                errors.append(f"{where}.{exc.key}: {exc.detail}")
            except (ValueError, TypeError) as exc:
                errors.append(f"{where}.{key}: {exc}")
            return None

        if errors:
            raise ConfigError(errors)
        shape = attempt(lambda: shape_cls(*(data[k] for k in shape_keys)), kind)
        if "mix" in data:
            calls = attempt(lambda: specs_from_weights(data["mix"]), "mix")
        else:
            method = data.get("method", "eth_blockNumber")
            calls = attempt(lambda: (MethodSpec.of(method, 1.0, data.get("params")),), "method")
        options = {attr: data[key] for key, attr in _OPTIONS.items() if key in data}
        if kind == "poisson":
            options["arrivals"] = "poisson"
        workload = attempt(
            lambda: cls(
                shape or Constant(0), data["duration_s"], calls=calls or DEFAULT_CALLS, **options
            ),
            "",
        )
        if errors or not isinstance(workload, Workload):
            raise ConfigError(errors)
        return workload


#: optional YAML key → Workload field
_OPTIONS = {
    "arrivals": "arrivals",
    "over": "transport",
    "path": "target_path",
    "concurrency": "max_in_flight",
    "timeout_s": "request_timeout_s",
}
