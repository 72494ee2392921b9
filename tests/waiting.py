"""Waiting in tests: on a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["wait_for", "wait_until"]

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> None:
    """Wait for a condition with a deadline: the only way tests here wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for(
    look: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """`wait_until` for a look that must itself be awaited (a store read, a CLI call): the value the
    condition held for, or an error with the last value seen once the deadline passes."""
    deadline = time.monotonic() + timeout
    while not until(value := await look()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last saw {value!r}")
        await asyncio.sleep(interval)
    return value
