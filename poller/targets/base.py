"""The one seam every function target sits behind (DESIGN §1.5)."""

from __future__ import annotations

from typing import Protocol

from poller.core.outcome import InvokeOutcome


class Target(Protocol):
    """Invokes a function synchronously with one event, as Lambda's RequestResponse does.

    `invoke` never raises for anything the function or the network did: every result is an
    `InvokeOutcome`. It honours the timeout it was built with, so a caller never waits longer.
    """

    kind: str
    """`python`, `http` or `lambda`: a bounded label for metrics and logs."""

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        """Call the function with the serialised event `payload` (the exact JSON Lambda sends)."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads; idempotent."""
        ...
