"""The instrumented router: ``lasso-rpc`` with GC accounting (and optionally tracemalloc).

    python bench/servers/router.py [--gc default|off|T0,T1,T2] [--tracemalloc] serve ...

SIGUSR1 prints ``STATS {json}`` on stderr (``lib.servers.router_stats`` reads it back).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType
from typing import Any


def _instrumented_router(gc_mode: str, trace_malloc: bool, cli_args: list[str]) -> None:
    """``lasso-rpc CLI_ARGS`` with GC accounting (and optionally tracemalloc) in the process.

    SIGUSR1 prints ``STATS {json}``: GC seconds and collections per generation so far, live
    objects, and with tracemalloc the current and peak traced bytes (the peak is then reset).
    ``gc_mode`` is ``default``, ``off`` or ``T0,T1,T2`` for ``gc.set_threshold``.
    """
    import gc
    import tracemalloc

    gc_s = [0.0, 0.0]  # accumulated, start of the running collection
    counts = [0, 0, 0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_s[1] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - gc_s[1]
            counts[info["generation"]] += 1

    def dump(_signum: int, _frame: FrameType | None) -> None:
        out: dict[str, Any] = {
            "gc_s": round(gc_s[0], 4),
            "collections": counts,
            "cpu_s": round(time.process_time(), 3),
            "objects": len(gc.get_objects()),
        }
        if tracemalloc.is_tracing():
            out["current"], out["peak"] = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
        print("STATS " + json.dumps(out), file=sys.stderr, flush=True)

    gc.callbacks.append(on_gc)
    if gc_mode == "off":
        gc.disable()
    elif gc_mode != "default":
        t0, t1, t2 = (int(x) for x in gc_mode.split(","))
        gc.set_threshold(t0, t1, t2)
    if trace_malloc:
        tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, dump)
    from lasso_rpc.cli import main as cli_main

    sys.argv = ["lasso-rpc", *cli_args]
    cli_main()


def main() -> None:
    parser = argparse.ArgumentParser(description="lasso-rpc with GC/tracemalloc accounting")
    parser.add_argument("--gc", default="default", help="default | off | T0,T1,T2")
    parser.add_argument("--tracemalloc", action="store_true")
    args, rest = parser.parse_known_args()
    _instrumented_router(args.gc, args.tracemalloc, rest)


if __name__ == "__main__":
    main()
