"""The router profile a scenario runs: its providers (or their fault proxies), routing, control."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from lasso_rpc.battle.spec import ScenarioSpec

__all__ = ["CHAIN", "router_config"]

CHAIN = "ethereum"


def router_config(
    sc: ScenarioSpec,
    urls: dict[str, str],
    token: str,
    chain_id: int,
    ws_urls: dict[str, str],
    *,
    strategy: str | None = None,
) -> str:
    """The YAML profile; ``strategy`` replaces the scenario's (a ``router:X`` contender)."""
    routing: dict[str, Any] = {"default_strategy": sc.router_opts.strategy, "head_poll_ms": 500}
    routing.update(sc.router_opts.routing)
    if strategy is not None:
        routing["default_strategy"] = strategy
    doc: dict[str, Any] = {
        "name": f"Battle: {sc.name}",
        "slug": "battle",
        "routing": routing,
        **({"cache": dict(sc.router_opts.cache)} if sc.router_opts.cache else {}),
        "chains": {
            CHAIN: {
                "chain_id": chain_id,
                "providers": [
                    {"id": pid, "url": url, "priority": i + 1}
                    | ({"ws_url": ws_urls[pid]} if pid in ws_urls else {})
                    for i, (pid, url) in enumerate(urls.items())
                ],
            }
        },
        "server": {
            "host": "127.0.0.1",
            "port": 0,
            "log_level": "warning",
            "control": {"enabled": True, "token": token},
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)
