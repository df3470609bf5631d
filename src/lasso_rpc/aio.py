"""Running a coroutine from synchronous code (the CLI, ``Scenario.run_sync``): on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_coro"]

T = TypeVar("T")


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """``uvloop.run(coro)`` (``asyncio.run`` where uvloop is missing); the coroutine's result."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept for odd platforms
        return asyncio.run(coro)
    return uvloop.run(coro)
