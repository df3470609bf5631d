"""A real ``anvil`` node for integration tests and battles (several sharing one chain:
``providers.lockstep.AnvilLockstep``).

``AnvilNode`` runs ``anvil --host 127.0.0.1 --port 0 --silent ...`` in its own process group.
``--silent`` prints nothing (not even ``Listening on``), so the port the OS picked is read from
the process's own listening socket (psutil): no free-port guessing, no race, never a foreign
process answering on "our" port. ``stop()`` is ``kill -9`` of the group (chaos), ``start()``
comes back on the same port with a fresh chain, ``aclose()`` always kills. No orphans: an exit
hook kills what a crashed test left, and on Linux PR_SET_PDEATHSIG even survives our SIGKILL
(``providers.process``).

Errors: ``AnvilError`` (a ``LassoError``) ├── ``AnvilNotFound`` ├── ``AnvilRpcError`` (the node
answered with a JSON-RPC error; ``code``, ``message``) └── ``LockstepDiverged``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp
import psutil

from lasso_rpc.battle.providers.process import group_options, kill_group, track
from lasso_rpc.errors import LassoError

__all__ = [
    "DEV_ACCOUNT",
    "DEV_PRIVATE_KEY",
    "AnvilError",
    "AnvilNode",
    "AnvilNotFound",
    "AnvilRpcError",
    "LockstepDiverged",
    "anvil_binary",
    "find_anvil",
]

#: anvil's first dev account (mnemonic "test test ... junk") and its key: funded with 10000 ETH.
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ENV_VAR = "LASSO_ANVIL"
_REPO_ROOT = Path(__file__).resolve().parents[4]
_ids = itertools.count(1)


class AnvilError(LassoError):
    """An anvil node could not be found, started or reached."""


class AnvilNotFound(AnvilError):
    """No anvil binary: set LASSO_ANVIL, run ``make anvil`` or put ``anvil`` on PATH."""


class AnvilRpcError(AnvilError):
    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.code = int(error.get("code", 0))
        self.message = str(error.get("message", ""))
        super().__init__(f"{method}: {self.code} {self.message}")


class LockstepDiverged(AnvilError):
    """Nodes of an ``AnvilLockstep`` sealed different blocks for the same height."""


def find_anvil(*, env: Mapping[str, str] | None = None, roots: Sequence[Path] | None = None) -> str:
    """``$LASSO_ANVIL``, else ``node_modules/.bin/anvil`` under cwd or the repo root, else PATH.

    ``env`` (default ``os.environ``) and ``roots`` are there so tests need no monkeypatching.
    """
    env = os.environ if env is None else env
    explicit = env.get(ENV_VAR)
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise AnvilNotFound(f"{ENV_VAR}={explicit!r} is not an executable file")
    for root in (Path.cwd(), _REPO_ROOT) if roots is None else roots:
        candidate = root / "node_modules" / ".bin" / "anvil"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("anvil", path=env.get("PATH", os.defpath))
    if on_path:
        return on_path
    raise AnvilNotFound(
        f"anvil not found: set {ENV_VAR}, run `make anvil` (npm install) or put anvil on PATH"
    )


def anvil_binary(
    *, env: Mapping[str, str] | None = None, roots: Sequence[Path] | None = None
) -> str:
    """For tests: the binary, or skip the calling test module when none is installed.

    A ``LASSO_ANVIL`` that points nowhere is a broken setup, not an absent binary: it fails.
    """
    try:
        return find_anvil(env=env, roots=roots)
    except AnvilNotFound as exc:
        if (os.environ if env is None else env).get(ENV_VAR):
            raise
        import pytest

        pytest.skip(str(exc), allow_module_level=True)


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state owned by ``pid`` or its children (a wrapper script may exec)."""
    ports: set[int] = set()
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    ports.add(int(conn.laddr.port))
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        pass
    return ports


