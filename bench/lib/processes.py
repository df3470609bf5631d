"""Processes: ``Stack`` owns a temp dir and every child, and stops them all on exit.

Every child starts in its own process group with PR_SET_PDEATHSIG (``lasso_rpc``'s
``providers.process``, shared with the battle's anvil and router nodes); ``Stack`` stops the
groups it started (SIGTERM, then SIGKILL) on exit, on an exception, on Ctrl-C, SIGTERM and
SIGHUP. Nothing is killed by name.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from lasso_rpc.battle.providers.process import group_options, kill_group, signal_group
from lasso_rpc.battle.providers.router_process_sync import RouterProcessSync
from lib.machine import REPO, pinning_available


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``argv`` under ``taskset -c cpus`` when pinning is available."""
    if cpus is not None and pinning_available():
        return ["taskset", "-c", cpus, *argv]
    return list(argv)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    cpus: str | None
    node: RouterProcessSync | None = None  # a router node stops through its own launcher

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(
        self, pattern: str, count: int = 1, timeout_s: float = 30.0
    ) -> list[re.Match[str]]:
        """Waits until the log holds ``count`` matches of ``pattern``; fails if the child dies."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            found = list(rx.finditer(self.log_text()))
            if len(found) >= count:
                return found
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.log_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {pattern!r} in its log:\n{self.log_text()}")
            time.sleep(0.02)

    def processes(self) -> list[Any]:
        """psutil processes of this child and its descendants (taskset execs, so pid is ours)."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.node is not None:
            self.node.stop()
            return
        if self.popen.poll() is None:
            signal_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout_s)
        kill_group(self.pid)  # whatever is left of the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout_s)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Stack(contextlib.AbstractContextManager["Stack"]):
    """Owns a temp dir and every process started through it; stops them all on exit."""

    def __init__(self, keep_tmp: bool = False) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="lasso-bench-"))
        self.children: list[Child] = []
        self._keep = keep_tmp
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Stack:
        # SIGINT too: a shell starts background jobs with SIGINT ignored.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old[s] = signal.signal(s, _raise_interrupt)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        for s, h in self._old.items():
            signal.signal(s, h)
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            print(f"(logs kept in {self.tmp})", file=sys.stderr)
        elif not self._keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def keep(self) -> None:
        """Keep the temp dir (configs, logs) after exit."""
        self._keep = True

    def start(
        self, name: str, argv: Sequence[str], *, cpus: str | None = None, cwd: Path | None = None
    ) -> Child:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                pinned(argv, cpus),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd or REPO,
                **group_options(signal.SIGTERM),
            )
        return self.adopt(Child(name, popen, log, cpus))

    def adopt(self, child: Child) -> Child:
        """Own a child started elsewhere (a router node): stopped with the others."""
        self.children.append(child)
        return child

    def stop(self, what: Child | Any) -> None:
        """Stop a child, or a ``Server`` with its children."""
        for child in [what] if isinstance(what, Child) else [what.child, *what.extra]:
            child.stop()
            if child in self.children:
                self.children.remove(child)

    def run(self, argv: Sequence[str], *, cpus: str | None, timeout_s: float) -> str:
        """A short-lived child (wrk): output captured, killed on timeout or interrupt."""
        popen = subprocess.Popen(
            pinned(argv, cpus),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **group_options(signal.SIGTERM),
        )
        try:
            out, _ = popen.communicate(timeout=timeout_s)
        except BaseException:
            kill_group(popen.pid)
            popen.wait()
            raise
        if popen.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with {popen.returncode}: {out.decode()[-2000:]}")
        return out.decode(errors="replace")


@dataclass
class Pids:
    """Something ``run_wrk(watch=...)`` can measure: a fixed set of pids."""

    pids: list[int]

    def processes(self) -> list[Any]:
        import psutil

        out = []
        for pid in self.pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                out.append(psutil.Process(pid))
        return out


@contextlib.contextmanager
def interrupt_exit() -> Iterator[None]:
    """Ctrl-C: children are already stopped by ``Stack``; exit 130 without a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
