"""`lasso-rpc` command line (SPEC §7)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import platform
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from lasso_rpc.aio import run_coro
from lasso_rpc.battle.providers.spec import FAILURE_MODES
from lasso_rpc.errors import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Smart JSON-RPC router for EVM chains."
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"lasso-rpc {version('lasso-rpc')}")
        except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
            typer.echo("lasso-rpc (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Smart JSON-RPC router for EVM chains."""


def _reuse_port_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(1024)
    sock.setblocking(False)
    return sock


_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters
_M_MMAP_THRESHOLD = -3


def tune_allocator(trim_bytes: int = 64 * 1024 * 1024, mmap_bytes: int = 32 * 1024 * 1024) -> bool:
    """Keep up to ``trim_bytes`` of freed heap instead of giving it back to the kernel at once.

    An upstream answer of a few MB passes through three result-sized buffers; glibc returns
    each to the kernel when freed, so every such request faulted its pages in again: 2.8 ms of
    router CPU per 1 MB answer, 1.05 ms with these settings (bench/big_response.py). The cost is
    RSS that stays up to ``trim_bytes`` above the live heap after a burst. Skipped when the
    operator set glibc's own MALLOC_* variables, and on other C libraries. True when applied.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        mmap_ok: int = libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes)
        trim_ok: int = libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes)
    except (OSError, AttributeError):
        return False
    return mmap_ok == 1 and trim_ok == 1


async def _serve(
    config_path: str,
    host: str | None,
    port: int | None,
    sock: socket.socket | None,
    hub: tuple[int, socket.socket] | None = None,
) -> None:
    from lasso_rpc.cluster.hub_link import HubLink
    from lasso_rpc.config import load_config
    from lasso_rpc.observability.logs import configure_logging
    from lasso_rpc.server.app import RouterServer

    config = load_config(config_path)
    configure_logging(config.server.log_level)
    stop = asyncio.Event()
    link = HubLink(hub[1], hub[0], on_lost=stop.set) if hub is not None else None
    server = RouterServer(
        config,
        host=host,
        port=port,
        sock=sock,
        reloader=lambda: load_config(config_path),
        hub=link,
    )
    await server.start()
    # Start-up objects never die: keep them out of the cyclic GC, and collect less often
    # (the request path makes short-lived cycles; measured 1.56x on concurrent batches).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    tune_allocator()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[object]] = set()

    def on_hup() -> None:
        t = loop.create_task(_reload(server, config_path))
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # One write of the whole line: workers start together, and print() writes the text and the
    # newline apart, so two workers' lines could interleave on the shared stderr.
    sys.stderr.write(f"lasso-rpc listening on {server.url} (pid {os.getpid()})\n")
    sys.stderr.flush()
    try:
        await stop.wait()
    finally:
        await server.aclose()


async def _reload(server: object, config_path: str) -> object:
    from lasso_rpc.config import load_config
    from lasso_rpc.server.app import RouterServer

    assert isinstance(server, RouterServer)
    with contextlib.suppress(ConfigError):  # the old config keeps serving; an event says why
        return await server.router.reload(lambda: load_config(config_path), "SIGHUP")
    return None


def _worker(config_path: str, host: str, port: int, index: int, hub: socket.socket) -> None:
    sock = _reuse_port_socket(host, port)
    run_coro(_serve(config_path, host, port, sock, (index, hub)))


@app.command()
def serve(
    config: Annotated[str, typer.Option("--config", "-c", help="Profile file or directory")],
    host: Annotated[str | None, typer.Option(help="Listen address (default from config)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default from config)")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes sharing the port (SO_REUSEPORT) and their state"),
    ] = 1,
) -> None:
    """Run the router."""
    from lasso_rpc.config import load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    h = host or cfg.server.host
    p = cfg.server.port if port is None else port
    if workers == 1:
        run_coro(_serve(config, h, p, None))
        return
    # Hold the port so every worker binds the same one, even when asked for port 0.
    # Bound, not listening (so it takes no connection), and kept until the workers are gone:
    # no other program can take the port while the workers start.
    holder = _reuse_port_socket(h, p, listen=False)
    p = holder.getsockname()[1]
    from lasso_rpc.cluster.supervisor import supervise

    # One socketpair per worker: the parent is the hub the workers share state through.
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(config, h, p, i, pairs[i][1]), daemon=False)
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    for _, child_end in pairs:
        child_end.close()
    try:
        code = run_coro(supervise(procs, [hub_end for hub_end, _ in pairs]))
    finally:
        holder.close()
    if code:
        typer.echo("a worker exited with an error; all workers stopped", err=True)
        raise typer.Exit(code)


@app.command("check-config")
def check_config(path: Annotated[str, typer.Argument(help="Profile file or directory")]) -> None:
    """Validate a config; list every error with its key path."""
    from lasso_rpc.config import load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for e in exc.errors:
            typer.echo(e, err=True)
        typer.echo(f"{len(exc.errors)} error(s)", err=True)
        raise typer.Exit(1) from exc
    for slug, prof in cfg.profiles.items():
        for name, chain in prof.chains.items():
            typer.echo(
                f"ok  profile={slug} chain={name} (id {chain.chain_id}) "
                f"providers={len(chain.providers)} strategy={chain.routing.default_strategy}"
            )


@app.command()
def mock(
    providers: Annotated[int, typer.Option("--providers", "-n", min=1, max=26)] = 3,
    chain_id: Annotated[int, typer.Option(help="Chain id of the simulated chain")] = 1,
    block_time_ms: Annotated[int, typer.Option(help="Milliseconds between blocks")] = 2000,
    port_base: Annotated[
        int, typer.Option(help="Provider i listens on PORT_BASE+i (0: free ports)")
    ] = 0,
    latency_ms: Annotated[float, typer.Option(help="Latency of every answer, ms")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random extra latency, 0..JITTER ms")] = 0.0,
    failure_mode: Annotated[
        str, typer.Option(help=f"How failing requests fail: {', '.join(FAILURE_MODES)}")
    ] = "none",
    error_rate: Annotated[
        float | None,
        typer.Option(help="Share of requests that fail (with --failure-mode, else HTTP 500)"),
    ] = None,
    lag_blocks: Annotated[int, typer.Option(help="Blocks the providers lag behind")] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="One provider's knobs: ID:knob=value[,knob=value] (e.g. "
            "beta:latency_ms=200 or gamma:failure_mode=http_500,error_rate=0.3); repeatable",
        ),
    ] = None,
) -> None:
    """Start a mock provider fleet and print a ready config for it.

    The options apply to every provider; --set changes one. Knobs: latency_ms, jitter_ms,
    error_rate, failure_mode, http_status, retry_after_s, lag_blocks.
    """
    from lasso_rpc.battle.mock_cli import fleet_knobs
    from lasso_rpc.battle.providers.fleet import run_mock_fleet

    try:
        specs = fleet_knobs(
            providers,
            common={
                "latency_ms": latency_ms,
                "jitter_ms": jitter_ms,
                "failure_mode": failure_mode,
                "error_rate": error_rate,
                "lag_blocks": lag_blocks,
            },
            overrides=set_ or [],
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with contextlib.suppress(KeyboardInterrupt):
        run_coro(
            run_mock_fleet(
                specs, chain_id=chain_id, block_time_ms=block_time_ms, port_base=port_base
            )
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where reports go")] = Path("battle_results"),
    scale: Annotated[float, typer.Option(help="Length of the battle (1 = the full 30 s)")] = 0.5,
) -> None:
    """The quick-start job: a failover battle on mock providers, then a strategy tour."""
    from lasso_rpc.demo import run_demo

    passed = run_coro(run_demo(out, scale=scale))
    raise typer.Exit(0 if passed else 1)


def _register_battle() -> None:
    from lasso_rpc.battle.cli import battle_app

    app.add_typer(battle_app, name="battle")


_register_battle()


def _register_keys() -> None:
    from lasso_rpc.access.cli import keys_app

    app.add_typer(keys_app, name="keys")


_register_keys()


def main() -> None:
    app()
