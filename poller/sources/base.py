"""The one seam every source sits behind (DESIGN §2)."""

from __future__ import annotations

from typing import Protocol


class Source(Protocol):
    """Reads one mapping's event source and drives its batches until asked to stop.

    `run` returns after `stop()` once in-flight batches are done; the supervisor bounds that
    with the drain budget by cancelling `run`, which must then still hand back what it holds.
    `run` raises `poller.errors.SourceError` when the source cannot be read at all.
    """

    kind: str

    async def run(self) -> None: ...

    async def stop(self) -> None: ...
