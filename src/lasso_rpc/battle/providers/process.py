"""Child processes that never outlive us: each in its own process group, killed as a group.

Used by everything that starts a server process (anvil nodes, router nodes, the benchmarks):

- ``group_options(death_signal)``: keyword arguments for ``subprocess.Popen`` and
  ``asyncio.create_subprocess_exec`` that start the child in a new session (its own process
  group, so a router's workers or a wrapper's children go with it) and, on Linux, ask the
  kernel to send it ``death_signal`` when we die, even by SIGKILL (PR_SET_PDEATHSIG);
- ``signal_group`` / ``kill_group``: a signal to the whole group, nothing if it is gone;
- ``track`` / ``untrack``: groups killed by an exit hook if we exit with them still running.

The kernel sends the death signal when the *thread* that started the child ends: start children
from a thread that lives as long as they should (the main one, or the event loop's).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["group_options", "kill_group", "signal_group", "track", "untrack"]

_PR_SET_PDEATHSIG = 1
_live_groups: set[int] = set()  # process-wide, like the processes themselves


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:  # resolved in the parent: the forked child only calls it
        prctl: Callable[..., int] = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _prctl()


def _die_with_parent(death_signal: int) -> Callable[[], None] | None:
    prctl = _PRCTL
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, death_signal)

    return preexec


def group_options(death_signal: signal.Signals = signal.SIGKILL) -> dict[str, Any]:
    """``start_new_session=True`` and, on Linux, a ``preexec_fn`` setting PR_SET_PDEATHSIG.

    SIGTERM lets a child that forwards signals (``lasso-rpc serve --workers N``) stop its own
    children; SIGKILL is for children that need no goodbye (anvil).
    """
    return {"start_new_session": True, "preexec_fn": _die_with_parent(int(death_signal))}


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to every process of the group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_group(pgid: int) -> None:
    """SIGKILL the whole group (whatever is left of it) and stop tracking it."""
    signal_group(pgid, signal.SIGKILL)
    untrack(pgid)


def track(pgid: int) -> None:
    """Kill this group at interpreter exit unless ``untrack``/``kill_group`` came first."""
    _live_groups.add(pgid)


def untrack(pgid: int) -> None:
    _live_groups.discard(pgid)


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_live_groups):
        with contextlib.suppress(Exception):
            kill_group(pgid)
