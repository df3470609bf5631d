"""What a battle run hands back: the result JSON (schema ``lasso-rpc.battle/2``) and its id."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lasso_rpc.battle.report.files import ReportPaths, write_reports

__all__ = ["BattleResult", "new_run_id"]


@dataclass(frozen=True, slots=True)
class BattleResult:
    """The outcome of a run; ``data`` is the JSON report (schema ``lasso-rpc.battle/2``)."""

    data: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.data["passed"])

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def violations(self) -> list[str]:
        """Violated SLOs, then every reason the run is invalid."""
        reasons = (self.data.get("validity") or {}).get("reasons") or []
        return [v["message"] for v in self.data["slos"] if not v["passed"]] + [
            f"invalid run: {r}" for r in reasons
        ]

    @property
    def summary(self) -> str:
        s = self.data["summary"]
        lat = s["latency_ms"]
        lines = [
            f"{self.data['scenario']['name']}: {'PASSED' if self.passed else 'FAILED'}",
            f"  requests {s['requests']}, success {s['success_rate']:.4%}, "
            f"p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms, "
            f"failovers {s['failovers']}",
        ]
        lines += [f"  {'ok ' if v['passed'] else 'FAIL'} {v['message']}" for v in self.data["slos"]]
        lines += [f"  INVALID {r}" for r in (self.data.get("validity") or {}).get("reasons", [])]
        for c in self.data.get("contenders") or []:
            cs = c["summary"]
            lines.append(
                f"  contender {c['label']}: success {cs['success_rate']:.2%}, "
                f"p95 {cs['latency_ms']['p95']:.1f} ms, {'pass' if c['passed'] else 'FAIL'}"
            )
        return "\n".join(lines)

    def write_reports(self, out_dir: str | Path) -> ReportPaths:
        return write_reports(self.data, Path(out_dir))


def new_run_id(slug: str) -> tuple[str, str]:
    """A file-safe run id (``<slug>-<UTC time>-<4 hex>``) and the start time in ISO form."""
    now = datetime.now(UTC)
    return f"{slug}-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}", now.isoformat()
