"""The built-in scenarios: the YAML files of ``examples/scenarios`` (SPEC §6), by name."""

from __future__ import annotations

from pathlib import Path

from lasso_rpc.errors import LassoError

__all__ = ["UnknownScenario", "builtin_scenarios", "find_scenario"]


class UnknownScenario(LassoError):
    """Neither a scenario file nor the name of a built-in scenario."""


def _scenario_dirs() -> list[Path]:
    here = Path(__file__).resolve()
    dirs = [Path.cwd() / "examples" / "scenarios"]
    dirs += [p / "examples" / "scenarios" for p in here.parents[:4]]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def builtin_scenarios() -> dict[str, Path]:
    """Name (the file stem, ``_`` written ``-``) → file; the working directory's come first."""
    out: dict[str, Path] = {}
    for d in _scenario_dirs():
        for f in sorted(d.glob("*.yaml")):
            out.setdefault(f.stem.replace("_", "-"), f)
    return out


def find_scenario(name_or_path: str) -> Path:
    """A scenario file, or the file of the built-in scenario so named (``UnknownScenario``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    found = builtin_scenarios().get(name_or_path.replace("_", "-"))
    if found is None:
        raise UnknownScenario(
            f"{name_or_path}: no such file or built-in scenario (see `battle list`)"
        )
    return found
