"""Profiling a running router: py-spy records collapsed stacks; ``print_hot_spots`` ranks them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from lib.machine import AUX_CPU, PYTHON
from lib.processes import Child, Stack
from lib.tables import table


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
