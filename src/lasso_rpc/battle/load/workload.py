"""Open-loop workloads: when each request is meant to go out, and which call it is.

A ``Workload`` is a frozen value built fluently::

    Workload.poisson(200, 30).mix({"eth_blockNumber": 5, "eth_getBalance": 3, "eth_call": 1})
        .over("http").path("/rpc/fastest/ethereum").concurrency(256).timeout_s(15)

It only *describes* the load; ``lasso_rpc.battle.load.loadgen.run_workload`` sends it.

A shape (``Constant``, ``Burst``, ``Ramp``) is a request rate as a function of time, given as
linear segments. Arrivals turn it into send offsets by inverting the expected count
Λ(t) = ∫ rate: the k-th ``"even"`` arrival is at Λ⁻¹(k); ``"poisson"`` arrivals are at
Λ⁻¹(E₁ + … + Eₖ) with Eᵢ ~ Exp(1), i.e. a (non-homogeneous) Poisson process.
``schedule(rng)`` is a lazy iterator, so a 30-minute run never sits in memory, and it is pure:
the same ``random.Random`` seed gives the same schedule.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, overload

import orjson

from lasso_rpc.errors import ConfigError

if TYPE_CHECKING:
    from lasso_rpc.battle.load.subscribe_workload import SubscribeWorkload

__all__ = [
    "DEFAULT_PARAMS",
    "Arrivals",
    "Burst",
    "Constant",
    "MethodSpec",
    "Ramp",
    "Shape",
    "Workload",
    "arrival_offsets",
]

Arrivals = Literal["even", "poisson"]
Over = Literal["http", "ws"]
Weight: TypeAlias = "float | Mapping[str, Any]"  # a weight, or {"weight": w, "params": [...]}

_ADDRESS = "0xd8da6bf26964af9d7eed9e03e53415d37aa96045"
_TOKEN = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"

#: Params used when a method is named without any (readable, valid on any EVM chain).
DEFAULT_PARAMS: Mapping[str, list[Any]] = {
    "eth_getBalance": [_ADDRESS, "latest"],
    "eth_getTransactionCount": [_ADDRESS, "latest"],
    "eth_getCode": [_TOKEN, "latest"],
    "eth_call": [{"to": _TOKEN, "data": "0x70a08231" + _ADDRESS[2:].rjust(64, "0")}, "latest"],
    "eth_estimateGas": [{"from": _ADDRESS, "to": _ADDRESS, "value": "0x0"}],
    "eth_getBlockByNumber": ["latest", False],
    "eth_getLogs": [{"fromBlock": "latest", "toBlock": "latest", "address": _TOKEN}],
}


class _BadField(ValueError):
    """A ValueError naming the field (its YAML key) at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        self.key = key
        self.detail = message


