"""The property suite's settings: a fixed seed (derandomized), no example database, no deadline;
``LASSO_FUZZ_SCALE`` multiplies every test's example count (default 1: the CI budget)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("LASSO_FUZZ_SCALE", "1"))


def ci(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )
