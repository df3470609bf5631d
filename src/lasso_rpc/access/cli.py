"""``lasso-rpc keys``: API keys stored in Redis (``access.redis_keys``), for every node at once."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from lasso_rpc.aio import run_coro

__all__ = ["keys_app"]

keys_app = typer.Typer(no_args_is_help=True, help="API keys kept in Redis (access.redis_keys).")


def _state(config: str) -> tuple[str, str]:
    from lasso_rpc.config import load_config
    from lasso_rpc.errors import ConfigError

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if cfg.state.backend != "redis" or cfg.state.url is None:
        typer.echo("this config keeps no state in Redis (state.backend: redis)", err=True)
        raise typer.Exit(2)
    return cfg.state.url, cfg.state.prefix


@keys_app.command("add")
def add(
    config: Annotated[str, typer.Option("--config", "-c", help="Profile file or directory")],
    key_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the key (keys stay off the command line)"),
    ],
    name: Annotated[str | None, typer.Option(help="Name in metrics")] = None,
    profile: Annotated[str | None, typer.Option(help="Profile serving this key")] = None,
    rps: Annotated[float | None, typer.Option(help="Token bucket: calls per second")] = None,
    burst: Annotated[int | None, typer.Option(help="Token bucket: burst")] = None,
    quota: Annotated[int | None, typer.Option(help="Calls per period")] = None,
    period: Annotated[str, typer.Option(help="minute, hour, day or seconds")] = "day",
) -> None:
    """Store a key's limits in Redis (the key itself is stored only as its SHA-256)."""
    from redis.asyncio import Redis

    from lasso_rpc.access.redis_keys import add_key

    key = os.environ.get(key_env)
    if not key:
        typer.echo(f"${key_env} is not set", err=True)
        raise typer.Exit(2)
    url, prefix = _state(config)
    spec: dict[str, Any] = {}
    if name:
        spec["name"] = name
    if profile:
        spec["profile"] = profile
    if rps is not None:
        spec["rate_limit"] = {"rps": rps, **({"burst": burst} if burst else {})}
    if quota is not None:
        spec["quota"] = {"requests": quota, "period": int(period) if period.isdigit() else period}

    async def run() -> str:
        redis = Redis.from_url(url)
        try:
            return await add_key(redis, prefix, key, spec)
        finally:
            await redis.aclose()

    try:
        field = run_coro(run())
    except ValueError as exc:
        typer.echo(f"invalid key block: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"stored in {prefix}:keys as {field}")


@keys_app.command("remove")
def remove(
    config: Annotated[str, typer.Option("--config", "-c", help="Profile file or directory")],
    key_env: Annotated[str, typer.Option(help="Environment variable holding the key")],
) -> None:
    """Remove a key from Redis (nodes forget it within 30 s: their cache)."""
    import hashlib

    from redis.asyncio import Redis

    key = os.environ.get(key_env)
    if not key:
        typer.echo(f"${key_env} is not set", err=True)
        raise typer.Exit(2)
    url, prefix = _state(config)

    async def run() -> int:
        redis = Redis.from_url(url)
        try:
            return int(await redis.hdel(f"{prefix}:keys", hashlib.sha256(key.encode()).hexdigest()))
        finally:
            await redis.aclose()

    typer.echo("removed" if run_coro(run()) else "no such key")
