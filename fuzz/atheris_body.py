#!/usr/bin/env python
"""Coverage-guided fuzzing of the request codec with atheris (pip install -e '.[fuzz]').

    python fuzz/atheris_body.py fuzz/corpus/bodies -max_total_time=600

New inputs that reach new code are written into the first corpus directory; commit the ones
worth keeping. A crash or a broken invariant stops the run and writes ``crash-*`` here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["lasso_rpc", "fuzz"]):
    from fuzz.targets import check_codec


def test_one_input(data: bytes) -> None:
    check_codec(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
