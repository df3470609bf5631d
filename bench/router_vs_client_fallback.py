"""The built-in ``router-vs-client-fallback`` battle: one run, the router and client-side
fallback side by side under a provider kill (issue 15).

Three mock providers (50/100/150 ms), 20 req/s of eth_blockNumber for 30 s, the fastest killed
at 10 s; the same schedule and the same kill for each contender: the router (fastest, then
load-balanced), the fastest provider straight (a hard-coded URL), viem's ``fallback`` and
ethers v6 ``FallbackProvider`` (default quorum) in the Node sidecar. Writes the reports
(``--out``; the HTML shows every contender's success rate and p95 over time) and checks the
targets of the issue, each MET or MISSED; the exit status is 1 when one was missed.

    .venv/bin/python bench/router_vs_client_fallback.py [--scale 1.0] [--out battle_results]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from lasso_rpc.battle import Scenario
from lasso_rpc.battle.catalogue import builtin_scenarios
from lib.targets import Targets


async def run(scale: float, out: str) -> int:
    sc = Scenario.from_yaml(builtin_scenarios()["router-vs-client-fallback"])
    if scale != 1.0:
        sc = sc.scaled(scale)
    result = await sc.run()
    paths = result.write_reports(out)
    d = result.data
    by_label = {c["label"]: c for c in d["contenders"]}
    print(f"{d['scenario']['name']}: {len(by_label)} contenders, {sc.load_s:g} s each")
    print(f"{'contender':<28} {'requests':>8} {'success':>9} {'p50 ms':>8} {'p95 ms':>8}"
          f" {'calls/req':>9}  top error")  # fmt: skip
    for label, c in by_label.items():
        s, lat = c["summary"], c["summary"]["latency_ms"]
        errors = sorted((c["errors_by_class"] or {}).items(), key=lambda kv: -kv[1])
        top = f"{errors[0][0]} x{errors[0][1]}" if errors else "-"
        per = (c.get("upstream") or {}).get("calls_per_request")
        print(
            f"{label:<28} {s['requests']:>8} {s['success_rate'] * 100:>8.1f}% {lat['p50']:>8.1f}"
            f" {lat['p95']:>8.1f} {per if per is not None else '-':>9}  {top}"
        )
    router = by_label["router (fastest)"]["summary"]["success_rate"]
    ethers = by_label["ethers FallbackProvider"]["summary"]["success_rate"]
    targets = Targets()
    targets.check("router (fastest) succeeds for every request under the kill", f"{router:.2%}",
                  router >= 1.0)  # fmt: skip
    targets.check("ethers FallbackProvider (default quorum) below 80 % (issue 15)",
                  f"{ethers:.2%}", ethers < 0.80)  # fmt: skip
    reasons = (d.get("validity") or {}).get("reasons") or []
    targets.check("the run is valid (ground truth complete, generator on time)",
                  "; ".join(reasons) or "valid", not reasons)  # fmt: skip
    print(f"\nreport: {paths.html}")
    return targets.report()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every time")
    parser.add_argument("--out", default="battle_results", help="report directory")
    args = parser.parse_args()
    logging.getLogger("lasso_rpc").setLevel(logging.ERROR)
    return asyncio.run(run(args.scale, args.out))


if __name__ == "__main__":
    sys.exit(main())
