"""Shared helpers of the benchmark suite: processes, a fast upstream, wrk, pinning, tables.

Imported by every ``bench/*.py`` script (they run as ``.venv/bin/python bench/X.py``, so this
directory is on ``sys.path``). Run as a program it is one of the helper servers::

    python bench/_common.py upstream [--mode echo|big|fail500]   # raw asyncio.Protocol + httptools
    python bench/_common.py aiohttp-echo                          # bare aiohttp.web echo
    python bench/_common.py router [--gc MODE] [--tracemalloc] serve ...   # instrumented CLI

The first two bind 127.0.0.1 on a free port and print ``listening PORT``; the third is
``lasso-rpc`` with GC accounting, reporting a ``STATS`` line on SIGUSR1 (``router_stats``).

Layout on the 2-core machine (as in /work/shared/measurements/python-stack.md): the server
under test runs alone on core 0 (``SUT_CPU``); the upstream, wrk and this script share core 1
(``AUX_CPU``). When the upstream itself is measured, wrk moves to core 0.

Every process is started in its own process group with ``PR_SET_PDEATHSIG``; ``Stack`` stops
the groups it started (SIGTERM, then SIGKILL) on exit, on an exception, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
HOST = "127.0.0.1"

SUT_CPU = "0"  # the server under test
AUX_CPU = "1"  # upstream + wrk + this script

BLOCK_NUMBER = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
GET_LOGS = (
    b'{"jsonrpc":"2.0","id":7,"method":"eth_getLogs","params":[{"fromBlock":"0x112a880",'
    b'"toBlock":"0x112a8e4","address":"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"}]}'
)
CHAIN = "bench"
NOISE_LIMIT = 35.0  # % of one core used by others during a cell before it is measured again


# -- machine -------------------------------------------------------------------------------


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


# -- processes -----------------------------------------------------------------------------


def _child_setup() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    if cpus is not None and pinning_available():
        return ["taskset", "-c", cpus, *argv]
    return list(argv)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    cpus: str | None

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
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        # Workers of a multi-process router share the group: make sure none is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
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
                _pinned(argv, cpus),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd or REPO,
                preexec_fn=_child_setup,
            )
        child = Child(name, popen, log, cpus)
        self.children.append(child)
        return child

    def stop(self, what: Child | Server) -> None:
        for child in [what] if isinstance(what, Child) else [what.child, *what.extra]:
            child.stop()
            if child in self.children:
                self.children.remove(child)

    def run(self, argv: Sequence[str], *, cpus: str | None, timeout_s: float) -> str:
        """A short-lived child (wrk): output captured, killed on timeout or interrupt."""
        popen = subprocess.Popen(
            _pinned(argv, cpus),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
        try:
            out, _ = popen.communicate(timeout=timeout_s)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            raise
        if popen.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with {popen.returncode}: {out.decode()[-2000:]}")
        return out.decode(errors="replace")


# -- the servers ---------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str  # base URL, no trailing slash
    child: Child
    extra: list[Child] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)  # pids printed by the router's workers

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def processes(self) -> list[Any]:
        return [p for c in (self.child, *self.extra) for p in c.processes()]


def start_upstream(stack: Stack, *, cpus: str | None = AUX_CPU, mode: str = "echo") -> Server:
    child = stack.start(
        f"upstream-{mode}-{len(stack.children)}",
        [PYTHON, str(BENCH_DIR / "_common.py"), "upstream", "--mode", mode],
        cpus=cpus,
    )
    port = child.wait_for(r"listening (\d+)")[0].group(1)
    return Server(f"upstream({mode})", f"http://{HOST}:{port}", child)


def start_aiohttp_echo(stack: Stack, *, cpus: str | None = SUT_CPU) -> Server:
    child = stack.start(
        "aiohttp-echo", [PYTHON, str(BENCH_DIR / "_common.py"), "aiohttp-echo"], cpus=cpus
    )
    port = child.wait_for(r"listening (\d+)")[0].group(1)
    return Server("aiohttp.web echo", f"http://{HOST}:{port}", child)


def router_config(
    providers: Sequence[dict[str, Any]],
    *,
    routing: dict[str, Any] | None = None,
    log_level: str = "info",
) -> dict[str, Any]:
    """A one-chain profile (chain ``bench``, chain id 1) served on port 0."""
    profile: dict[str, Any] = {
        "name": "Bench",
        "slug": "bench",
        "chains": {CHAIN: {"chain_id": 1, "providers": list(providers)}},
        "server": {"host": HOST, "port": 0, "log_level": log_level},
    }
    if routing:
        profile["routing"] = routing
    return profile


def start_router(
    stack: Stack,
    config: dict[str, Any],
    *,
    cpus: str | None = SUT_CPU,
    workers: int = 1,
    name: str = "router",
    instrumented: str | None = None,
    trace_malloc: bool = False,
) -> Server:
    """``python -m lasso_rpc serve`` on a generated config (JSON is YAML); waits for every worker.

    ``instrumented`` (a GC mode: ``default``, ``off`` or ``T0,T1,T2``) starts the same CLI
    through ``_common.py router`` instead, which adds GC accounting (``router_stats``); one
    worker only.
    """
    path = stack.tmp / f"{name}-{len(stack.children)}.yaml"
    path.write_text(json.dumps(config, indent=1))
    prefix = [PYTHON, "-m", "lasso_rpc"]
    if instrumented is not None or trace_malloc:
        if workers != 1:
            raise ValueError("an instrumented router runs one worker")
        prefix = [
            PYTHON,
            str(BENCH_DIR / "_common.py"),
            "router",
            "--gc",
            instrumented or "default",
        ]
        prefix += ["--tracemalloc"] if trace_malloc else []
    argv = [*prefix, "serve", "--config", str(path), "--port", "0", "--workers", str(workers)]
    child = stack.start(f"{name}-{len(stack.children)}", argv, cpus=cpus)
    found = child.wait_for(
        r"lasso-rpc listening on (http://\S+) \(pid (\d+)\)", count=workers, timeout_s=60
    )
    base = found[0].group(1)  # each worker prints its line once it is bound
    pids = [int(m.group(2)) for m in found]
    return Server(f"router(w{workers})", base, child, workers=pids)


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


def router_url(server: Server, route: str = CHAIN) -> str:
    return f"{server.url}/rpc/{route}"


def start_nginx(stack: Stack, upstream: Server, *, cpus: str | None = SUT_CPU) -> Server:
    """nginx as a plain keep-alive reverse proxy: 1 worker, no access log, everything in tmp."""
    require("nginx")
    root = stack.tmp / "nginx"
    root.mkdir(exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream rpc {{ server {HOST}:{upstream.port}; keepalive 64; }}
  server {{
    listen {HOST}:{port} reuseport;
    location / {{
      proxy_pass http://rpc;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    argv = ["nginx", "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)]
    argv += ["-g", "daemon off;"]
    child = stack.start("nginx", argv, cpus=cpus)
    try:
        wait_port(port)
    except TimeoutError:
        raise RuntimeError(f"nginx did not start:\n{child.log_text()}") from None
    return Server("nginx", f"http://{HOST}:{port}", child)


def post(url: str, body: bytes, timeout_s: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def check_ok(url: str, body: bytes = BLOCK_NUMBER) -> bytes:
    """One call; fails loudly unless it is a JSON-RPC result (or an array of them)."""
    status, out = post(url, body)
    doc = json.loads(out)
    items = doc if isinstance(doc, list) else [doc]
    if status != 200 or not items or any("result" not in i for i in items):
        raise RuntimeError(f"{url}: unexpected answer {status} {out[:300]!r}")
    return out


def metrics(server: Server) -> dict[str, float]:
    """The router's Prometheus samples, ``name{labels}`` -> value (one worker's view)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[key] = float(value)
    return out


def metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, v in samples.items():
        named = key == name or key.startswith(name + "{")
        if named and all(f'{k}="{val}"' in key for k, val in labels.items()):
            total += v
    return total


def request_outcomes(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """lasso_requests_total by status between two scrapes."""
    out: dict[str, int] = {}
    for key, v in after.items():
        if key.startswith("lasso_requests_total{"):
            m = re.search(r'status="([^"]*)"', key)
            status = m.group(1) if m else "?"
            out[status] = out.get(status, 0) + int(v - before.get(key, 0.0))
    return {k: v for k, v in out.items() if v}


# -- wrk -----------------------------------------------------------------------------------

_WRK_LUA = """wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
done = function(s, lat, req)
  io.write(string.format(
    "JSON {\\"rps\\":%%.1f,\\"requests\\":%%d,\\"bytes\\":%%d,\\"duration_s\\":%%.3f,"
    .. "\\"p50_ms\\":%%.3f,\\"p90_ms\\":%%.3f,\\"p99_ms\\":%%.3f,\\"max_ms\\":%%.3f,\\"mean_ms\\":%%.3f,"
    .. "\\"errors\\":%%d,\\"non2xx\\":%%d}\\n",
    s.requests/(s.duration/1e6), s.requests, s.bytes, s.duration/1e6,
    lat:percentile(50)/1000, lat:percentile(90)/1000, lat:percentile(99)/1000,
    lat.max/1000, lat.mean/1000,
    s.errors.connect+s.errors.read+s.errors.write+s.errors.timeout, s.errors.status))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    requests: int
    bytes: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: int
    non2xx: int
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> % of one core
    gc: dict[str, Any] = field(default_factory=dict)  # instrumented router: GC during the run

    @property
    def gc_note(self) -> str:
        if not self.gc:
            return ""
        g = self.gc
        return (
            f"GC {100 * g['share']:.0f}% of router CPU ({g['collections'][2]} full, "
            f"{g['collections'][1]} gen1, {g['collections'][0]} gen0; {g['objects']:,} objects)"
        )

    @property
    def other_cpu(self) -> float:
        """CPU % used outside the watched processes and wrk: kernel softirq + foreign load."""
        return self.cpu.get("other", 0.0)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.duration_s / 1e6


def wrk_script(stack: Stack, body: bytes) -> Path:
    path = stack.tmp / f"wrk-{abs(hash(body)) % 10**8}.lua"
    if not path.exists():
        path.write_text(_WRK_LUA % body.decode())
    return path


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


def run_wrk(
    stack: Stack,
    url: str,
    body: bytes,
    *,
    conns: int,
    seconds: float,
    warmup_s: float = 2.0,
    cpus: str | None = AUX_CPU,
    watch: Mapping[str, Server | Pids] | None = None,
    repeat: int = 1,
    noise_retries: int = 2,
    gc_of: Server | None = None,
) -> WrkResult:
    """wrk -t1 after a warm-up at the same concurrency; ``watch`` gets CPU % per server.

    With ``repeat`` > 1 the cell is measured that many times and the run with the median req/s
    is returned (the VM is noisy: ±15-25 % between runs). A run during which processes outside
    the benchmark took more than ``NOISE_LIMIT`` % of a core is measured again (at most
    ``noise_retries`` times; the quietest run is kept).
    """
    require("wrk")
    script = wrk_script(stack, body)
    argv = ["wrk", "-t1", f"-c{conns}", "--latency", "--timeout", "10s", "-s", str(script), url]
    if warmup_s > 0:
        warm = [argv[0], f"-d{max(warmup_s, 1):.0f}s", *argv[1:]]
        stack.run(warm, cpus=cpus, timeout_s=warmup_s + 30)
    runs = []
    for _ in range(max(repeat, 1)):
        r = _wrk_once(stack, argv, seconds, cpus, watch, gc_of)
        for _retry in range(noise_retries):
            if r.other_cpu <= NOISE_LIMIT:
                break
            print(
                f"    (other load {r.other_cpu:.0f}% of a core during the cell: measuring again)",
                file=sys.stderr,
                flush=True,
            )
            again = _wrk_once(stack, argv, seconds, cpus, watch, gc_of)
            r = again if again.other_cpu < r.other_cpu else r
        runs.append(r)
    runs.sort(key=lambda r: r.rps)
    return runs[len(runs) // 2]


def _wrk_once(
    stack: Stack,
    argv: list[str],
    seconds: float,
    cpus: str | None,
    watch: Mapping[str, Server | Pids] | None,
    gc_of: Server | None = None,
) -> WrkResult:
    gc0 = router_stats(gc_of) if gc_of is not None else None
    procs = {name: s.processes() for name, s in (watch or {}).items()}
    cpu0 = {name: cpu_seconds(ps) for name, ps in procs.items()}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = machine_busy_s()
    t0 = time.monotonic()
    out = stack.run([argv[0], f"-d{seconds:.0f}s", *argv[1:]], cpus=cpus, timeout_s=seconds + 60)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {n: 100 * (cpu_seconds(ps) - cpu0[n]) / wall for n, ps in procs.items()}
    cpu["wrk"] = 100 * (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
    machine = 100 * (machine_busy_s() - busy0) / wall
    cpu["other"] = max(machine - sum(cpu.values()), 0.0)
    gc: dict[str, Any] = {}
    if gc_of is not None and gc0 is not None:
        gc1 = router_stats(gc_of)
        cpu_s = gc1["cpu_s"] - gc0["cpu_s"]
        gc = {
            "gc_s": gc1["gc_s"] - gc0["gc_s"],
            "cpu_s": cpu_s,
            "share": (gc1["gc_s"] - gc0["gc_s"]) / cpu_s if cpu_s > 0 else 0.0,
            "collections": [
                b - a for a, b in zip(gc0["collections"], gc1["collections"], strict=True)
            ],
            "objects": gc1["objects"],
        }
    m = re.search(r"^JSON (\{.*\})$", out, re.M)
    if m is None:
        raise RuntimeError(f"no JSON line in wrk output:\n{out}")
    return WrkResult(**json.loads(m.group(1)), cpu=cpu, gc=gc)


# -- profiling -----------------------------------------------------------------------------


def py_spy_exe() -> str | None:
    local = Path(PYTHON).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_py_spy(stack: Stack, pid: int, seconds: float, rate: int = 250) -> tuple[Child, Path]:
    """``py-spy record --nonblocking --format raw`` on ``pid`` (collapsed stacks)."""
    exe = py_spy_exe()
    if exe is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install -c constraints.txt -e '.[bench]'")
    out = stack.tmp / f"py-spy-{pid}.txt"
    argv = [exe, "record", "--pid", str(pid), "--duration", f"{seconds:.0f}", "--rate", str(rate)]
    # Blocking sampling (the default) pauses the target for each sample: ~2 % overhead at
    # 250 Hz, but --nonblocking produced impossible stacks here.
    argv += ["--format", "raw", "-o", str(out)]
    return stack.start(f"py-spy-{pid}", argv, cpus=AUX_CPU), out


_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        i = path.rfind(marker)
        if i >= 0:
            return path[i + len(marker) :]
    return path


def _component(path: str) -> str:
    """What a frame belongs to: a lasso_rpc module, a third-party package or a stdlib module."""
    p = _short(path)
    if p.startswith("lasso_rpc/"):
        return p.removesuffix(".py")
    return p.split("/", 1)[0].removesuffix(".py")


def hot_spots(path: Path) -> tuple[int, list[tuple[str, int, int]], list[tuple[str, int]]]:
    """(samples, [(function, self, inclusive)], [(component, self)]) from collapsed stacks."""
    self_count: dict[str, int] = {}
    incl: dict[str, int] = {}
    comp: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack_text, _, n_text = line.rpartition(" ")
        if not stack_text:
            continue
        n = int(n_text)
        total += n
        names = []
        for frame in stack_text.split(";"):
            m = _FRAME.match(frame)
            names.append((f"{_short(m['file'])}:{m['fn']}", m["file"]) if m else (frame, frame))
        for name in {nm for nm, _ in names}:
            incl[name] = incl.get(name, 0) + n
        leaf, leaf_file = names[-1]
        self_count[leaf] = self_count.get(leaf, 0) + n
        c = _component(leaf_file)
        comp[c] = comp.get(c, 0) + n
    funcs = sorted(((f, self_count.get(f, 0), incl[f]) for f in incl), key=lambda r: -r[1])
    return total, funcs, sorted(comp.items(), key=lambda r: -r[1])


def print_hot_spots(path: Path, top: int = 25) -> None:
    total, funcs, comps = hot_spots(path)
    if not total:
        print("(no samples)")
        return
    print(
        f"\npy-spy: {total} samples (idle excluded). Coroutine stacks start at the task's"
        " coroutine (Task.__step is C); asyncio/runners.py:Runner.run self time = uvloop C code"
        " and syscalls not attributed to a Python frame."
    )
    rows = [(f, f"{100 * s / total:.1f}%", f"{100 * i / total:.1f}%") for f, s, i in funcs[:top]]
    print(table(["function (self-time order)", "self", "inclusive"], rows))
    mine = [r for r in funcs if r[0].startswith("lasso_rpc/")]
    mine.sort(key=lambda r: -r[2])
    rows = [(f, f"{100 * s / total:.1f}%", f"{100 * i / total:.1f}%") for f, s, i in mine[:top]]
    print(table(["lasso_rpc function (inclusive order)", "self", "inclusive"], rows))
    shares = [(c, f"{100 * n / total:.1f}%") for c, n in comps[:top]]
    print(table(["component (self time)", "share"], shares))


# -- output --------------------------------------------------------------------------------


def fmt(v: object, digits: int = 3) -> str:
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


_NUMERIC = re.compile(r"[-+]?[0-9][0-9.,]*\s?(%|x|µs|ms|MB|MB/s|MB/min|s)?|—|")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """A Markdown table (right-aligned numbers) that pastes straight into docs/performance.md."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    numeric = [all(_NUMERIC.fullmatch(r[i]) for r in cells) for i in range(len(headers))]

    def line(vals: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                v.rjust(w) if num else v.ljust(w)
                for v, w, num in zip(vals, widths, numeric, strict=True)
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2))
            for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    out = [f"\n{title}\n" if title else "", line(headers), sep, *(line(r) for r in cells)]
    return "\n".join(out)


