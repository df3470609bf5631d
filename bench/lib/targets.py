"""Targets a benchmark is held to: each figure with its target and a MET/MISSED verdict.

A script collects its checks in a ``Targets`` and ends with ``return targets.report()`` (or
folds ``targets.exit_code`` into its own): any MISSED target makes it exit non-zero, so a CI
job or a shell loop never takes a missed target for a pass. Every verdict string of the bench
suite comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lib.tables import table

__all__ = ["MET", "MISSED", "Target", "Targets"]

MET, MISSED = "MET", "MISSED"


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # the target as the issue words it, e.g. "router ≥ 9,000 req/s (issue 6)"
    figure: str  # what this run measured
    met: bool

    @property
    def verdict(self) -> str:
        return MET if self.met else MISSED


@dataclass(slots=True)
class Targets:
    title: str = "## Targets"
    checks: list[Target] = field(default_factory=list)

    def check(self, name: str, figure: str, met: bool) -> bool:
        self.checks.append(Target(name, figure, bool(met)))
        return bool(met)

    @property
    def missed(self) -> list[Target]:
        return [t for t in self.checks if not t.met]

    @property
    def exit_code(self) -> int:
        """1 when any target was missed, else 0."""
        return 1 if self.missed else 0

    def render(self) -> str:
        rows = [[t.name, t.figure, t.verdict] for t in self.checks]
        out = table(["target", "this run", "verdict"], rows, self.title)
        n = len(self.missed)
        verdict = f"{n} of {len(self.checks)} targets MISSED" if n else "every target MET"
        return f"{out}\n{verdict}"

    def report(self) -> int:
        """Print the table (when there is any target) and return the exit code."""
        if self.checks:
            print(self.render())
        return self.exit_code
