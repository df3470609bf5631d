"""Command-line flags every wrk-based script shares, and the header each one prints."""

from __future__ import annotations

import argparse
import sys

from lib.machine import AUX_CPU, SUT_CPU, machine_info, pinning_available


def common_args(parser: argparse.ArgumentParser, seconds: float = 10.0) -> None:
    parser.add_argument("--seconds", type=float, default=seconds, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell")
    parser.add_argument("--quick", action="store_true", help="3 s cells, 1 s warm-up (a smoke run)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is kept")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")


def apply_quick(args: argparse.Namespace) -> None:
    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0


def header(title: str, args: argparse.Namespace | None = None) -> None:
    print(f"# {title}")
    print(f"machine: {machine_info()}")
    layout = (
        f"pinning: server under test on core {SUT_CPU}; upstream + wrk + bench on core {AUX_CPU}"
        if pinning_available()
        else "pinning: unavailable (fewer than 2 cores or no taskset): numbers are indicative only"
    )
    print(layout)
    if args is not None and hasattr(args, "seconds"):
        print(f"cells: {args.seconds:g} s measured after {args.warmup:g} s warm-up, wrk -t1")
    sys.stdout.flush()