def _finite(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadField(name, f"must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise _BadField(name, f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


# -- shapes ------------------------------------------------------------------------------

Segment = tuple[float, float, float, float]  # t0, t1, rate at t0, rate at t1 (linear between)


@dataclass(frozen=True, slots=True)
class Constant:
    rate: float

    def __post_init__(self) -> None:
        _finite("rate", self.rate)

    def segments(self, duration_s: float) -> Iterator[Segment]:
        yield (0.0, duration_s, self.rate, self.rate)


@dataclass(frozen=True, slots=True)
class Ramp:
    start_rate: float
    end_rate: float

    def __post_init__(self) -> None:
        _finite("start_rate", self.start_rate)
        _finite("end_rate", self.end_rate)

    def segments(self, duration_s: float) -> Iterator[Segment]:
        yield (0.0, duration_s, self.start_rate, self.end_rate)


@dataclass(frozen=True, slots=True)
class Burst:
    """``base_rate``, with ``burst_rate`` during [k·every, k·every + len) for k = 1, 2, …"""

    base_rate: float
    burst_rate: float
    burst_every_s: float
    burst_len_s: float

    def __post_init__(self) -> None:
        _finite("base_rate", self.base_rate)
        _finite("burst_rate", self.burst_rate)
        _finite("burst_every_s", self.burst_every_s, positive=True)
        _finite("burst_len_s", self.burst_len_s, positive=True)
        if self.burst_len_s > self.burst_every_s:
            raise _BadField("burst_len_s", "must not exceed burst_every_s")

    def segments(self, duration_s: float) -> Iterator[Segment]:
        t = 0.0
        for k in itertools.count(1):
            start = min(k * self.burst_every_s, duration_s)
            if start > t:
                yield (t, start, self.base_rate, self.base_rate)
            if start >= duration_s:
                return
            t = min(start + self.burst_len_s, duration_s)
            yield (start, t, self.burst_rate, self.burst_rate)


Shape: TypeAlias = Constant | Ramp | Burst
_SHAPE_KEYS: dict[str, tuple[type[Shape], tuple[str, ...]]] = {
    "constant": (Constant, ("rate",)),
    "poisson": (Constant, ("rate",)),
    "ramp": (Ramp, ("start_rate", "end_rate")),
    "burst": (Burst, ("base_rate", "burst_rate", "burst_every_s", "burst_len_s")),
}


def arrival_offsets(
    shape: Shape, duration_s: float, arrivals: Arrivals, rng: random.Random
) -> Iterator[float]:
    """Send offsets in [0, duration_s), non-decreasing (see the module docstring)."""
    even = arrivals == "even"
    target = 0.0 if even else rng.expovariate(1.0)
    cum = 0.0  # Λ at the start of the segment
    for t0, t1, r0, r1 in shape.segments(duration_s):
        span = t1 - t0
        slope = (r1 - r0) / span if span > 0 else 0.0
        end = cum + (r0 + r1) * 0.5 * span
        while target < end:
            need = max(0.0, target - cum)
            # r0·x + slope·x²/2 = need, in the form that stays exact when slope == 0.
            root = math.sqrt(max(0.0, r0 * r0 + 2.0 * slope * need))
            x = 2.0 * need / (r0 + root) if need > 0.0 else 0.0
            t = t0 + x
            if t >= t1:
                break  # rounding at the segment's edge: the next segment takes it
            yield t
            target += 1.0 if even else rng.expovariate(1.0)
        cum = end


# -- methods -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One method of a mix; ``params`` is the encoded JSON array or object sent as is."""

    method: str
    weight: float = 1.0
    params: bytes = b"[]"

    @classmethod
    def of(cls, method: str, weight: float = 1.0, params: Any = None) -> MethodSpec:
        if not isinstance(method, str) or not method:
            raise _BadField("method", f"must be a non-empty string, got {method!r}")
        if params is None:
            params = DEFAULT_PARAMS.get(method, [])
        if not isinstance(params, list | tuple | Mapping):
            raise _BadField("params", f"of {method} must be a list or an object")
        return cls(method, _finite("weight", weight, positive=True), _dumps(params))

    @property
    def has_default_params(self) -> bool:
        return self.params == _dumps(DEFAULT_PARAMS.get(self.method, []))


_DEFAULT_CALLS = (MethodSpec("eth_blockNumber"),)


_dumps = orjson.dumps


def _specs_from_weights(weights: Mapping[str, Weight]) -> tuple[MethodSpec, ...]:
    if not isinstance(weights, Mapping) or not weights:
        raise _BadField("mix", "needs at least one method: {method: weight}")
    specs = []
    for method, w in weights.items():
        try:
            if isinstance(w, Mapping):
                unknown = set(w) - {"weight", "params"}
                if unknown:
                    raise _BadField(
                        "", f"unknown key(s) {sorted(unknown)}; allowed: params, weight"
                    )
                specs.append(MethodSpec.of(method, w.get("weight", 1.0), w.get("params")))
            else:
                specs.append(MethodSpec.of(method, w))
        except _BadField as exc:
            sub = "" if exc.key in ("", "method") else f".{exc.key}"
            raise _BadField(f"mix.{method}{sub}", exc.detail) from None
    return tuple(specs)


# -- the workload ------------------------------------------------------------------------


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
    return cls(Constant(rate), duration_s, arrivals, _specs_from_weights(weights))


def _replace_mix(workload: Workload, weights: Mapping[str, Weight]) -> Workload:
    return dataclasses.replace(workload, calls=_specs_from_weights(weights))


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
    calls: tuple[MethodSpec, ...] = _DEFAULT_CALLS
    transport: Over = "http"
    target_path: str = "/rpc/ethereum"
    max_in_flight: int = 1024
    request_timeout_s: float = 30.0

    mix = _Mix()

    def __post_init__(self) -> None:
        _finite("duration_s", self.duration_s, positive=True)
        if self.arrivals not in ("even", "poisson"):
            raise _BadField("arrivals", f'must be "even" or "poisson", got {self.arrivals!r}')
        if not self.calls or len({c.method for c in self.calls}) != len(self.calls):
            raise _BadField("mix", "needs at least one method, each at most once")
        if self.transport not in ("http", "ws"):
            raise _BadField("over", f'must be "http" or "ws", got {self.transport!r}')
        if not isinstance(self.target_path, str) or not self.target_path.startswith("/"):
            raise _BadField("path", f"must start with '/', got {self.target_path!r}")
        if isinstance(self.max_in_flight, bool) or not isinstance(self.max_in_flight, int):
            raise _BadField("concurrency", f"must be an integer, got {self.max_in_flight!r}")
        if self.max_in_flight < 1:
            raise _BadField("concurrency", f"must be >= 1, got {self.max_in_flight}")
        _finite("timeout_s", self.request_timeout_s, positive=True)

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
        from lasso_rpc.battle.load.subscribe_workload import SubscribeWorkload

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
        _finite("factor", factor, positive=True)
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
        if not isinstance(data, Mapping) or data.get("shape") not in _SHAPE_KEYS:
            got = data.get("shape") if isinstance(data, Mapping) else data
            raise ConfigError(
                [f"{where}.shape: one of {', '.join(_SHAPE_KEYS)} expected, got {got!r}"]
            )
        kind = data["shape"]
        shape_cls, shape_keys = _SHAPE_KEYS[kind]
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
            except _BadField as exc:
                errors.append(f"{where}.{exc.key}: {exc.detail}")
            except (ValueError, TypeError) as exc:
                errors.append(f"{where}.{key}: {exc}")
            return None

        if errors:
            raise ConfigError(errors)
        shape = attempt(lambda: shape_cls(*(data[k] for k in shape_keys)), kind)
        if "mix" in data:
            calls = attempt(lambda: _specs_from_weights(data["mix"]), "mix")
        else:
            method = data.get("method", "eth_blockNumber")
            calls = attempt(lambda: (MethodSpec.of(method, 1.0, data.get("params")),), "method")
        options = {attr: data[key] for key, attr in _OPTIONS.items() if key in data}
        if kind == "poisson":
            options["arrivals"] = "poisson"
        workload = attempt(
            lambda: cls(
                shape or Constant(0), data["duration_s"], calls=calls or _DEFAULT_CALLS, **options
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
