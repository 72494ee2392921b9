"""One supervisor per mapping: start its source, restart it with backoff, stop it on request.

A mapping that cannot run (missing queue, refused credentials, unreachable endpoint, a handler
that does not import) is reported in /status and retried with jittered exponential backoff; its
failure stays inside this supervisor, so it never stops the other mappings (DESIGN §3).

`SupervisorPool` holds the running supervisors, one task each in the service's task group, which
stays open while the service runs so a hot reload can add and drain supervisors; a supervisor
leaves only through `drain`, which awaits its task, so no task outlives its mapping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from poller.observability.status import MappingStatus
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
        # A reload that removes or changes the mapping has said so (Deleting, Updating): keep it.
        if self.status.state not in ("Disabled", "Deleting", "Updating"):
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


@dataclass(frozen=True, slots=True)
class Supervised:
    supervisor: MappingSupervisor
    task: asyncio.Task[None]


class SupervisorPool:
    """The running supervisors by mapping Name, each a task of `group`."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self.group = group
        self.active: dict[str, Supervised] = {}
        self.leaving: list[Supervised] = []
        """Being drained by a reload: a shutdown meanwhile drains them too."""
        self.closed = False

    def start(self, supervisor: MappingSupervisor) -> None:
        if self.closed:
            raise RuntimeError(f"mapping {supervisor.name!r} started after the shutdown drain began")
        if supervisor.name in self.active:
            raise RuntimeError(f"mapping {supervisor.name!r} is already running")
        task = self.group.create_task(supervisor.run(), name=f"mapping:{supervisor.name}")
        self.active[supervisor.name] = Supervised(supervisor, task)

    async def drain(self, names: Iterable[str], budget_seconds: float) -> int:
        """Stop these mappings' supervisors and await them (two phases, as on SIGTERM)."""
        leaving = [self.active.pop(name) for name in names if name in self.active]
        self.leaving += leaving
        try:
            return await drain_supervisors(leaving, budget_seconds)
        finally:
            self.leaving = [s for s in self.leaving if s not in leaving]

    async def drain_all(self, budget_seconds: float) -> int:
        """Every supervisor, including those a reload is draining now (shutdown)."""
        self.closed = True
        everything = [*self.active.values(), *self.leaving]
        self.active.clear()
        return await drain_supervisors(everything, budget_seconds)


async def drain_supervisors(supervised: Sequence[Supervised], budget_seconds: float) -> int:
    """Two-phase drain (ops anchors §7.2): stop polling at once, let in-flight batches finish within
    the budget, then cancel what is still running (a source hands back what it holds when
    cancelled) and await it. Returns how many had to be cancelled."""
    await asyncio.gather(*(s.supervisor.stop() for s in supervised))
    tasks = [s.task for s in supervised if not s.task.done()]
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=budget_seconds)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    return len(pending)
