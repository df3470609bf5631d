#!/usr/bin/env python
"""Coverage-guided fuzzing of the front's head parser and guard against aiohttp's parser.

python fuzz/atheris_head.py fuzz/corpus/heads -max_total_time=600
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["lasso_rpc", "fuzz"]):
    from fuzz.targets import check_head_parser


def test_one_input(data: bytes) -> None:
    check_head_parser(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
