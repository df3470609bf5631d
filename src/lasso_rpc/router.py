"""The environment object: wires config, chains, pipeline and event bus; works as a library.

``Router`` knows nothing about HTTP: the aiohttp server, the battle framework and tests all use
it through ``resolve`` / ``pipeline.execute`` and the control operations. WebSocket
subscriptions are the server's (``server/app.py`` builds the manager from ``resolve``,
``pipeline``, ``bus`` and ``clock``); the router knows nothing of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

from lasso_rpc.clock import SYSTEM_CLOCK, Clock
from lasso_rpc.config.models import Config, ProfileConfig
from lasso_rpc.errors import ConfigError, InvalidParams
from lasso_rpc.observability.events import ConfigReloaded, EventBus
from lasso_rpc.resilience.pipeline import Pipeline
from lasso_rpc.shaping.shaper import Shaper, StoreFactory
from lasso_rpc.upstream.chain import ChainRuntime

__all__ = ["Router", "ProfileRuntime"]

log = logging.getLogger("lasso_rpc.router")
_CLOSE_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class ProfileRuntime:
    config: ProfileConfig
    chains: dict[str, ChainRuntime]  # canonical chain name -> runtime
    lookup: dict[str, ChainRuntime]  # name, alias or decimal chain id -> runtime


class Router:
    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        transport_impl: str = "fast",
        cache_store: StoreFactory | None = None,
    ) -> None:
        self.bus = bus or EventBus()
        self.clock = clock
        self._rng = rng or random.Random()
        self._impl = transport_impl
        self.pipeline = Pipeline(bus=self.bus, clock=clock)
        #: Cache, dedup, log splitting, monotonic heads: what the server calls per unary call.
        self.shaper = Shaper(
            pipeline=self.pipeline, bus=self.bus, clock=clock, store_factory=cache_store
        )
        self.config = config
        self.profiles = self._build(config)
        self._started = False
        self._closers: set[asyncio.Task[None]] = set()

    def _build(self, config: Config) -> dict[str, ProfileRuntime]:
        out: dict[str, ProfileRuntime] = {}
        for slug, prof in config.profiles.items():
            chains: dict[str, ChainRuntime] = {}
            lookup: dict[str, ChainRuntime] = {}
            store = self.shaper.store_for(slug, prof.cache) if prof.cache.enabled else None
            for name, cc in prof.chains.items():
                rt = ChainRuntime(
                    slug,
                    name,
                    cc,
                    bus=self.bus,
                    clock=self.clock,
                    rng=self._rng,
                    transport_impl=self._impl,
                )
                chains[name] = rt
                self.shaper.add_chain(rt, prof.cache, store)
                for key in (name, str(cc.chain_id), *cc.aliases):
                    lookup[key] = rt
            out[slug] = ProfileRuntime(prof, chains, lookup)
        return out

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        for prof in self.profiles.values():
            for chain in prof.chains.values():
                await chain.start()

    async def aclose(self) -> None:
        await self.shaper.aclose()
        for prof in self.profiles.values():
            for chain in prof.chains.values():
                await chain.aclose()
        for t in list(self._closers):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def __aenter__(self) -> Router:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- lookups --------------------------------------------------------------------------

    @property
    def default_profile(self) -> str:
        return self.config.default_profile

    def resolve(self, chain_key: str, profile: str | None = None) -> ChainRuntime:
        prof = self.profiles.get(profile or self.config.default_profile)
        if prof is None:
            known = sorted(self.profiles)
            raise InvalidParams(
                f"unknown profile {profile!r}; known profiles: {', '.join(known)}",
                data={"known_profiles": known},
            )
        rt = prof.lookup.get(chain_key)
        if rt is None:
            raise _unknown_chain(chain_key, prof)
        return rt

    def chains(self) -> list[ChainRuntime]:
        return [c for p in self.profiles.values() for c in p.chains.values()]

    # -- control --------------------------------------------------------------------------

    def _provider_chain(
        self, chain_key: str, provider_id: str, profile: str | None
    ) -> ChainRuntime:
        chain = self.resolve(chain_key, profile)
        if provider_id not in chain.providers:
            raise InvalidParams(f"unknown provider {provider_id!r} on chain {chain.name!r}")
        return chain

    def open_breaker(
        self, chain_key: str, provider_id: str, profile: str | None = None, *, hold: bool = False
    ) -> str:
        """``hold``: stay open until closed by hand (no recovery probe)."""
        chain = self._provider_chain(chain_key, provider_id, profile)
        chain.providers[provider_id].breaker.force_open("control api", hold=hold)
        return chain.providers[provider_id].breaker.state

    def close_breaker(self, chain_key: str, provider_id: str, profile: str | None = None) -> str:
        chain = self._provider_chain(chain_key, provider_id, profile)
        chain.providers[provider_id].breaker.force_close("control api")
        return chain.providers[provider_id].breaker.state

    def cordon(
        self, chain_key: str, provider_id: str, on: bool, profile: str | None = None
    ) -> None:
        self._provider_chain(chain_key, provider_id, profile).set_cordoned(provider_id, on)

    async def reload(self, load: object, source: str) -> Config:
        """Swap in a new config atomically. ``load`` returns a ``Config`` or raises ConfigError;
        on error the old config keeps serving and a ``config.reloaded`` event (ok=False) says why.
        """
        try:
            new = load() if callable(load) else load
            if not isinstance(new, Config):
                raise ConfigError(["(root): loader returned no Config"])
            profiles = self._build(new)
        except ConfigError as exc:
            self.bus.publish(
                ConfigReloaded(
                    ts=self.clock.wall_s(), ok=False, source=source, errors=tuple(exc.errors)
                )
            )
            raise
        if self._started:
            for prof in profiles.values():
                for chain in prof.chains.values():
                    await chain.start()
        old = self.profiles
        self.profiles, self.config = profiles, new
        self.bus.publish(ConfigReloaded(ts=self.clock.wall_s(), ok=True, source=source))
        task = asyncio.create_task(self._close_later(old))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        return new

    async def _close_later(self, old: dict[str, ProfileRuntime]) -> None:
        # Requests already running on the old runtimes finish before their transports close.
        for prof in old.values():
            for chain in prof.chains.values():
                chain.stop()
        await asyncio.sleep(_CLOSE_GRACE_S)
        for prof in old.values():
            for chain in prof.chains.values():
                await self.shaper.forget(chain)
                await chain.aclose()

    def __repr__(self) -> str:
        return f"Router(profiles={list(self.profiles)}, chains={len(self.chains())})"


def _unknown_chain(chain_key: str, prof: ProfileRuntime) -> InvalidParams:
    """The error names every chain of the profile, with its aliases and id."""
    names = [
        f"{name} ({', '.join([*rt.config.aliases, str(rt.config.chain_id)])})"
        for name, rt in prof.chains.items()
    ]
    return InvalidParams(
        f"unknown chain {chain_key!r}; known chains: {'; '.join(names)}",
        data={
            "known_chains": [
                {"name": n, "aliases": rt.config.aliases, "chain_id": rt.config.chain_id}
                for n, rt in prof.chains.items()
            ]
        },
    )
