"""The layout keeps its shape: no import cycle in src/, no module past the size limit.

The import graph is read from the AST, so an import under ``TYPE_CHECKING`` or inside a
function counts like any other: deferring an import hides a cycle from the interpreter, not
from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 450


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> modules of ``root`` it imports (``from pkg import x``: ``pkg.x`` when that is a
    module, else ``pkg`` itself, whose ``__init__`` runs)."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, is_pkg) in mods.items():
        package = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base_parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                elif node.module is not None:
                    base = node.module
                else:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in mods:
                        graph[name].add(sub)
                    elif base in mods:
                        graph[name].add(base)
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp: list[str] = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_no_import_cycle_in_src() -> None:
    found = cycles(import_graph(SRC))
    assert found == [], "import cycles (AST, TYPE_CHECKING and function imports included):\n" + (
        "\n".join(" <-> ".join(c) for c in found)
    )


def test_no_module_over_the_size_limit() -> None:
    over = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert over == {}, f"modules over {MAX_LINES} lines: {over}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("a_text", "expect"),
    [
        ("from pkg.b import B\n", [["pkg.a", "pkg.b"]]),
        (  # hidden under TYPE_CHECKING: still a cycle
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
            [["pkg.a", "pkg.b"]],
        ),
        ("def f():\n    from . import b\n", [["pkg.a", "pkg.b"]]),  # in a function, relative
        ("import json\n", []),
    ],
)
def test_the_checker_sees_hidden_cycles(
    tmp_path: Path, a_text: str, expect: list[list[str]]
) -> None:
    root = _write(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/a.py": a_text, "pkg/b.py": "from pkg.a import A\n"},
    )
    assert cycles(import_graph(root)) == expect


def test_a_package_init_counts_as_a_module(tmp_path: Path) -> None:
    # pkg/__init__ re-exports from pkg.a, and pkg.a imports a name from pkg: a cycle.
    root = _write(
        tmp_path,
        {"pkg/__init__.py": "from pkg.a import A\n", "pkg/a.py": "from pkg import helper\n"},
    )
    assert cycles(import_graph(root)) == [["pkg", "pkg.a"]]
