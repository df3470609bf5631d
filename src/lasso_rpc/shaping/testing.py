"""Test mode: switch reorg safety off to show what it prevents (as ``stamina.set_testing``).

``with reorg_safety(False): ...`` makes every router in this process keep cached unfinalized
answers across reorgs (no eviction, no check of an entry against the reorgs seen since it was
made) until their TTL runs out: the build that the battle's ``max_stale_answers`` SLO must
catch. Never for production use; there is no config key for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["reorg_safety", "reorg_safety_on"]

_on = [True]


def reorg_safety_on() -> bool:
    return _on[0]


@contextlib.contextmanager
def reorg_safety(enabled: bool) -> Iterator[None]:
    before = _on[0]
    _on[0] = enabled
    try:
        yield
    finally:
        _on[0] = before
