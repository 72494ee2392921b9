"""The one "sleep unless stopping" of the engine."""

from __future__ import annotations

import asyncio


async def sleep_unless(event: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`, or less if `event` is set first; True if the event cut it short."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    return True
