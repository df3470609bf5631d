"""What a battle is, as a value: providers, router options, workloads, chaos, SLOs (SPEC §6).

``ScenarioSpec`` is an immutable builder (every method returns a new spec) with its YAML form;
it runs nothing. ``battle.runner`` runs a spec, and ``battle.scenario.Scenario`` is the spec
with ``run()``: the class users hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

from lasso_rpc.battle.chaos.base import ChaosAction
from lasso_rpc.battle.chaos.parse import chaos_from_dict
from lasso_rpc.battle.contenders.choice import Contender
from lasso_rpc.battle.context import ScenarioContext
from lasso_rpc.battle.load.subscribe_workload import SubscribeWorkload
from lasso_rpc.battle.load.workload import Workload
from lasso_rpc.battle.measure.slo import SLO
from lasso_rpc.battle.measure.validity import DEFAULT_MAX_GENERATOR_LAG_MS
from lasso_rpc.battle.notify.config import NotifyConfig
from lasso_rpc.battle.providers.spec import Knobs, MockFleetSpec

__all__ = [
    "COLLECTABLE",
    "AnvilOptions",
    "ProgressFn",
    "RouterOptions",
    "ScenarioSpec",
    "SetupHook",
]

SetupHook = Callable[[ScenarioContext], Awaitable[Mapping[str, Any] | None]]
COLLECTABLE = frozenset({"requests", "breakers", "health", "subscriptions", "system", "raw"})
#: SLOs on the router's own process figures: only a router in a process of its own has them.
PROCESS_SLOS = ("max_rss_mb", "max_rss_growth_pct")
ProgressFn = Callable[[float, float], None]  # (elapsed_s, total_s)


@dataclass(frozen=True, slots=True)
class RouterOptions:
    strategy: str = "fastest"
    process: bool = False
    routing: Mapping[str, Any] = field(default_factory=dict)
    #: The profile's ``cache:`` block (docs/config.md); empty: no cache.
    cache: Mapping[str, Any] = field(default_factory=dict)
    #: Router nodes behind one balancer (>1: subprocesses sharing ``state``).
    nodes: int = 1
    #: ``serve --workers N`` per node (>1: subprocesses).
    workers: int = 1
    #: Where the nodes share state: "memory" (nothing shared between nodes) or "redis".
    state: str = "memory"

    @property
    def clustered(self) -> bool:
        return self.nodes > 1 or self.workers > 1 or self.state == "redis"


@dataclass(frozen=True, slots=True)
class AnvilOptions:
    nodes: int = 2
    block_time_s: float | None = 1.0
    chain_id: int = 31337


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """An immutable builder: every method returns a new spec of the same class."""

    name: str
    description: str = ""
    fleet: MockFleetSpec | None = None
    anvil_opts: AnvilOptions | None = None
    router_opts: RouterOptions = RouterOptions()
    setup_hooks: tuple[SetupHook, ...] = ()
    workloads: tuple[Workload | SubscribeWorkload, ...] = ()
    chaos_actions: tuple[ChaosAction, ...] = ()
    collect_names: frozenset[str] = COLLECTABLE - {"raw"}
    slos: SLO | None = None
    seed: int = 1
    proxied: frozenset[str] = frozenset()
    bucket_s: float = 1.0
    #: Other ways of reaching the same providers, run with the same workload and chaos.
    contender_list: tuple[Contender, ...] = ()
    #: A run whose load generator lagged more than this (p99) is invalid.
    max_generator_lag_ms: float = DEFAULT_MAX_GENERATOR_LAG_MS
    notify_config: NotifyConfig | None = None

    # -- building ---------------------------------------------------------------------------

    def providers(self, fleet: MockFleetSpec | Mapping[str, Mapping[str, Any]]) -> Self:
        spec = fleet if isinstance(fleet, MockFleetSpec) else _fleet_spec(fleet)
        return dataclasses.replace(self, fleet=spec, anvil_opts=None)

    def anvil(
        self, nodes: int = 2, *, block_time_s: float | None = 1.0, chain_id: int = 31337
    ) -> Self:
        """Real anvil nodes as the providers (each behind a fault proxy)."""
        opts = AnvilOptions(nodes, block_time_s, chain_id)
        return dataclasses.replace(self, anvil_opts=opts, fleet=None)

    def router(
        self,
        *,
        strategy: str = "fastest",
        process: bool = False,
        cache: Mapping[str, Any] | None = None,
        nodes: int = 1,
        workers: int = 1,
        state: str | None = None,
        **routing: Any,
    ) -> Self:
        """``routing`` keys as in a profile's ``routing:``; ``cache`` its ``cache:`` block;
        ``nodes``/``workers`` > 1 run ``lasso-rpc serve`` subprocesses; ``state`` is "memory"
        or "redis" (default: redis when there are several nodes)."""
        if nodes < 1 or workers < 1:
            raise ValueError("router: nodes and workers must be >= 1")
        st = state or ("redis" if nodes > 1 else "memory")
        if st not in ("memory", "redis"):
            raise ValueError(f"router: state must be memory or redis, got {st!r}")
        opts = RouterOptions(strategy, process, routing, dict(cache or {}), nodes, workers, st)
        return dataclasses.replace(self, router_opts=opts)

    def setup(self, hook: SetupHook) -> Self:
        return dataclasses.replace(self, setup_hooks=(*self.setup_hooks, hook))

    def workload(self, *workloads: Workload | SubscribeWorkload) -> Self:
        return dataclasses.replace(self, workloads=(*self.workloads, *workloads))

    def chaos(self, *actions: ChaosAction) -> Self:
        return dataclasses.replace(self, chaos_actions=(*self.chaos_actions, *actions))

    def collect(self, *names: str) -> Self:
        unknown = set(names) - COLLECTABLE
        if unknown:
            raise ValueError(
                f"unknown collect names {sorted(unknown)}; valid: {sorted(COLLECTABLE)}"
            )
        return dataclasses.replace(self, collect_names=frozenset(names))

    def slo(self, *, optional: Iterable[str] = (), **targets: float) -> Self:
        """The targets that decide pass or fail; ``optional`` ones may be not applicable."""
        return dataclasses.replace(self, slos=SLO(optional=optional, **targets))

    def contenders(self, contenders: Iterable[str | Mapping[str, Any] | Contender]) -> Self:
        """Run the same providers, workload and chaos against each (``contenders.choice``):
        ``["router:load-balanced", "direct:alpha", "viem", "ethers"]``. The scenario's own
        router runs first and decides pass or fail; the others are compared with it."""
        parsed = tuple(Contender.parse(c) for c in contenders)
        return dataclasses.replace(self, contender_list=parsed)

    def validity(self, *, max_generator_lag_ms: float) -> Self:
        """When a run counts as invalid (see ``measure.validity``)."""
        if not max_generator_lag_ms > 0:
            raise ValueError("max_generator_lag_ms must be > 0")
        return dataclasses.replace(self, max_generator_lag_ms=float(max_generator_lag_ms))

    def notify(
        self,
        config: NotifyConfig | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Where SLO violations and regressions are sent: ``notify(webhook=URL, email={...})``
        (``battle.notify``)."""
        if config is None:
            config = NotifyConfig.from_dict(kwargs)
        elif not isinstance(config, NotifyConfig):
            config = NotifyConfig.from_dict(config)
        return dataclasses.replace(self, notify_config=config)

    def with_seed(self, seed: int) -> Self:
        return dataclasses.replace(self, seed=seed)

    def fault_proxy(self, *provider_ids: str) -> Self:
        """Put these providers behind a TCP fault proxy (network chaos needs one)."""
        return dataclasses.replace(self, proxied=self.proxied | frozenset(provider_ids))

    def scaled(self, factor: float) -> Self:
        """Every time in the scenario multiplied by ``factor`` (short CI variants)."""
        return dataclasses.replace(
            self,
            workloads=tuple(w.scaled(factor) for w in self.workloads),
            chaos_actions=tuple(c.scaled(factor) for c in self.chaos_actions),
        )

    # -- description ------------------------------------------------------------------------

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")

    @property
    def load_s(self) -> float:
        """The load window: the longest workload."""
        return max((w.duration_s for w in self.workloads), default=0.0)

    def unary_methods(self) -> set[str]:
        """Every method the unary workloads send."""
        return {c.method for w in self.workloads if isinstance(w, Workload) for c in w.calls}

    def runs(self) -> list[Contender]:
        """The contenders in run order: the scenario's own router first, each once."""
        out = [Contender("router")]
        for c in self.contender_list:
            if not any(c.same_as(o, self.router_opts.strategy) for o in out):
                out.append(c)
        return out

    def provider_ids(self) -> list[str]:
        if self.fleet is not None:
            return self.fleet.ids
        if self.anvil_opts is not None:
            return [f"node{i + 1}" for i in range(self.anvil_opts.nodes)]
        return []

    def to_dict(self) -> dict[str, Any]:
        providers: dict[str, Any]
        if self.fleet is not None:
            providers = {pid: k.changed() for pid, k in self.fleet.providers}
        elif self.anvil_opts is not None:
            providers = {pid: {"kind": "anvil"} for pid in self.provider_ids()}
        else:
            providers = {}
        return {
            "name": self.name,
            "description": self.description,
            "seed": self.seed,
            "router": {
                "strategy": self.router_opts.strategy,
                "process": self.router_opts.process,
                "routing": dict(self.router_opts.routing),
                **({"cache": dict(self.router_opts.cache)} if self.router_opts.cache else {}),
                "nodes": self.router_opts.nodes,
                "workers": self.router_opts.workers,
                "state": self.router_opts.state,
            },
            "providers": providers,
            "anvil": dataclasses.asdict(self.anvil_opts) if self.anvil_opts else None,
            "workload": [w.to_dict() for w in self.workloads],
            "chaos": [c.to_dict() for c in self.chaos_actions],
            "slos": self.slos.to_dict() if self.slos is not None else {},
            "collect": sorted(self.collect_names),
            "contenders": [c.to_dict() for c in self.contender_list],
            "validity": {"max_generator_lag_ms": self.max_generator_lag_ms},
            "notify": self.notify_config.masked() if self.notify_config is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        known = {
            "name",
            "description",
            "seed",
            "providers",
            "anvil",
            "router",
            "workload",
            "workloads",
            "chaos",
            "slo",
            "slos",
            "collect",
            "fault_proxy",
            "chain_id",
            "block_time_ms",
            "contenders",
            "validity",
            "notify",
        }
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown scenario keys {sorted(unknown)}; valid: {sorted(known)}")
        if "name" not in d:
            raise ValueError("a scenario needs a name")
        s = cls(str(d["name"]), str(d.get("description", "")), seed=int(d.get("seed", 1)))
        if d.get("providers"):
            s = s.providers(
                _fleet_spec(
                    {k: dict(v or {}) for k, v in d["providers"].items()},
                    chain_id=int(d.get("chain_id", 1)),
                    block_time_ms=int(d.get("block_time_ms", 1000)),
                )
            )
        if d.get("anvil"):
            s = s.anvil(**dict(d["anvil"]))
        router = dict(d.get("router") or {})
        strategy = router.pop("strategy", "fastest")
        process = bool(router.pop("process", False))
        routing = dict(router.pop("routing", {}) or {})
        cache = dict(router.pop("cache", {}) or {})
        cluster = {k: router.pop(k) for k in ("nodes", "workers", "state") if k in router}
        if router:
            raise ValueError(
                f"unknown router keys {sorted(router)}; valid: cache, nodes, process, routing, "
                "state, strategy, workers"
            )
        s = s.router(strategy=strategy, process=process, cache=cache, **cluster, **routing)
        loads = d.get("workloads") or d.get("workload") or []
        if isinstance(loads, Mapping):
            loads = [loads]  # one workload; to_dict writes the list
        s = s.workload(*(_workload_from_dict(w) for w in loads))
        s = s.chaos(*(chaos_from_dict(c) for c in d.get("chaos") or []))
        slo = d.get("slo") or d.get("slos")
        if slo:
            s = s.slo(**slo)
        if d.get("collect"):
            s = s.collect(*d["collect"])
        if d.get("fault_proxy"):
            s = s.fault_proxy(*d["fault_proxy"])
        if d.get("contenders"):
            s = s.contenders(d["contenders"])
        if d.get("validity"):
            validity = dict(d["validity"])
            unknown = set(validity) - {"max_generator_lag_ms"}
            if unknown:
                raise ValueError(
                    f"unknown validity keys {sorted(unknown)}; valid: max_generator_lag_ms"
                )
            s = s.validity(**validity)
        if d.get("notify"):
            s = s.notify(d["notify"])
        return s

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        doc = yaml.safe_load(Path(path).read_text())
        if not isinstance(doc, Mapping):
            raise ValueError(f"{path}: a scenario file is a mapping")
        return cls.from_dict(doc)

    def validate(self) -> None:
        if self.fleet is None and self.anvil_opts is None:
            raise ValueError(f"scenario {self.name!r}: no providers")
        if not self.workloads:
            raise ValueError(f"scenario {self.name!r}: no workload")
        if self.slos is None or not self.slos.targets:
            raise ValueError(f"scenario {self.name!r}: no SLO; a battle must be able to fail")
        ids = self.provider_ids()
        for c in self.chaos_actions:
            c.validate(ids)
        process_slos = [k for k in PROCESS_SLOS if k in self.slos.targets]
        if process_slos and not self.router_opts.process:
            raise ValueError(
                f"scenario {self.name!r}: {', '.join(process_slos)} measure the router's own "
                "process, but an in-process router shares this one (every figure would include "
                "the mock providers and the load generator): run the router in a process of its "
                "own (router: {process: true}, .router(process=True) or --process)"
            )
        for contender in self.contender_list:
            if contender.kind == "direct" and contender.provider not in ids:
                raise ValueError(
                    f"scenario {self.name!r}: contender direct:{contender.provider}: no such "
                    f"provider; the providers are {ids}"
                )


def _workload_from_dict(d: Mapping[str, Any]) -> Workload | SubscribeWorkload:
    if isinstance(d, Mapping) and d.get("shape") == "subscribe":
        return SubscribeWorkload.from_dict(d)
    return Workload.from_dict(d)


def _fleet_spec(
    providers: Mapping[str, Mapping[str, Any]], *, chain_id: int = 1, block_time_ms: int = 1000
) -> MockFleetSpec:
    """Mock providers with their knobs (``{"alpha": {"latency_ms": 50}}``) on one chain."""
    specs = tuple((pid, Knobs().with_changes(**dict(k))) for pid, k in providers.items())
    if not specs:
        raise ValueError("a fleet needs at least one provider")
    return MockFleetSpec(specs, chain_id, block_time_ms)
