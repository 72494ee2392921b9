"""Waiting in tests: on a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["wait_until"]


async def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> None:
    """Wait for a condition with a deadline: the only way tests here wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
