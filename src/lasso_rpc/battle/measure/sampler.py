"""The router process's RSS and CPU, sampled with psutil (``SystemSample`` values).

A router with workers (``serve --workers N``) is a process tree: its figures are the sum over
the process and its children."""

from __future__ import annotations

from typing import Any

from lasso_rpc.battle.records import SystemSample

__all__ = ["SystemSampler"]


class SystemSampler:
    """Reads one process; the first reading only primes the CPU counter (psutil's rule)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._proc: Any = None
        self._children: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"SystemSampler(pid={self.pid}, primed={self._proc is not None})"

    def sample(self, t_s: float) -> SystemSample | None:
        """RSS (MB) and CPU (% of one core since the last sample) at ``t_s``; None when gone."""
        import psutil  # imported on use: only runs that collect "system" need it

        try:
            if self._proc is None:
                self._proc = psutil.Process(self.pid)
                self._proc.cpu_percent(None)
            rss = self._proc.memory_info().rss
            cpu = float(self._proc.cpu_percent(None))
            children = self._proc.children(recursive=True)
        except psutil.Error:
            return None
        for child in children:
            known = self._children.get(child.pid)
            try:
                if known is None:
                    known = self._children[child.pid] = child
                    known.cpu_percent(None)  # primes it: counted from the next sample
                else:
                    cpu += float(known.cpu_percent(None))
                rss += known.memory_info().rss
            except psutil.Error:
                self._children.pop(child.pid, None)
        return SystemSample(t_s, float(rss) / (1024 * 1024), cpu)
