"""The partition worker: one assigned partition's bounded buffer, and one batch at a time from it,
in offset order, each handed to the one dispatcher (`poller.dispatch.driver.Driver`).

Records stay aiokafka's `ConsumerRecord`s until a batch is taken; each batch is formatted straight
into event JSON, and its first attempt runs before any per-record bookkeeping exists: the retry
machine (`StreamBatchProcess`) is built only for a batch whose first attempt is not a plain success
(`whole_batch_first`). One batch at a time means the finished prefix of the partition is simply the
last finished batch's last offset.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from poller.core.batching import BatchBuilder, BatchLimits
from poller.core.clock import Clock
from poller.core.filtering import FilterSet, kafka_view
from poller.core.kafka_event import (
    KafkaEventShape,
    KafkaRecordEncoder,
    arrival_epoch_seconds,
    from_consumer_record,
    kafka_record,
)
from poller.core.stream_retry import RetryPolicy, StreamBatchProcess, whole_batch_first
from poller.dispatch.driver import Driver
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Attempt, Invoker
from poller.observability.metrics import MappingMetrics
from poller.sources.kafka.batch import Gathered, KafkaBatchPort, OffsetIds
from poller.sources.kafka.policy import kafka_identifier


@dataclass(frozen=True, slots=True)
class PartitionContext:
    """What every partition worker of one source shares."""

    mapping_name: str
    shape: KafkaEventShape
    limits: BatchLimits
    filters: FilterSet | None
    policy: RetryPolicy
    payload_limit: int
    """The largest record a one-partition event can carry (spec §5.3: larger ones are discarded)."""
    capacity: int
    """Records buffered per partition before it is left out of fetching."""
    invoker: Invoker
    driver: Driver
    failures: FailureSender
    metrics: MappingMetrics
    clock: Clock
    stopping: asyncio.Event
    room: asyncio.Event
    """Set when a buffer drops below `capacity`: the fetcher takes that partition's records again."""
    commit_wanted: asyncio.Event
    """Set when a finished offset moved: the committer commits it."""
    log: Any


