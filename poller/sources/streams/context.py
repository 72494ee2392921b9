"""What every part of one stream mapping shares: its settings as the parts use them, its
collaborators, and what the scheduler learns about the stream for the readers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, Final

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from poller.config import StreamMapping
from poller.core.backoff import DELIVERY_BACKOFF
from poller.core.batching import BatchLimits
from poller.core.clock import Clock
from poller.core.filtering import FilterSet, compile_filters
from poller.core.shard_lineage import ShardInfo
from poller.core.stream_event import STREAM_EVENT_OVERHEAD
from poller.core.stream_retry import RetryPolicy
from poller.core.tumbling_window import IDLE_CLOSE_SECONDS
from poller.dispatch.driver import Driver
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Invoker
from poller.dispatch.pause import sleep_unless
from poller.observability.metrics import MappingMetrics
from poller.observability.status import StatusReport
from poller.sources.streams.api import StreamApi
from poller.state import CheckpointStore

LANE_CAPACITY_MIN: Final = 100
STORE_ERRORS: Final = (ClientError, BotoCoreError, sqlite3.Error)
"""What a lease table or checkpoint store raises when it cannot be reached now: retried later."""


def read_backoff_seconds(failures: int) -> float:
    """Wait after the `failures`-th failed read in a row: the engine's one backoff (1 s, doubling,
    capped at 30 s, ±20 %), as for deliveries."""
    return DELIVERY_BACKOFF.jittered(failures)


class StreamContext:
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
        read_backoff: Callable[[int], float],
        window_idle_close_seconds: float = IDLE_CLOSE_SECONDS,
    ) -> None:
        self.mapping = mapping
        self.api = api
        self.invoker = invoker
        self.store = store
        self.failures = failures
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.stopping = stopping
        self.read_backoff = read_backoff
        self.window_idle_close_seconds = window_idle_close_seconds
        """spec §8: how long after its end a tumbling window without new records waits to close."""
        self.driver = Driver(clock=clock, status=status)
        self.log: Any = structlog.get_logger(f"poller.{mapping.source_kind}").bind(mapping=mapping.name)
        # Compiled once per mapping; the loader has already refused invalid patterns (spec §7.6).
        self.filters: FilterSet | None = (
            compile_filters(mapping.filter_patterns, source=mapping.source_kind)
            if mapping.filter_patterns
            else None
        )
        self.policy = RetryPolicy(
            maximum_retry_attempts=mapping.maximum_retry_attempts,
            maximum_record_age_seconds=mapping.maximum_record_age_seconds,
            bisect_on_function_error=mapping.bisect_batch_on_function_error,
            report_batch_item_failures=mapping.report_batch_item_failures,
        )
        self.limits = BatchLimits(
            batch_size=mapping.batch_size,
            window_seconds=mapping.maximum_batching_window_seconds,
            envelope_bytes=STREAM_EVENT_OVERHEAD,
        )
        self.lane_capacity = max(2 * mapping.batch_size, LANE_CAPACITY_MIN)
        self.retention_seconds: float | None = None
        """Read once at start; records older than this expire like MaximumRecordAgeInSeconds."""
        self.shards: dict[str, ShardInfo] = {}
        """The latest shard listing, by id: the readers look up where a closed shard ends."""
        self.ages: dict[str, float] = {}

    async def sleep_unless_stopping(self, seconds: float) -> bool:
        """Sleep; True if stopping cut it short."""
        return await sleep_unless(self.stopping, seconds)

    def record_age(self, shard_id: str, age_seconds: float) -> None:
        self.ages[shard_id] = max(age_seconds, 0.0)
        self.publish_age()

    def forget_age(self, shard_id: str) -> None:
        self.ages.pop(shard_id, None)
        self.publish_age()

    def publish_age(self) -> None:
        # DESIGN §1.7: the age of the last record of the latest batch read, max over shards.
        self.metrics.iterator_age.set(max(self.ages.values(), default=0.0))
