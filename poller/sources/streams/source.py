"""A Kinesis or DynamoDB Streams mapping behind the `Source` seam: everything but the API calls,
which its `StreamApi` makes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from poller.config import StreamMapping
from poller.core.clock import Clock
from poller.core.tumbling_window import IDLE_CLOSE_SECONDS
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Invoker
from poller.observability.metrics import MappingMetrics
from poller.observability.status import StatusReport
from poller.sources.streams.api import StreamApi
from poller.sources.streams.context import StreamContext, read_backoff_seconds
from poller.sources.streams.scheduler import ShardScheduler
from poller.state import CheckpointStore
from poller.state.leases import LeaseCoordinator

REFRESH_SECONDS: Final = 5.0
"""How often the shard list is read again to find children of a reshard."""


class StreamSource:
    def __init__(
        self,
        mapping: StreamMapping,
        *,
        api: StreamApi,
        invoker: Invoker,
        store: CheckpointStore,
        failures: FailureSender,
        metrics: MappingMetrics,
        status: StatusReport,
        clock: Clock,
        stopping: asyncio.Event,
        refresh_seconds: float = REFRESH_SECONDS,
        read_backoff: Callable[[int], float] = read_backoff_seconds,
        leases: LeaseCoordinator | None = None,
        window_idle_close_seconds: float = IDLE_CLOSE_SECONDS,
    ) -> None:
        self.kind: str = mapping.source_kind
        self.mapping = mapping
        self.status = status
        self.stopping = stopping
        self.context = StreamContext(
            mapping,
            api=api,
            invoker=invoker,
            store=store,
            failures=failures,
            metrics=metrics,
            status=status,
            clock=clock,
            stopping=stopping,
            read_backoff=read_backoff,
            window_idle_close_seconds=window_idle_close_seconds,
        )
        self.scheduler = ShardScheduler(self.context, leases=leases, refresh_seconds=refresh_seconds)

    @property
    def running(self) -> dict[str, asyncio.Task[None]]:
        """The shard workers running now, by shard id."""
        return self.scheduler.running

    async def run(self) -> None:
        await self.scheduler.run()

    async def stop(self) -> None:
        """Stop reading and starting batches; batches being invoked finish (the drain's first phase)."""
        self.stopping.set()
        self.scheduler.changed.set()
