"""Which calls a workload sends: ``MethodSpec`` (method, weight, params) and the mixes of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from lasso_rpc.battle.load.shapes import BadField, finite

__all__ = ["DEFAULT_CALLS", "DEFAULT_PARAMS", "MethodSpec", "Weight", "specs_from_weights"]

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


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One method of a mix; ``params`` is the encoded JSON array or object sent as is."""

    method: str
    weight: float = 1.0
    params: bytes = b"[]"

    @classmethod
    def of(cls, method: str, weight: float = 1.0, params: Any = None) -> MethodSpec:
        if not isinstance(method, str) or not method:
            raise BadField("method", f"must be a non-empty string, got {method!r}")
        if params is None:
            params = DEFAULT_PARAMS.get(method, [])
        if not isinstance(params, list | tuple | Mapping):
            raise BadField("params", f"of {method} must be a list or an object")
        return cls(method, finite("weight", weight, positive=True), _dumps(params))

    @property
    def has_default_params(self) -> bool:
        return self.params == _dumps(DEFAULT_PARAMS.get(self.method, []))


DEFAULT_CALLS = (MethodSpec("eth_blockNumber"),)


_dumps = orjson.dumps


def specs_from_weights(weights: Mapping[str, Weight]) -> tuple[MethodSpec, ...]:
    if not isinstance(weights, Mapping) or not weights:
        raise BadField("mix", "needs at least one method: {method: weight}")
    specs = []
    for method, w in weights.items():
        try:
            if isinstance(w, Mapping):
                unknown = set(w) - {"weight", "params"}
                if unknown:
                    raise BadField("", f"unknown key(s) {sorted(unknown)}; allowed: params, weight")
                specs.append(MethodSpec.of(method, w.get("weight", 1.0), w.get("params")))
            else:
                specs.append(MethodSpec.of(method, w))
        except BadField as exc:
            sub = "" if exc.key in ("", "method") else f".{exc.key}"
            raise BadField(f"mix.{method}{sub}", exc.detail) from None
    return tuple(specs)