class AnvilNode:
    """One anvil process; ``async with AnvilNode(chain_id=1) as node: node.url``.

    Mining: automine (a block per transaction) by default, ``block_time_s`` for interval mining,
    ``no_mining=True`` for blocks only on ``mine()``.
    """

    def __init__(
        self,
        *,
        chain_id: int = 31337,
        block_time_s: float | None = None,
        no_mining: bool = False,
        genesis_timestamp: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 15.0,
        rpc_timeout_s: float = 10.0,
        name: str | None = None,
    ) -> None:
        if block_time_s is not None and no_mining:
            raise ValueError("block_time_s and no_mining exclude each other")
        self.chain_id = chain_id
        self.block_time_s = block_time_s
        self.no_mining = no_mining
        self.genesis_timestamp = genesis_timestamp
        self.extra_args = tuple(extra_args)
        self.binary = binary
        self.host = host
        self.name = name or f"anvil-{next(_ids)}"
        self.startup_timeout_s = startup_timeout_s
        self.rpc_timeout_s = rpc_timeout_s
        self._port = port
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._state = "new"  # "stopped" / "closed" once killed; "running" is read off the process

    # -- facts -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise AnvilError(f"{self.name} has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def args(self) -> list[str]:
        """The command line ``start()`` runs (``--port 0`` until a port is known)."""
        args = [self.binary or find_anvil(), "--host", self.host, "--port", str(self._port)]
        args += ["--silent", "--chain-id", str(self.chain_id)]
        if self.block_time_s is not None:
            args += ["--block-time", f"{self.block_time_s:g}"]
        elif self.no_mining:
            args.append("--no-mining")
        if self.genesis_timestamp is not None:
            args += ["--timestamp", str(self.genesis_timestamp)]
        return [*args, *self.extra_args]

    def __repr__(self) -> str:
        state = "running" if self.running else self._state
        return f"<AnvilNode {self.name} {state} port={self._port} pid={self.pid}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> AnvilNode:
        """Start (or restart on the same port) and wait until ``eth_blockNumber`` answers."""
        if self.running:
            raise AnvilError(f"{self.name} is already running")
        args = self.args()
        with tempfile.TemporaryFile() as stderr:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                **group_options(signal.SIGKILL),
            )
            self._proc = proc
            track(proc.pid)
            try:
                async with asyncio.timeout(self.startup_timeout_s):
                    await self._until_ready(proc, stderr)
            except BaseException as exc:
                await self.stop()
                if isinstance(exc, TimeoutError):
                    raise AnvilError(
                        f"{self.name} not ready within {self.startup_timeout_s}s: {args}"
                    ) from exc
                raise
        return self

    async def _until_ready(self, proc: asyncio.subprocess.Process, stderr: IO[bytes]) -> None:
        while True:  # 1. our own process listens (on the port we asked for, if any)
            self._check_alive(proc, stderr)
            ports = _listening_ports(proc.pid)
            if ports and (not self._port or self._port in ports):
                self._port = self._port or min(ports)
                break
            await asyncio.sleep(0.005)
        while True:  # 2. and answers JSON-RPC
            self._check_alive(proc, stderr)
            try:
                await self.rpc("eth_blockNumber")
                return
            except AnvilError:
                await asyncio.sleep(0.01)

    def _check_alive(self, proc: asyncio.subprocess.Process, stderr: IO[bytes]) -> None:
        if proc.returncode is None:
            return
        stderr.seek(0)
        why = stderr.read().decode(errors="replace").strip()
        raise AnvilError(f"{self.name} exited with {proc.returncode}: {why or 'no output'}")

    async def stop(self) -> None:
        """``kill -9`` the process group and reap it; the port is kept for ``start()``."""
        proc, self._proc = self._proc, None
        session, self._session = self._session, None
        if session is not None:  # keep-alive connections to a dead process are useless
            await session.close()
        if proc is None:
            return
        kill_group(proc.pid)
        await proc.wait()
        self._state = "stopped"

    async def aclose(self) -> None:
        await self.stop()
        self._state = "closed"

    async def __aenter__(self) -> AnvilNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- JSON-RPC --------------------------------------------------------------------------

    async def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call straight to this node (no router); the ``result``, or ``AnvilRpcError``."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.rpc_timeout_s)
            )
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        try:
            async with self._session.post(self.url, json=body) as resp:
                reply = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AnvilError(f"{method} to {self.name} ({self.url}) failed: {exc!r}") from exc
        if not isinstance(reply, dict):
            raise AnvilError(f"{method} to {self.name}: unexpected reply {reply!r}")
        if reply.get("error") is not None:
            raise AnvilRpcError(method, reply["error"])
        return reply.get("result")

    async def block_number(self) -> int:
        return int(await self.rpc("eth_blockNumber"), 16)

    async def mine(self, n: int = 1, *, timestamp: int | None = None) -> int:
        """Mine ``n`` blocks (``evm_mine``; all get ``timestamp`` if given); the new head."""
        # anvil 1.7 rejects {"blocks": n} without a "timestamp" key; null is accepted.
        await self.rpc("evm_mine", [{"blocks": n, "timestamp": timestamp}])
        return await self.block_number()
