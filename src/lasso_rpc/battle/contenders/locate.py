"""Where node and the sidecar's npm packages are, and the errors when they are not."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from lasso_rpc.errors import LassoError

__all__ = [
    "MODULES_ENV",
    "NODE_ENV",
    "ContenderError",
    "SidecarFailed",
    "SidecarUnavailable",
    "find_node",
    "find_node_modules",
]

NODE_ENV = "LASSO_NODE"
MODULES_ENV = "LASSO_NODE_MODULES"
_REPO_ROOT = Path(__file__).resolve().parents[4]


class ContenderError(LassoError):
    """A contender sidecar could not be started or broke off."""


class SidecarUnavailable(ContenderError):
    """node, or the npm packages the sidecar needs, are not installed."""


class SidecarFailed(ContenderError):
    """The sidecar rejected the spec, crashed, or broke its protocol."""


def find_node(*, env: Mapping[str, str] | None = None) -> str:
    """``$LASSO_NODE``, else ``node`` on PATH."""
    env = os.environ if env is None else env
    explicit = env.get(NODE_ENV)
    found = explicit if explicit and os.access(explicit, os.X_OK) else None
    if found is None and not explicit:
        found = shutil.which("node", path=env.get("PATH", os.defpath))
    if found is None:
        where = f"{NODE_ENV}={explicit!r} is not executable" if explicit else "no node on PATH"
        raise SidecarUnavailable(f"{where}: install Node.js >= 20, then run `make` (npm install)")
    return found


def find_node_modules(
    packages: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    roots: Sequence[Path] | None = None,
) -> Path:
    """The first ``node_modules`` holding every package: ``$LASSO_NODE_MODULES``, else under the
    current directory, else under the repo root (an editable install in a clone)."""
    env = os.environ if env is None else env
    explicit = env.get(MODULES_ENV)
    if explicit:
        candidates = [Path(explicit)]
    else:
        bases = (Path.cwd(), _REPO_ROOT) if roots is None else roots
        candidates = [base / "node_modules" for base in bases]
    for candidate in candidates:
        if all((candidate / p / "package.json").is_file() for p in packages):
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise SidecarUnavailable(
        f"npm packages {', '.join(packages)} not found in {looked}: run `make` "
        f"(or `npm install` at the repo root), or set {MODULES_ENV}"
    )
