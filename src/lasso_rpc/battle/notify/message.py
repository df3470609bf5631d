"""What a notification says, from the result JSON alone: a generic JSON payload, a Slack one
(incoming-webhook ``text`` + ``blocks``) and an e-mail (subject + plain text)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lasso_rpc.battle.notify.config import Trigger
from lasso_rpc.observability.redact import redact

__all__ = ["email_message", "json_payload", "slack_payload", "triggers_of"]

Result = Mapping[str, Any]


def triggers_of(result: Result) -> list[Trigger]:
    """Why this result is worth a message: a failed (or invalid) run, a regression."""
    out: list[Trigger] = []
    if not result.get("passed", False):
        out.append("violation")
    if (result.get("comparison") or {}).get("regressed"):
        out.append("regression")
    return out


def _violations(result: Result) -> list[str]:
    return [str(v.get("message", v.get("key"))) for v in result.get("slos", []) if not v["passed"]]


def _invalid(result: Result) -> list[str]:
    return list((result.get("validity") or {}).get("reasons") or [])


def _regressions(result: Result) -> list[dict[str, Any]]:
    rows = (result.get("comparison") or {}).get("rows") or []
    return [r for r in rows if r.get("regressed")]


def _headline(result: Result, triggers: list[Trigger]) -> str:
    name = result["scenario"]["name"]
    parts = []
    if "violation" in triggers:
        n = len(_violations(result))
        bad = "INVALID" if _invalid(result) else "FAILED"
        parts.append(f"{bad} ({n} SLO violation{'s' * (n != 1)})" if n else bad)
    if "regression" in triggers:
        n = len(_regressions(result))
        parts.append(f"REGRESSED ({n} metric{'s' * (n != 1)})")
    return f"battle {name}: {', '.join(parts) or 'OK'}"


def _facts(result: Result) -> str:
    s = result["summary"]
    lat = s.get("latency_ms") or {}
    return (
        f"requests {s.get('requests')}, success {s.get('success_rate', 0) * 100:.3f} %, "
        f"p95 {lat.get('p95', 0):.1f} ms, failovers {s.get('failovers')}"
    )


def _lines(result: Result) -> list[str]:
    lines = [f"- {m}" for m in _violations(result)]
    lines += [f"- invalid: {r}" for r in _invalid(result)]
    for r in _regressions(result):
        lines.append(
            f"- regressed: {r.get('metric')} {r.get('baseline')} -> {r.get('new')} "
            f"(limit {r.get('limit')})"
        )
    return lines


def json_payload(result: Result, triggers: list[Trigger]) -> dict[str, Any]:
    """The generic JSON body: everything a receiver needs to act, nothing it has to parse."""
    comparison = result.get("comparison") or {}
    return {
        "event": "battle." + "+".join(triggers),
        "text": redact(_headline(result, triggers)),
        "scenario": result["scenario"]["name"],
        "id": result["id"],
        "started_at": result.get("started_at"),
        "passed": result["passed"],
        "valid": (result.get("validity") or {}).get("valid", True),
        "violations": [redact(m) for m in _violations(result)],
        "invalid_reasons": [redact(m) for m in _invalid(result)],
        "baseline_id": comparison.get("baseline_id"),
        "regressions": _regressions(result),
        "summary": {
            k: result["summary"].get(k)
            for k in ("requests", "success_rate", "errors", "failovers", "throughput_rps")
        }
        | {"latency_ms": result["summary"].get("latency_ms")},
    }


def slack_payload(result: Result, triggers: list[Trigger]) -> dict[str, Any]:
    """A Slack incoming-webhook body (``text`` is the fallback shown in notifications)."""
    headline = redact(_headline(result, triggers))
    detail = "\n".join(_lines(result)) or "(no detail)"
    return {
        "text": headline,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": redact(f"*{_facts(result)}*\n{detail}")[:2900]},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"report `{result['id']}`"}],
            },
        ],
    }


def email_message(result: Result, triggers: list[Trigger]) -> tuple[str, str]:
    """(subject, plain-text body)."""
    subject = "[lasso-rpc] " + redact(_headline(result, triggers))
    body = [
        redact(_headline(result, triggers)),
        "",
        f"run {result['id']}, started {result.get('started_at')}",
        _facts(result),
        "",
        *(redact(line) for line in _lines(result)),
        "",
        f"The full report is {result['id']}.html next to {result['id']}.json.",
    ]
    return subject, "\n".join(body) + "\n"