def delta_us(a_ms: float, b_ms: float) -> str:
    d = 1000 * (a_ms - b_ms)
    return f"+{d:,.0f} µs" if d >= 0 else f"-{-d:,.0f} µs"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "—"


def cpu_note(result: WrkResult) -> str:
    return ", ".join(f"{k} {v:.0f}%" for k, v in result.cpu.items())


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def common_args(parser: argparse.ArgumentParser, seconds: float = 10.0) -> None:
    parser.add_argument("--seconds", type=float, default=seconds, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell")
    parser.add_argument("--quick", action="store_true", help="3 s cells, 1 s warm-up (a smoke run)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is kept")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")


def apply_quick(args: argparse.Namespace) -> None:
    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0


def header(title: str, args: argparse.Namespace | None = None) -> None:
    print(f"# {title}")
    print(f"machine: {machine_info()}")
    layout = (
        f"pinning: server under test on core {SUT_CPU}; upstream + wrk + bench on core {AUX_CPU}"
        if pinning_available()
        else "pinning: unavailable (fewer than 2 cores or no taskset): numbers are indicative only"
    )
    print(layout)
    if args is not None and hasattr(args, "seconds"):
        print(f"cells: {args.seconds:g} s measured after {args.warmup:g} s warm-up, wrk -t1")
    sys.stdout.flush()


@contextlib.contextmanager
def interrupt_exit() -> Iterator[None]:
    """Ctrl-C: children are already stopped by ``Stack``; exit 130 without a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None


# -- helper servers (run as a program) ------------------------------------------------------

_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.)*"|[^,}\]\s]+)')
_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_500_HEAD = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n"
)


def big_logs_result(target_bytes: int = 1_000_000) -> bytes:
    """An eth_getLogs-like result of about ``target_bytes`` (ERC-20 Transfer logs)."""
    logs = []
    size = 2
    i = 0
    while size < target_bytes:
        log = {
            "address": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
            "topics": [
                "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
                "0x000000000000000000000000" + f"{i * 7919:040x}"[-40:],
                "0x000000000000000000000000" + f"{i * 104729:040x}"[-40:],
            ],
            "data": "0x" + f"{i * 1_000_003:064x}",
            "blockNumber": hex(0x112A880 + i // 40),
            "transactionHash": "0x" + f"{i * 2_654_435_761:064x}"[-64:],
            "transactionIndex": hex(i % 200),
            "blockHash": "0x" + f"{(i // 40) * 40_503:064x}"[-64:],
            "logIndex": hex(i % 400),
            "removed": False,
        }
        text = json.dumps(log, separators=(",", ":"))
        logs.append(text)
        size += len(text) + 1
        i += 1
    return ("[" + ",".join(logs) + "]").encode()


class _Upstream(asyncio.Protocol):
    """JSON-RPC echo: ``{"jsonrpc":"2.0","id":<id>,"result":"0x1234"}`` per call, keep-alive."""

    def __init__(self, mode: str, big: bytes) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._error = httptools.HttpParserError
        self._mode = mode
        self._big = big
        self._body: list[bytes] = []
        self._t: Any = None

    def connection_made(self, transport: Any) -> None:
        self._t = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._error:
            self._t.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        chunks = self._body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        t = self._t
        if self._mode == "fail500":
            m = _ID.search(body)
            out = (
                b'{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"upstream failure"}}'
                % (m.group(1) if m else b"null")
            )
            t.write(_500_HEAD % len(out) + out)
        elif self._mode == "big" and b"eth_getLogs" in body:
            m = _ID.search(body)
            pre = b'{"jsonrpc":"2.0","id":%s,"result":' % (m.group(1) if m else b"null")
            n = len(pre) + len(self._big) + 1
            t.writelines([_OK_HEAD % n, pre, self._big, b"}"])  # no 1 MB concatenation here
        elif body[:1] == b"[":
            out = (
                b"["
                + b",".join(
                    b'{"jsonrpc":"2.0","id":%s,"result":"0x1234"}' % i for i in _ID.findall(body)
                )
                + b"]"
            )
            t.write(_OK_HEAD % len(out) + out)
        else:
            m = _ID.search(body)
            out = b'{"jsonrpc":"2.0","id":%s,"result":"0x1234"}' % (m.group(1) if m else b"null")
            t.write(_OK_HEAD % len(out) + out)
        if not self._parser.should_keep_alive():
            t.close()


def _serve_upstream(mode: str) -> None:
    import uvloop

    big = big_logs_result() if mode == "big" else b""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Upstream(mode, big), HOST, 0, backlog=4096)
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


def _serve_aiohttp_echo() -> None:
    """The bare aiohttp.web server issue 2 compares with: parse (orjson), answer the id."""
    import orjson
    import uvloop
    from aiohttp import web

    async def rpc(request: web.Request) -> web.Response:
        msg = orjson.loads(await request.read())
        out = orjson.dumps({"jsonrpc": "2.0", "id": msg.get("id"), "result": "0x1234"})
        return web.Response(body=out, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", rpc)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"listening {port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


def _instrumented_router(gc_mode: str, trace_malloc: bool, cli_args: list[str]) -> None:
    """``lasso-rpc CLI_ARGS`` with GC accounting (and optionally tracemalloc) in the process.

    SIGUSR1 prints ``STATS {json}``: GC seconds and collections per generation so far, live
    objects, and with tracemalloc the current and peak traced bytes (the peak is then reset).
    ``gc_mode`` is ``default``, ``off`` or ``T0,T1,T2`` for ``gc.set_threshold``.
    """
    import gc
    import tracemalloc

    gc_s = [0.0, 0.0]  # accumulated, start of the running collection
    counts = [0, 0, 0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_s[1] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - gc_s[1]
            counts[info["generation"]] += 1

    def dump(_signum: int, _frame: FrameType | None) -> None:
        out: dict[str, Any] = {
            "gc_s": round(gc_s[0], 4),
            "collections": counts,
            "cpu_s": round(time.process_time(), 3),
            "objects": len(gc.get_objects()),
        }
        if tracemalloc.is_tracing():
            out["current"], out["peak"] = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
        print("STATS " + json.dumps(out), file=sys.stderr, flush=True)

    gc.callbacks.append(on_gc)
    if gc_mode == "off":
        gc.disable()
    elif gc_mode != "default":
        t0, t1, t2 = (int(x) for x in gc_mode.split(","))
        gc.set_threshold(t0, t1, t2)
    if trace_malloc:
        tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, dump)
    from lasso_rpc.cli import main as cli_main

    sys.argv = ["lasso-rpc", *cli_args]
    cli_main()


def router_stats(server: Server, timeout_s: float = 5.0) -> dict[str, Any]:
    """Asks a router started with ``instrumented=...`` for its ``STATS`` line (SIGUSR1)."""
    child = server.child
    before = len(re.findall(r"^STATS ", child.log_text(), re.M))
    os.kill(child.pid, signal.SIGUSR1)
    found = child.wait_for(r"(?m)^STATS (\{.*\})$", count=before + 1, timeout_s=timeout_s)
    return dict(json.loads(found[-1].group(1)))


def main() -> None:
    parser = argparse.ArgumentParser(description="bench helper servers")
    sub = parser.add_subparsers(dest="what", required=True)
    up = sub.add_parser("upstream", help="raw asyncio.Protocol + httptools JSON-RPC echo")
    up.add_argument("--mode", choices=["echo", "big", "fail500"], default="echo")
    sub.add_parser("aiohttp-echo", help="bare aiohttp.web JSON-RPC echo")
    rt = sub.add_parser("router", help="lasso-rpc with GC/tracemalloc accounting (SIGUSR1)")
    rt.add_argument("--gc", default="default", help="default | off | T0,T1,T2")
    rt.add_argument("--tracemalloc", action="store_true")
    args, rest = parser.parse_known_args()
    if args.what == "upstream":
        _serve_upstream(args.mode)
    elif args.what == "router":
        _instrumented_router(args.gc, args.tracemalloc, rest)
    else:
        _serve_aiohttp_echo()


if __name__ == "__main__":
    main()
