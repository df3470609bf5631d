"""``RouterProcessSync``: a router node for synchronous code (the benchmarks).

The same command, readiness and process group as ``router_process.RouterProcess``; the output
goes to a log file (nothing ever blocks on a pipe, and the benchmarks read it afterwards) and
readiness is read back from it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

from lasso_rpc.battle.providers.process import group_options, kill_group, signal_group, track
from lasso_rpc.battle.providers.router_process import Readiness, RouterNode, RouterProcessError

__all__ = ["RouterProcessSync"]


class RouterProcessSync(RouterNode):
    """One router node for synchronous code; its output goes to ``log`` (a file: nothing ever
    blocks on a pipe) and readiness is read back from it. ``launcher`` may pin the process
    (``taskset -c 0 python ...``)."""

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        *,
        log: str | os.PathLike[str],
        workers: int = 1,
        port: int = 0,
        launcher: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            config_path,
            workers=workers,
            port=port,
            launcher=launcher,
            env=env,
            cwd=cwd,
            startup_timeout_s=startup_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
        self.log = Path(log)
        self.popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        rc = self.popen.poll() if self.popen is not None else None
        return f"RouterProcessSync(port={self._port}, pid={self.pid}, rc={rc}, {self._ready!r})"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self) -> Self:
        """Spawn and wait until every worker listens (``RouterProcessError`` otherwise)."""
        if self.popen is not None and self.popen.poll() is None:
            raise RouterProcessError("the router process is running already")
        self._ready = Readiness(self.workers)
        with self.log.open("ab") as out:
            offset = out.tell()
            self.popen = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                **group_options(signal.SIGTERM),
            )
        self._reaped = False
        track(self.popen.pid)
        try:
            self._wait_listening(offset)
        except BaseException:
            self.kill()
            raise
        self._listened()
        return self

    def _wait_listening(self, offset: int) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + self.startup_timeout_s
        with self.log.open("rb") as f:
            f.seek(offset)
            while not self._feed_lines(f):
                if self.popen.poll() is not None:
                    self._feed_lines(f)
                    if self._ready.ready:
                        return
                    raise self._ready.failure(f"exited with {self.popen.returncode}")
                if time.monotonic() > deadline:
                    raise self._ready.failure(f"not listening after {self.startup_timeout_s} s")
                time.sleep(0.02)

    def _feed_lines(self, f: IO[bytes]) -> bool:
        while True:
            at = f.tell()
            line = f.readline()
            if not line.endswith(b"\n"):
                f.seek(at)  # a line still being written: read it whole next time
                return self._ready.ready
            if self._ready.feed(line.decode(errors="replace")):
                return True

    def stop(self) -> None:
        """SIGTERM (and SIGCONT) to the group; SIGKILL after ``stop_timeout_s``."""
        if self.popen is not None and self.popen.poll() is None:
            signal_group(self.popen.pid, signal.SIGTERM)
            signal_group(self.popen.pid, signal.SIGCONT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(self.stop_timeout_s)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole group at once: the node crashes."""
        if self.popen is not None and not self._reaped:
            kill_group(self.popen.pid)  # workers share the group: none is left behind
            self.popen.wait()
            self._reaped = True  # once only: the group id may be reused later

    def restart(self) -> Self:
        """Stop if running, then start again on the same port."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
