"""One supervisor per mapping: start its source, restart it with backoff, stop it on request.

A mapping that cannot run (missing queue, refused credentials, unreachable endpoint, a handler
that does not import) is reported in /status and retried with jittered exponential backoff; its
failure stays inside this supervisor, so it never stops the other mappings (DESIGN §3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from poller.runtime.status import MappingStatus
from poller.sources.base import Source

SourceFactory = Callable[[AsyncExitStack], Awaitable[Source]]
"""Builds a mapping's source (its target, clients and invoker), registering cleanups on the stack."""


class MappingSupervisor:
    def __init__(
        self,
        name: str,
        factory: SourceFactory,
        status: MappingStatus,
        *,
        initial_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
    ) -> None:
        self.name = name
        self.factory = factory
        self.status = status
        self.stopping = asyncio.Event()
        self.source: Source | None = None
        self.wait = wait_exponential_jitter(initial=initial_backoff_seconds, max=max_backoff_seconds)
        self.log = structlog.get_logger("poller.supervisor").bind(mapping=name)

    async def stop(self) -> None:
        self.stopping.set()
        if self.source is not None:
            await self.source.stop()

    async def run(self) -> None:
        retrying = AsyncRetrying(
            wait=self.wait,
            stop=lambda _: self.stopping.is_set(),
            retry=retry_if_exception_type(Exception),
            sleep=self._sleep_unless_stopping,
            before_sleep=self._report,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._run_once()
        except Exception as exc:  # the last failure, raised once stopping: already reported
            self.log.info("mapping_stopped_after_failure", error=str(exc)[:300])
        if self.status.state != "Disabled":
            self.status.transition("Disabled")

    async def _run_once(self) -> None:
        async with AsyncExitStack() as stack:
            source = await self.factory(stack)
            if self.stopping.is_set():
                return
            self.source = source
            try:
                await source.run()
            finally:
                self.source = None

    def _report(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = str(exc) or type(exc).__name__
        self.status.failing(reason)
        delay = state.next_action.sleep if state.next_action else 0.0
        self.log.error(
            "mapping_failed",
            error_type=type(exc).__name__,
            error=reason[:500],
            attempt=state.attempt_number,
            retry_in_s=round(delay, 2),
        )

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        except TimeoutError:
            pass
