"""The machine: paths, core pinning, tools from Debian, ports, CPU accounting.

Layout on the 2-core machine (as in /work/shared/measurements/python-stack.md): the server
under test runs alone on core 0 (``SUT_CPU``); the upstream, wrk and the bench script share
core 1 (``AUX_CPU``). When the upstream itself is measured, wrk moves to core 0.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO = BENCH_DIR.parent
PYTHON = sys.executable
HOST = "127.0.0.1"

SUT_CPU = "0"  # the server under test
AUX_CPU = "1"  # upstream + wrk + this script


_CPUS_AT_START = len(os.sched_getaffinity(0))  # before pin_self() narrows this process


def pinning_available() -> bool:
    return shutil.which("taskset") is not None and _CPUS_AT_START >= 2


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def machine_info() -> str:
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    wrk = tool_version(["wrk", "-v"]) or "wrk missing"
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')} | nproc {os.cpu_count()} ({cpu_model()}){mem} | "
        f"{platform.system()} {platform.release()} | Python {platform.python_version()} | {wrk}"
    )


def tool_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].split(" Copyright")[0].strip() if text else argv[0]


def require(tool: str, apt: str | None = None) -> None:
    """Make sure ``tool`` is on PATH, installing its Debian package when missing (as root)."""
    if shutil.which(tool) is not None:
        return
    package = apt or tool
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"{tool} not found: apt-get install -y {package}")
    print(f"{tool} not found: installing the Debian package {package} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"apt-get install {package} failed:\n{done.stderr[-2000:]}")
    if shutil.which(tool) is None:
        raise SystemExit(f"{tool} still not found after installing {package}")


def pin_self(cpu: str = AUX_CPU) -> None:
    """Keep this script (idle most of the time, but not always) off the server's core."""
    if pinning_available():
        os.sched_setaffinity(0, {int(c) for c in cpu.split(",")})


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {HOST}:{port}") from None
            time.sleep(0.05)


def cpu_seconds(procs: Iterable[Any]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(Exception):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine (all cores, every process, kernel included)."""
    import psutil

    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))
