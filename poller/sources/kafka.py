"""The self-managed Kafka source on aiokafka (spec §2, §3.4, §5.3, §9.3; ops anchors §1, §4).

One consumer per mapping joins the mapping's consumer group. A fetch loop hands records to one
worker per assigned partition; each worker gathers batches (BatchSize, the 500 ms default window
that opens with the first record, the 6 MB cap) and drives them through the same pure retry
machine as the streams (`StreamBatchProcess`, offsets as sequence numbers), so a partition is
processed in order while partitions run concurrently. Offsets are committed in the background,
coalesced to the highest contiguous finished offset per partition, and never past an unfinished
record. A partition whose buffer is full is left out of fetching (its fetched records wait in the
client), and one whose batch waits in retry backoff is paused, so the consumer keeps polling and
never drops out of its group. On a rebalance, revoked partitions stop taking batches, finish (or,
past their budget, abandon) what is in flight, and commit before the partition is released.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from poller.config import KafkaMapping
from poller.core.batch_result import BatchSucceeded
from poller.core.batching import MAX_PAYLOAD_BYTES, BatchBuilder, BatchLimits
from poller.core.clock import Clock
from poller.core.filtering import FilterSet, compile_filters, kafka_view
from poller.core.kafka_event import (
    KafkaEventShape,
    KafkaRecordEncoder,
    arrival_epoch_seconds,
    from_consumer_record,
    kafka_item,
    kafka_record,
)
from poller.core.stream_retry import (
    Backoff,
    Checkpoint,
    Done,
    Invoke,
    RetryPolicy,
    SendToDestination,
    StreamBatchProcess,
    StreamRecordRef,
    whole_batch_first,
)
from poller.dispatch.invoker import Attempt, Invoker
from poller.errors import first_error
from poller.observability.metrics import MappingMetrics
from poller.observability.status import MappingStatus
from poller.sources.kafka_failures import KafkaFailureSender

PARTITION_CAPACITY_MIN: Final = 500
"""Records buffered per partition before it is left out of fetching (at least 2 x BatchSize)."""
COMMIT_INTERVAL_SECONDS: Final = 1.0
FETCH_TIMEOUT_MS: Final = 500
FULL_WAIT_SECONDS: Final = 5.0
"""How long every partition may stay full before they are paused (see `_partitions_with_room`)."""
RETRIES_WITH_DESTINATION_CAP: Final = 10
"""spec §5.3: with infinite retries and an on-failure destination, Lambda caps retries at 10."""

ConsumerFactory = Callable[["KafkaSource"], AIOKafkaConsumer]


def kafka_identifier(partition_key: str) -> Callable[[object], str | None]:
    """spec §4.2: a Kafka `itemIdentifier` is `{"partition": "<topic>-<partition>", "offset": n}`;
    batches here hold one partition, so an identifier maps to its offset, else it is not in the batch."""

    def read(value: object) -> str | None:
        if not isinstance(value, dict):
            return None
        offset = value.get("offset")
        if isinstance(offset, str) and offset.isdigit():
            offset = int(offset)
        if not isinstance(offset, int) or isinstance(offset, bool):
            return None
        return (
            str(offset) if value.get("partition") == partition_key else f"{value.get('partition')}:{offset}"
        )

    return read


def kafka_retry_policy(mapping: KafkaMapping) -> RetryPolicy:
    """The mapping's error handling; spec §5.3: with infinite retries and an on-failure destination,
    Lambda caps retries at 10."""
    retries = mapping.maximum_retry_attempts
    if retries == -1 and mapping.on_failure_destination is not None:
        retries = RETRIES_WITH_DESTINATION_CAP
    return RetryPolicy(
        maximum_retry_attempts=retries,
        maximum_record_age_seconds=mapping.maximum_record_age_seconds,
        bisect_on_function_error=mapping.bisect_batch_on_function_error,
        report_batch_item_failures=mapping.report_batch_item_failures,
    )


class KafkaSource:
    kind = "kafka"

    def __init__(
        self,
        mapping: KafkaMapping,
        *,
        consumer_factory: ConsumerFactory,
        invoker: Invoker,
        failures: KafkaFailureSender,
        metrics: MappingMetrics,
        status: MappingStatus,
        clock: Clock,
        stopping: asyncio.Event,
        revoke_budget_seconds: float,
        revoke_commit_seconds: float,
    ) -> None:
        self.mapping = mapping
        self.consumer_factory = consumer_factory
        self.invoker = invoker
        self.failures = failures
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.stopping = stopping
        self.revoke_budget_seconds = revoke_budget_seconds
        """How long a revoked partition's batch in flight may run on; then it is abandoned."""
        self.revoke_commit_seconds = revoke_commit_seconds
        """How long the revocation's commit may take: together within the rebalance timeout
        (`runtime.kafka_clients.group_timeouts`)."""
        self.log = structlog.get_logger("poller.kafka").bind(mapping=mapping.name)
        self.shape = KafkaEventShape(bootstrap_servers=",".join(mapping.bootstrap_servers))
        self.filters: FilterSet | None = (
            compile_filters(mapping.filter_patterns, source="kafka") if mapping.filter_patterns else None
        )
        self.policy = kafka_retry_policy(mapping)
        self.limits = BatchLimits(
            batch_size=mapping.batch_size,
            window_seconds=mapping.maximum_batching_window_ms / 1000,
            envelope_bytes=self.shape.envelope_bytes,
        )
        self.payload_limit = MAX_PAYLOAD_BYTES - self.shape.envelope_bytes
        """The largest record a one-partition event can carry (spec §5.3: larger ones are discarded)."""
        self.capacity = max(2 * mapping.batch_size, PARTITION_CAPACITY_MIN)
        self.workers: dict[TopicPartition, PartitionWorker] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.group: asyncio.TaskGroup | None = None
        self.commit_wanted = asyncio.Event()
        self.room = asyncio.Event()
        """Set when a partition's buffer drops below `capacity`."""

    async def stop(self) -> None:
        self.stopping.set()
        self.commit_wanted.set()
        self.room.set()

    async def run(self) -> None:
        consumer = self.consumer_factory(self)
        self.consumer = consumer
        try:
            consumer.subscribe([self.mapping.topic], listener=_Rebalance(self))
            await consumer.start()
        except BaseException as exc:
            # Whatever stopped the start (a cancellation too), the client's connections and
            # background tasks must go with it: the supervisor builds a new consumer next time.
            await self._close(consumer)
            if isinstance(exc, KafkaError):
                raise ConnectionError(f"Kafka at {self.shape.bootstrap_servers}: {exc}") from exc
            raise
        self.status.running()
        self.log.info("mapping_started", topic=self.mapping.topic, group=self.mapping.consumer_group_id)
        try:
            async with asyncio.TaskGroup() as group:
                self.group = group
                for worker in self.workers.values():
                    worker.start(group)
                fetcher = group.create_task(self._fetch_loop())
                committer = group.create_task(self._commit_loop())
                await fetcher
                # Stopping: workers finish their batch in flight, then the last commit.
                await asyncio.gather(*(w.finished() for w in list(self.workers.values())))
                self.commit_wanted.set()
                committer.cancel()
        except ExceptionGroup as group_error:
            raise first_error(group_error) from group_error
        finally:
            self.group = None
            # What is still buffered is read again by the next owner: it no longer counts here.
            for worker in self.workers.values():
                worker.drop_buffer()
            await self._commit(list(self.workers.values()))
            await consumer.stop()

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await consumer.stop()
        except Exception as exc:
            self.log.warning("consumer_close_failed", error=str(exc)[:300])

    # -- fetching ------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        while not self.stopping.is_set():
            room = await self._partitions_with_room()
            self.room.clear()
            if len(room) == len(self.workers):
                batches = await consumer.getmany(
                    *room, timeout_ms=FETCH_TIMEOUT_MS, max_records=self.capacity
                )
            else:
                batches = await self._fetch_until_room(room)
            for tp, records in batches.items():
                worker = self.workers.get(tp)
                if worker is None:
                    continue  # revoked meanwhile: the next owner fetches them from the commit
                worker.add(records)
            self._publish_lag()

    async def _fetch_until_room(self, room: list[TopicPartition]) -> dict[TopicPartition, list[Any]]:
        """`getmany` of the partitions in `room`, cut short when another partition gets room (so a
        full partition is not left waiting for the fetch timeout)."""
        consumer = self.consumer
        assert consumer is not None
        fetch = asyncio.ensure_future(
            consumer.getmany(*room, timeout_ms=FETCH_TIMEOUT_MS, max_records=self.capacity)
        )
        more_room = asyncio.ensure_future(self.room.wait())
        try:
            await asyncio.wait({fetch, more_room}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            more_room.cancel()
            # aiokafka takes records off its buffer only once it stops waiting, so a cancelled
            # getmany has taken none; one that finished first keeps its result.
            fetch.cancel()
        try:
            batches: dict[TopicPartition, list[Any]] = await fetch
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this loop itself is being cancelled, not just the fetch
            return {}
        return batches

    async def _partitions_with_room(self) -> list[TopicPartition]:
        """The partitions to take records of now: those whose buffer is not full.

        A full partition is left out of `getmany` rather than paused: aiokafka keeps its fetched
        records (at most one fetch, `max_partition_fetch_bytes`) until they are asked for, where
        pausing would drop them and fetch them again on resume. Only when every partition stays
        full for `FULL_WAIT_SECONDS` are they paused, so that `getmany` can go on being called and
        the consumer stays in its group (`max_poll_interval_ms`) behind a slow function.
        """
        room = [tp for tp, worker in self.workers.items() if worker.buffered < self.capacity]
        if room or not self.workers:
            for tp in room:
                self.workers[tp].resume("buffer full")
            return room
        self.room.clear()
        try:
            async with asyncio.timeout(FULL_WAIT_SECONDS):
                await self.room.wait()
        except TimeoutError:
            for worker in self.workers.values():
                worker.pause("buffer full")
            return []
        return await self._partitions_with_room()

    def _publish_lag(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        lag = 0
        for tp, worker in self.workers.items():
            highwater = consumer.highwater(tp)
            if highwater is not None and worker.next_offset is not None:
                lag += max(highwater - worker.next_offset, 0)
            worker.publish_position(highwater)
        self.metrics.offset_lag.set(lag)

    # -- committing ----------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(COMMIT_INTERVAL_SECONDS):
                    await self.commit_wanted.wait()
            except TimeoutError:
                pass
            self.commit_wanted.clear()
            await self._commit(list(self.workers.values()))

    async def _commit(self, workers: Sequence[PartitionWorker], *, timeout: float | None = None) -> None:
        """Commit each partition's finished prefix that moved; one request for all of them."""
        consumer = self.consumer
        offsets = {w.tp: OffsetAndMetadata(w.commit_offset, "") for w in workers if w.uncommitted}
        if consumer is None or not offsets:
            return
        try:
            async with asyncio.timeout(timeout):
                await consumer.commit(offsets)
        except (KafkaError, TimeoutError) as exc:
            # A rebalance in progress refuses commits; revocation commits what was finished. The
            # next commit covers these offsets too, but a redelivery on a hand-over is counted.
            self.metrics.ack_failures["commit"].inc()
            self.log.warning(
                "commit_failed", error=str(exc)[:300] or type(exc).__name__, partitions=len(offsets)
            )
            return
        for worker in workers:
            worker.committed(offsets.get(worker.tp))

    # -- rebalancing ---------------------------------------------------------------------------

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        for tp in sorted(partitions, key=lambda p: p.partition):
            if tp in self.workers:
                continue
            committed = await consumer.committed(tp)
            if committed is None and self.mapping.starting_position == "AT_TIMESTAMP":
                await self._seek_to_timestamp(consumer, tp)
            worker = PartitionWorker(self, tp)
            self.workers[tp] = worker
            if self.group is not None:
                worker.start(self.group)
        self.log.info("partitions_assigned", partitions=sorted(tp.partition for tp in partitions))

    async def _seek_to_timestamp(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        # An extension over AWS (which documents AT_TIMESTAMP for MSK): offsets_for_times.
        stamp = self.mapping.starting_position_timestamp
        assert stamp is not None  # the loader requires it with AT_TIMESTAMP
        found = await consumer.offsets_for_times({tp: int(stamp * 1000)})
        position = found.get(tp)
        if position is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, position.offset)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        leaving = [self.workers[tp] for tp in partitions if tp in self.workers]
        for worker in leaving:
            worker.stop()
        if leaving:
            try:
                async with asyncio.timeout(self.revoke_budget_seconds):
                    await asyncio.gather(*(w.finished() for w in leaving))
            except TimeoutError:
                self.log.warning("revoke_budget_exceeded", partitions=[w.tp.partition for w in leaving])
            # Bounded too: the whole revocation stays within the group's rebalance timeout.
            await self._commit(leaving, timeout=self.revoke_commit_seconds)
        for worker in leaving:
            worker.cancel()
            self.workers.pop(worker.tp, None)
            self.status.positions.pop(worker.key, None)
        self.room.set()
        if partitions:
            self.log.info("partitions_revoked", partitions=sorted(tp.partition for tp in partitions))


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.source.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.source.assigned(set(assigned))


class OffsetIds(Collection[str]):
    """A batch's item ids (its offsets as strings) for `classify`, which only needs them when the
    function reports item failures: made on first use, not for every batch."""

    __slots__ = ("_ids", "_records")

    def __init__(self, records: Sequence[Any]) -> None:
        self._records = records
        self._ids: frozenset[str] | None = None

    def _set(self) -> frozenset[str]:
        if self._ids is None:
            self._ids = frozenset(str(r.offset) for r in self._records)
        return self._ids

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, item: object) -> bool:
        return item in self._set()

    def __iter__(self) -> Iterator[str]:
        return (str(r.offset) for r in self._records)


@dataclass(slots=True)
class Gathered:
    """One batch taken from a partition's buffer."""

    records: list[Any]
    """aiokafka `ConsumerRecord`s in offset order; the ones the filters dropped are not here."""
    encoded: list[bytes]
    """Each record's event JSON (`KafkaRecordEncoder`)."""
    through: int
    """The last offset taken, filtered records included: the batch's final checkpoint."""
    size: int
    """Bytes of the one-partition event, envelope included (an upper bound: `envelope_bytes`)."""


class PartitionWorker:
    """One assigned partition: a bounded buffer and one batch at a time, in offset order.

    Records stay aiokafka's `ConsumerRecord`s until a batch is taken; each batch is formatted
    straight into event JSON, and its first attempt runs before any per-record bookkeeping exists:
    the retry machine (`StreamBatchProcess`) is built only for a batch whose first attempt is not a
    plain success (`whole_batch_first`). One batch at a time means the finished prefix of the
    partition is simply the last finished batch's last offset.
    """

    def __init__(self, source: KafkaSource, tp: TopicPartition) -> None:
        self.source = source
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
        self.log = source.log.bind(partition=self.key)

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
        self.source.metrics.buffered_records.dec(len(self.buffer))
        self.buffer.clear()

    async def finished(self) -> None:
        self.stop()
        if self.task is not None:
            await asyncio.wait({self.task})

    def _done(self) -> bool:
        return self.leaving.is_set() or self.source.stopping.is_set()

    # -- buffering -----------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    def add(self, records: Sequence[Any]) -> None:
        if not records:
            return
        self.buffer.extend(records)
        metrics = self.source.metrics
        metrics.records_polled.inc(len(records))
        metrics.buffered_records.inc(len(records))
        if self.next_offset is None:
            self.next_offset = records[0].offset
        self.arrived.set()

    def pause(self, reason: str) -> None:
        consumer = self.source.consumer
        if not self.paused_for and consumer is not None:
            consumer.pause(self.tp)
        self.paused_for.add(reason)

    def resume(self, reason: str) -> None:
        consumer = self.source.consumer
        self.paused_for.discard(reason)
        if not self.paused_for and consumer is not None and self.tp in consumer.assignment():
            consumer.resume(self.tp)

    # -- progress ------------------------------------------------------------------------------

    def _finish_through(self, offset: int) -> None:
        if self.finished_offset is None or offset > self.finished_offset:
            self.finished_offset = offset
            self.next_offset = offset + 1
            self.source.commit_wanted.set()

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

    def publish_position(self, highwater: int | None) -> None:
        self.source.status.positions[self.key] = {
            "CommittedOffset": self.last_committed,
            "NextOffset": self.next_offset,
            "HighWatermark": highwater,
            "Lag": None
            if highwater is None or self.next_offset is None
            else max(highwater - self.next_offset, 0),
        }

    # -- batches -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._done():
            batch = await self._gather()
            if batch is None:
                continue
            if not batch.records:
                self._finish_through(batch.through)  # every record taken was filtered out
                continue
            if not await self._process(batch):
                return

    async def _gather(self) -> Gathered | None:
        """spec §2: Kafka's window opens when the first record arrives (default 500 ms)."""
        source = self.source
        while not self.buffer:
            if self._done():
                return None
            self.arrived.clear()
            await self.arrived.wait()
        clock = source.clock
        builder = BatchBuilder(source.limits, started_at=clock.monotonic())
        batch = Gathered([], [], -1, builder.size)
        taken = 0
        try:
            while True:
                more, cut = self._take(builder, batch)
                taken += more
                if cut or builder.window_elapsed(clock.monotonic()) or self._done():
                    break
                self.arrived.clear()
                try:
                    async with asyncio.timeout(max(builder.deadline() - clock.monotonic(), 0.0)):
                        await self.arrived.wait()
                except TimeoutError:
                    break
        finally:
            # Also when cancelled within the window: the records taken left the buffer either way.
            source.metrics.buffered_records.dec(taken)
        if self.buffered < source.capacity:
            source.room.set()
        batch.size = builder.size
        return batch if taken else None

    def _take(self, builder: BatchBuilder, batch: Gathered) -> tuple[int, bool]:
        """Move what fits from the buffer into `batch`: the records taken off the buffer, and
        whether the batch is full (BatchSize reached, or the next record would pass 6 MB)."""
        source = self.source
        buffer, filters = self.buffer, source.filters
        batch_size, max_bytes = source.limits.batch_size, source.limits.max_bytes
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
            self.source.metrics.records_filtered.inc(len(chunk) - len(kept))
        return kept

    async def _process(self, batch: Gathered) -> bool:
        """Drive one batch to the end (spec §5.3 with §5.2's machine); False if abandoned."""
        source = self.source
        source.metrics.in_flight_batches.inc()
        try:
            now = source.clock.wall()
            records = batch.records
            oldest = (
                min(arrival_epoch_seconds(r.timestamp, now) for r in records)
                if source.policy.maximum_record_age_seconds != -1
                else now
            )
            if not whole_batch_first(
                source.policy,
                now_epoch=now,
                oldest_arrival_epoch_seconds=oldest,
                largest_record_bytes=batch.size - source.shape.envelope_bytes,
                payload_limit_bytes=source.payload_limit,
            ):
                return await self._retry(batch, now, None)
            if self._done():
                return False
            first = await self._invoke(records, batch.encoded, attempt=1)
            if not isinstance(first.result, BatchSucceeded):
                return await self._retry(batch, now, first)
            source.status.record_result(True)
            self._finish_through(batch.through)
            return True
        finally:
            source.metrics.in_flight_batches.dec()

    async def _invoke(self, records: Sequence[Any], encoded: Sequence[bytes], *, attempt: int) -> Attempt:
        source = self.source
        first, last = records[0].offset, records[-1].offset
        return await source.invoker.invoke(
            source.shape.encode(self.key, encoded),
            OffsetIds(records),
            attempt=attempt,
            batch_id=f"{self.key}-{first}",
            identifier=self.identifier,
            log_fields={"mapping": source.mapping.name, "partition": self.key, "first": first, "last": last},
        )

    async def _retry(self, batch: Gathered, now: float, first: Attempt | None) -> bool:
        """The batch through the retry machine, from its start or after a `first` attempt that
        was made at `now` without it (spec §5.3 with §5.2's machine); False if abandoned."""
        source = self.source
        records, encoded = batch.records, batch.encoded
        refs = [
            StreamRecordRef(str(r.offset), arrival_epoch_seconds(r.timestamp, now), len(data) + 1)
            for r, data in zip(records, encoded, strict=True)
        ]
        index = {ref.sequence_number: i for i, ref in enumerate(refs)}
        process = StreamBatchProcess(
            refs,
            source.policy,
            end_sequence_number=str(batch.through),
            payload_limit_bytes=source.payload_limit,
        )
        if first is not None:
            decision = process.next_decision(now)
            if not (
                isinstance(decision, Invoke) and decision.attempt == 1 and len(decision.records) == len(refs)
            ):
                raise RuntimeError(f"the first attempt was not the machine's: {decision!r}")
            used = process.record_result(first.outcome, first.result)
            source.status.record_result(isinstance(used, BatchSucceeded))
        while True:
            match process.next_decision(source.clock.wall()):
                case Invoke(records=invoked, attempt=attempt):
                    if self._done():
                        return False
                    positions = [index[r.sequence_number] for r in invoked]
                    result = await self._invoke(
                        [records[i] for i in positions], [encoded[i] for i in positions], attempt=attempt
                    )
                    used = process.record_result(result.outcome, result.result)
                    source.status.record_result(isinstance(used, BatchSucceeded))
                case Backoff(seconds=seconds):
                    # Paused while waiting, so the consumer keeps polling and stays in its group.
                    self.pause("retry backoff")
                    try:
                        if await self._sleep_unless_leaving(seconds * random.uniform(0.8, 1.2)):
                            return False
                    finally:
                        self.resume("retry backoff")
                case SendToDestination(records=discarded) as discard:
                    items = [kafka_item(records[index[r.sequence_number]]) for r in discarded]
                    if not await source.failures.send(discard, partition_key=self.key, items=items):
                        return False
                case Checkpoint(after_sequence_number=after):
                    self._finish_through(int(after))
                case Done():
                    return True

    async def _sleep_unless_leaving(self, seconds: float) -> bool:
        waiters = [
            asyncio.ensure_future(self.leaving.wait()),
            asyncio.ensure_future(self.source.stopping.wait()),
        ]
        try:
            done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            return bool(done)
        finally:
            for waiter in waiters:
                waiter.cancel()
