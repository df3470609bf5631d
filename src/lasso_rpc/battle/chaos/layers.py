"""Layered knobs and faults: overlapping chaos actions on one provider compose.

Each action's change is a layer over the knobs (a MockProvider's ``Knobs``, a FaultProxy's
``Faults``) the provider had before the first one; a revert removes only its own layer, and the
last one restores the original knobs exactly. Kills nest the same way: a mock stopped by two
overlapping actions restarts when the second one ends. The layers belong to one ``ChaosLayers``,
owned by the chaos context running the actions (no state is shared between contexts).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lasso_rpc.battle.providers.faultproxy import FaultProxy
from lasso_rpc.battle.providers.mock import MockProvider

__all__ = ["ChaosLayers", "Revert"]

Revert = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Stack:
    base: Any  # Knobs or Faults before the first layer
    layers: dict[int, dict[str, Any]] = field(default_factory=dict)

    def effective(self) -> Any:
        merged: dict[str, Any] = {}
        for changes in self.layers.values():
            merged.update(changes)
        return self.base.with_changes(**merged)


class ChaosLayers:
    """The layers of every provider one context's actions touched, and its stopped mocks."""

    def __init__(self) -> None:
        self._stacks: weakref.WeakKeyDictionary[Any, _Stack] = weakref.WeakKeyDictionary()
        self._down: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()
        self._tokens = itertools.count(1)

    def __repr__(self) -> str:
        return f"ChaosLayers(layered={len(self._stacks)}, stopped={len(self._down)})"

    def overlay(self, target: MockProvider | FaultProxy, changes: Mapping[str, Any]) -> Revert:
        """Apply ``changes`` as a layer of ``target``'s knobs (or faults); the revert removes it."""
        if isinstance(target, FaultProxy):
            get: Callable[[], Any] = lambda: target.faults  # noqa: E731
            put: Callable[[Any], Any] = target.set_faults
        else:
            get, put = (lambda: target.knobs), target.set_knobs
        stack = self._stacks.get(target)
        if stack is None:
            stack = self._stacks[target] = _Stack(get())
        token = next(self._tokens)
        stack.layers[token] = dict(changes)
        try:
            put(stack.effective())
        except BaseException:
            del stack.layers[token]
            raise

        async def revert() -> None:
            stack.layers.pop(token, None)
            if stack.layers:
                put(stack.effective())
            else:
                if self._stacks.get(target) is stack:
                    del self._stacks[target]
                put(stack.base)

        return revert

    async def stop(self, mock: MockProvider) -> Revert:
        """Stop a mock (nested kills count); the revert restarts it on the same port."""
        down = self._down.get(mock)
        if down is None:
            down = self._down[mock] = [0, int(mock.state == "running")]
            await mock.stop()
        down[0] += 1

        async def revert() -> None:
            down[0] -= 1
            if down[0] == 0:
                self._down.pop(mock, None)
                if down[1]:
                    await mock.start()

        return revert
