"""The JUnit XML report: one testsuite for the scenario, one testcase per SLO (for CI)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from lasso_rpc.battle.report.schema import Result, validate_result

__all__ = ["render_junit"]

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(v: Any) -> str:
    return _XML_BAD.sub("?", str(v))


def render_junit(d: Result) -> str:
    """JUnit XML: one testsuite for the scenario, one testcase per SLO (a failure when violated)."""
    validate_result(d)
    name = _x(d["scenario"]["name"])
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "scenario"
    cases: list[tuple[str, str | None]] = [
        (f"{x['key']} {x['op']} {x['target']}", None if x["passed"] else _x(x.get("message", "")))
        for x in d["slos"]
    ]
    reasons = (d.get("validity") or {}).get("reasons") or []
    if reasons:
        cases.append(
            ("valid run (ground truth complete, generator on time)", _x("; ".join(reasons)))
        )
    if not d["passed"] and all(msg is None for _, msg in cases):
        cases.append(("verdict", "the scenario failed without a violated SLO"))
    elif not cases:
        cases.append(("verdict", None))
    failures = sum(msg is not None for _, msg in cases)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0"}
    time_s = f"{float(d['duration_s']):.3f}"
    root = ET.Element("testsuites", {"name": "lasso-rpc battle", **counts, "time": time_s})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": name, **counts, "time": time_s, "timestamp": _x(d["started_at"])},
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (("id", d["id"]), ("seed", d["scenario"].get("seed"))):
        ET.SubElement(props, "property", {"name": key, "value": _x(value)})
    for slo, (case_name, msg) in zip([*d["slos"], None], cases, strict=False):
        case = ET.SubElement(
            suite, "testcase", {"classname": f"battle.{slug}", "name": _x(case_name), "time": "0"}
        )
        if msg is not None:
            fail = ET.SubElement(case, "failure", {"message": msg, "type": "SLOViolation"})
            if slo is not None:
                fail.text = _x(
                    f"{slo['key']}: actual {slo['actual']}, target {slo['op']} {slo['target']}"
                )
    ET.SubElement(suite, "system-out").text = _x(f"report id {d['id']}; passed={d['passed']}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
