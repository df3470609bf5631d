"""Which ways of reaching the providers a scenario puts side by side (``Scenario.contenders``).

=====================  ==================================================================
contender              the scenario's workload goes ...
=====================  ==================================================================
``router``             through the router as the scenario configures it (the primary run)
``router:STRATEGY``    through the router with another routing strategy
``direct:PROVIDER``    straight to one provider, no fallback (a hard-coded RPC URL)
``viem``               through viem's ``fallback`` transport over every provider
``ethers``             through ethers v6 ``FallbackProvider`` over every provider
=====================  ==================================================================

The mapping form adds library options and a label::

    contenders:
      - router:load-balanced
      - direct:alpha
      - viem
      - {ethers: {quorum: 1}, label: "ethers, quorum 1"}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lasso_rpc.battle.contenders.spec import EthersOptions, ViemOptions
from lasso_rpc.config.models import STRATEGIES

__all__ = ["KINDS", "Contender", "ContenderKind"]

ContenderKind = Literal["router", "direct", "viem", "ethers"]
KINDS: tuple[ContenderKind, ...] = ("router", "direct", "viem", "ethers")
_LIBRARIES: dict[str, tuple[str, type[ViemOptions] | type[EthersOptions]]] = {
    "viem": ("viem fallback", ViemOptions),
    "ethers": ("ethers FallbackProvider", EthersOptions),
}


@dataclass(frozen=True, slots=True)
class Contender:
    kind: ContenderKind
    strategy: str | None = None  # router: None = the scenario's own
    provider: str | None = None  # direct: the provider id
    options: ViemOptions | EthersOptions | None = None  # viem / ethers; None: their defaults
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"contender: one of {', '.join(KINDS)} expected, got {self.kind!r}")
        if self.kind == "router" and self.strategy is not None and self.strategy not in STRATEGIES:
            raise ValueError(
                f"contender router:{self.strategy}: unknown strategy; one of {sorted(STRATEGIES)}"
            )
        if self.kind == "direct" and not self.provider:
            raise ValueError("contender direct: name the provider (direct:alpha)")
        if self.options is not None:
            want = _LIBRARIES.get(self.kind, (None, None))[1]
            if want is None or not isinstance(self.options, want):
                raise ValueError(f"contender {self.kind}: takes no options {self.options!r}")

    @property
    def is_router(self) -> bool:
        return self.kind == "router"

    @property
    def is_client(self) -> bool:
        """Driven by the Node sidecar (a client-side fallback library)."""
        return self.kind in ("viem", "ethers")

    def name(self, default_strategy: str) -> str:
        """The label shown in reports."""
        if self.label:
            return self.label
        if self.kind == "router":
            return f"router ({self.strategy or default_strategy})"
        if self.kind == "direct":
            return f"direct {self.provider}"
        base = _LIBRARIES[self.kind][0]
        return f"{base} ({_short(self.options)})" if self.options else base

    def same_as(self, other: Contender, default_strategy: str) -> bool:
        return self.kind == other.kind and self.name(default_strategy) == other.name(
            default_strategy
        )

    # -- YAML form -----------------------------------------------------------------------

    def to_dict(self) -> str | dict[str, Any]:
        if self.kind == "router":
            short = "router" if self.strategy is None else f"router:{self.strategy}"
        elif self.kind == "direct":
            short = f"direct:{self.provider}"
        else:
            short = self.kind
        if not self.options and not self.label:
            return short
        d: dict[str, Any] = {}
        if self.kind in ("viem", "ethers"):
            d[self.kind] = _options_dict(self.options)
        elif self.kind == "router":
            d["router"] = self.strategy
        else:
            d["direct"] = self.provider
        if self.label:
            d["label"] = self.label
        return d

    @classmethod
    def parse(cls, value: Any, *, where: str = "contenders") -> Contender:
        """``"router"``, ``"router:fastest"``, ``"direct:alpha"``, ``"viem"``, ``"ethers"``, or a
        mapping ``{kind: strategy | provider | options, label: ...}``."""
        if isinstance(value, Contender):
            return value
        if isinstance(value, str):
            kind, _, arg = value.partition(":")
            return cls._of(kind, arg or None, {}, "", where)
        if isinstance(value, Mapping):
            label = str(value.get("label", ""))
            rest = {k: v for k, v in value.items() if k != "label"}
            if len(rest) != 1:
                raise ValueError(f"{where}: one of {', '.join(KINDS)} per contender, got {value!r}")
            ((kind, arg),) = rest.items()
            if kind in _LIBRARIES:
                return cls._of(kind, None, arg or {}, label, where)
            return cls._of(str(kind), None if arg is None else str(arg), None, label, where)
        raise ValueError(f"{where}: a contender is a name or a mapping, got {value!r}")

    @classmethod
    def _of(cls, kind: str, arg: str | None, options: Any, label: str, where: str) -> Contender:
        try:
            if kind == "router":
                return cls("router", strategy=arg, label=label)
            if kind == "direct":
                return cls("direct", provider=arg, label=label)
            if kind in _LIBRARIES:
                if arg is not None:
                    raise ValueError(f"{kind} takes options as a mapping, not {kind}:{arg}")
                opts_cls = _LIBRARIES[kind][1]
                if not isinstance(options, Mapping):
                    raise ValueError(f"{kind} options must be a mapping")
                known = {f.name for f in dataclasses.fields(opts_cls)}
                unknown = sorted(set(options) - known)
                if unknown:
                    raise ValueError(f"unknown {kind} options {unknown}; known: {sorted(known)}")
                opts = opts_cls(**dict(options)) if options else None
                return cls(kind, options=opts, label=label)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        raise ValueError(f"{where}: unknown contender {kind!r}; one of {', '.join(KINDS)}")


def _options_dict(options: ViemOptions | EthersOptions | None) -> dict[str, Any]:
    if options is None:
        return {}
    return {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if getattr(options, f.name) != f.default
    }


def _short(options: ViemOptions | EthersOptions | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in _options_dict(options).items())
