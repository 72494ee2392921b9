"""A function declared under `Functions:` (DESIGN §1.5.1): invoked in its execution environments.

The environments belong to the function, not to a mapping: several mappings may name one function
and share its pool (and its ReservedConcurrentExecutions), so the target only looks the pool up by
name at each invoke and closing it leaves the pool running. Looking it up each time also lets a
hot reload that changes the function's definition swap in a new pool under running mappings.
"""

from __future__ import annotations

from typing import Protocol

from poller.core.outcome import InvokeOutcome
from poller.functions.pool import FunctionPool


class PoolDirectory(Protocol):
    def pool(self, function: str) -> FunctionPool:
        """The pool that runs `function` now."""
        ...


class EnvironmentTarget:
    kind: str = "function"

    def __init__(self, pools: PoolDirectory, function: str) -> None:
        self._pools = pools
        self._function = function

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        return await self._pools.pool(self._function).invoke(payload)

    async def aclose(self) -> None:
        """Nothing of its own: the service closes the pools once every mapping has drained."""
