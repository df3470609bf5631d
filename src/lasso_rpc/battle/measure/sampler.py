"""The router process's RSS and CPU, sampled with psutil (``SystemSample`` values)."""

from __future__ import annotations

from typing import Any

from lasso_rpc.battle.records import SystemSample

__all__ = ["SystemSampler"]


class SystemSampler:
    """Reads one process; the first reading only primes the CPU counter (psutil's rule)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._proc: Any = None

    def __repr__(self) -> str:
        return f"SystemSampler(pid={self.pid}, primed={self._proc is not None})"

    def sample(self, t_s: float) -> SystemSample | None:
        """RSS (MB) and CPU (% of one core since the last sample) at ``t_s``; None when gone."""
        import psutil  # imported on use: only runs that collect "system" need it

        try:
            if self._proc is None:
                self._proc = psutil.Process(self.pid)
                self._proc.cpu_percent(None)
            rss = self._proc.memory_info().rss / (1024 * 1024)
            cpu = float(self._proc.cpu_percent(None))
        except psutil.Error:
            return None
        return SystemSample(t_s, float(rss), cpu)