class PartitionWorker:
    def __init__(self, context: PartitionContext, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        self.context = context
        self.consumer = consumer
        self.tp = tp
        self.key = f"{tp.topic}-{tp.partition}"
        self.buffer: deque[Any] = deque()
        self.arrived = asyncio.Event()
        self.encoder = KafkaRecordEncoder(tp.topic)
        self.finished_offset: int | None = None
        """Every record up to this offset is done (invoked, sent to the destination or filtered)."""
        self.last_committed: int | None = None
        self.next_offset: int | None = None
        self.leaving = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.paused_for: set[str] = set()
        self.identifier = kafka_identifier(self.key)
        self.log = context.log.bind(partition=self.key)
        self.batch_log = context.invoker.bound_log(mapping=context.mapping_name, partition=self.key)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, group: asyncio.TaskGroup) -> None:
        if self.task is None:
            self.task = group.create_task(self._run(), name=f"partition:{self.key}")

    def stop(self) -> None:
        """No new batches; the one in flight finishes (or abandons at its next wait)."""
        self.leaving.set()
        self.arrived.set()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.drop_buffer()

    def drop_buffer(self) -> None:
        """Forget the records not yet taken into a batch (and their share of `buffered_records`)."""
        self.context.metrics.buffered_records.dec(len(self.buffer))
        self.buffer.clear()

    async def finished(self) -> None:
        self.stop()
        if self.task is not None:
            await asyncio.wait({self.task})

    def done(self) -> bool:
        """Leaving (revoked) or stopping: no new batch, and no further invoke of the one in flight."""
        return self.leaving.is_set() or self.context.stopping.is_set()

    # -- buffering -----------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    def add(self, records: Sequence[Any]) -> None:
        if not records:
            return
        self.buffer.extend(records)
        metrics = self.context.metrics
        metrics.records_polled.inc(len(records))
        metrics.buffered_records.inc(len(records))
        if self.next_offset is None:
            self.next_offset = records[0].offset
        self.arrived.set()

    def pause(self, reason: str) -> None:
        if not self.paused_for:
            self.consumer.pause(self.tp)
        self.paused_for.add(reason)

    def resume(self, reason: str) -> None:
        self.paused_for.discard(reason)
        if not self.paused_for and self.tp in self.consumer.assignment():
            self.consumer.resume(self.tp)

    # -- progress ------------------------------------------------------------------------------

    def finish_through(self, offset: int) -> None:
        if self.finished_offset is None or offset > self.finished_offset:
            self.finished_offset = offset
            self.next_offset = offset + 1
            self.context.commit_wanted.set()

    @property
    def commit_offset(self) -> int:
        """Kafka commits the next offset to read: one past the finished prefix."""
        return -1 if self.finished_offset is None else self.finished_offset + 1

    @property
    def uncommitted(self) -> bool:
        return self.finished_offset is not None and self.commit_offset != self.last_committed

    def committed(self, offset: OffsetAndMetadata | None) -> None:
        if offset is not None:
            self.last_committed = offset.offset

    def position(self, highwater: int | None) -> dict[str, Any]:
        """The partition's entry in the status model's Positions."""
        return {
            "CommittedOffset": self.last_committed,
            "NextOffset": self.next_offset,
            "HighWatermark": highwater,
            "Lag": None
            if highwater is None or self.next_offset is None
            else max(highwater - self.next_offset, 0),
        }

    # -- batches -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self.done():
            batch = await self._gather()
            if batch is None:
                continue
            if not batch.records:
                self.finish_through(batch.through)  # every record taken was filtered out
                continue
            if not await self._process(batch):
                return

    async def _gather(self) -> Gathered | None:
        """spec §2: Kafka's window opens when the first record arrives (default 500 ms)."""
        context = self.context
        while not self.buffer:
            if self.done():
                return None
            self.arrived.clear()
            await self.arrived.wait()
        clock = context.clock
        builder = BatchBuilder(context.limits, started_at=clock.monotonic())
        batch = Gathered([], [], -1, builder.size)
        taken = 0
        try:
            while True:
                more, cut = self._take(builder, batch)
                taken += more
                if cut or builder.window_elapsed(clock.monotonic()) or self.done():
                    break
                self.arrived.clear()
                try:
                    async with asyncio.timeout(max(builder.deadline() - clock.monotonic(), 0.0)):
                        await self.arrived.wait()
                except TimeoutError:
                    break
        finally:
            # Also when cancelled within the window: the records taken left the buffer either way.
            context.metrics.buffered_records.dec(taken)
        if self.buffered < context.capacity:
            context.room.set()
        batch.size = builder.size
        return batch if taken else None

    def _take(self, builder: BatchBuilder, batch: Gathered) -> tuple[int, bool]:
        """Move what fits from the buffer into `batch`: the records taken off the buffer, and
        whether the batch is full (BatchSize reached, or the next record would pass 6 MB)."""
        context = self.context
        buffer, filters = self.buffer, context.filters
        batch_size, max_bytes = context.limits.batch_size, context.limits.max_bytes
        taken = 0
        while builder.count < batch_size and buffer:
            chunk = [buffer.popleft() for _ in range(min(batch_size - builder.count, len(buffer)))]
            taken += len(chunk)
            batch.through = chunk[-1].offset
            if filters is not None:
                chunk = self._matching(chunk, filters)
            encoded = self.encoder.encode_many(chunk)
            total = sum(map(len, encoded)) + len(encoded)  # each record and its comma
            if builder.size + total <= max_bytes:
                builder.count += len(chunk)
                builder.size += total
                batch.records += chunk
                batch.encoded += encoded
                continue
            for i, (record, data) in enumerate(zip(chunk, encoded, strict=True)):
                if not builder.fits(len(data) + 1):
                    back = chunk[i:]
                    buffer.extendleft(reversed(back))
                    batch.through = record.offset - 1
                    return taken - len(back), True
                builder.add(len(data) + 1)
                batch.records.append(record)
                batch.encoded.append(data)
        return taken, builder.count >= batch_size

    def _matching(self, chunk: list[Any], filters: FilterSet) -> list[Any]:
        """spec §7: the records the mapping's FilterCriteria keep (the rest are done once passed)."""
        kept = [r for r in chunk if filters.matches(kafka_view(kafka_record(from_consumer_record(r))))]
        if len(kept) < len(chunk):
            self.context.metrics.records_filtered.inc(len(chunk) - len(kept))
        return kept

    async def _process(self, batch: Gathered) -> bool:
        """Drive one batch to the end (spec §5.3 with §5.2's machine); False if abandoned."""
        context = self.context
        context.metrics.in_flight_batches.inc()
        try:
            now = context.clock.wall()
            port = KafkaBatchPort(self, batch)

            def build() -> StreamBatchProcess:
                return StreamBatchProcess(
                    port.refs(now),
                    context.policy,
                    end_sequence_number=str(batch.through),
                    payload_limit_bytes=context.payload_limit,
                )

            oldest = (
                min(arrival_epoch_seconds(r.timestamp, now) for r in batch.records)
                if context.policy.maximum_record_age_seconds != -1
                else now
            )
            if not whole_batch_first(
                context.policy,
                now_epoch=now,
                oldest_arrival_epoch_seconds=oldest,
                largest_record_bytes=batch.size - context.shape.envelope_bytes,
                payload_limit_bytes=context.payload_limit,
            ):
                return await context.driver.drive(build(), port)
            return await context.driver.drive_fast_first(
                port, end_sequence_number=str(batch.through), build=build, judged_at=now
            )
        finally:
            context.metrics.in_flight_batches.dec()

    async def invoke(self, records: Sequence[Any], encoded: Sequence[bytes], *, attempt: int) -> Attempt:
        context = self.context
        first, last = records[0].offset, records[-1].offset
        return await context.invoker.invoke(
            context.shape.encode(self.key, encoded),
            OffsetIds(records),
            attempt=attempt,
            batch_id=f"{self.key}-{first}",
            identifier=self.identifier,
            log=self.batch_log,
            log_fields={"first": first, "last": last},
        )

    async def _sleep_unless_leaving(self, seconds: float) -> bool:
        """Sleep `seconds`, or less if the partition is revoked or the source stops first; True
        if it was cut short."""
        waiters = [
            asyncio.ensure_future(self.leaving.wait()),
            asyncio.ensure_future(self.context.stopping.wait()),
        ]
        try:
            done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            return bool(done)
        finally:
            for waiter in waiters:
                waiter.cancel()
