"""The stream helper Kinesis and DynamoDB Streams share: shards, lanes, retries, checkpoints.

Per mapping, a scheduler lists the stream's shards and starts a worker for each shard whose parents
are finished (spec §5.2 resharding); it lists again every few seconds and whenever a shard ends.
Per shard, one reader calls GetRecords into bounded lane queues and pauses when they are full;
ParallelizationFactor lanes (spec §9.2) each run one batch at a time, a key always in the same lane,
so every key stays in order. A batch is driven to the end by the pure `StreamBatchProcess`
(spec §5.2); its records are checkpointed only once every record before them is finished too
(`ShardProgress`), so a crash redelivers at most the batches in flight.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import zlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from poller.config import StreamMapping
from poller.core.batch_result import BatchSucceeded
from poller.core.batching import BatchBuilder, BatchLimits
from poller.core.clock import Clock
from poller.core.filtering import FilterSet, compile_filters, record_view
from poller.core.shard_lineage import ShardInfo, open_at_enable, ready_to_start
from poller.core.shard_progress import ShardProgress
from poller.core.stream_event import STREAM_EVENT_OVERHEAD, encode_stream_event
from poller.core.stream_retry import (
    Backoff,
    Checkpoint,
    Done,
    Invoke,
    RetryPolicy,
    SendToDestination,
    StreamBatchProcess,
)
from poller.dispatch.invoker import Invoker
from poller.errors import first_error
from poller.observability.metrics import MappingMetrics
from poller.observability.status import MappingStatus
from poller.sources.shard_leases import LeaseCoordinator
from poller.sources.stream_api import (
    AfterSequence,
    AtTimestamp,
    IteratorExpired,
    Latest,
    PositionTrimmed,
    ReadResult,
    ReadThrottled,
    StartAt,
    StreamApi,
    StreamItem,
    TrimHorizon,
)
from poller.sources.stream_failures import FailureSender
from poller.state import CheckpointStore
from poller.state.base import Checkpoint as StoredCheckpoint
from poller.state.dynamodb import LeaseLost

REFRESH_SECONDS: Final = 5.0
"""How often the shard list is read again to find children of a reshard."""
LANE_CAPACITY_MIN: Final = 100
MAX_READ_BACKOFF_SECONDS: Final = 30.0
LATEST_ANCHOR_MARGIN_SECONDS: Final = 1.0
"""Resuming a LATEST shard that delivered nothing yet starts this much before the enable time."""
STORE_ERRORS: Final = (ClientError, BotoCoreError, sqlite3.Error)
"""What a lease table or checkpoint store raises when it cannot be reached now: retried later."""


@dataclass(slots=True)
class Tracked:
    item: StreamItem
    ticket: int


class _End:
    """Put into a lane's queue when its reader has stopped: finish what is queued, then return."""


END: Final = _End()


def read_backoff_seconds(failures: int) -> float:
    """Wait after the `failures`-th failed read in a row: from ~1 s, doubling, capped, jittered."""
    return min(MAX_READ_BACKOFF_SECONDS, 0.5 * 2.0 ** min(failures, 10)) * random.uniform(0.8, 1.2)


class StreamSource:
    """A Kinesis or DynamoDB Streams mapping: everything but the API calls, which `api` makes."""

    def __init__(
        self,
        mapping: StreamMapping,
        *,
        api: StreamApi,
        invoker: Invoker,
        store: CheckpointStore,
        failures: FailureSender,
        metrics: MappingMetrics,
        status: MappingStatus,
        clock: Clock,
        stopping: asyncio.Event,
        refresh_seconds: float = REFRESH_SECONDS,
        read_backoff: Callable[[int], float] = read_backoff_seconds,
        leases: LeaseCoordinator | None = None,
    ) -> None:
        self.kind: str = mapping.source_kind
        self.mapping = mapping
        self.api = api
        self.invoker = invoker
        self.store = store
        self.failures = failures
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.stopping = stopping
        self.leases = leases
        # With leases, the taker runs at every scheduling round: twice per failover time.
        self.refresh_seconds = (
            refresh_seconds if leases is None else min(refresh_seconds, leases.failover_seconds / 2)
        )
        self.running: dict[str, asyncio.Task[None]] = {}
        self.read_backoff = read_backoff
        self.log = structlog.get_logger(f"poller.{mapping.source_kind}").bind(mapping=mapping.name)
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
        self.shards: dict[str, ShardInfo] = {}
        self.ages: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def stop(self) -> None:
        """Stop reading and starting batches; batches being invoked finish (the drain's first phase)."""
        self.stopping.set()
        self.changed.set()

    # -- scheduling ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.retention_seconds = await self.api.retention_seconds()
        listed = await self.api.list_shards()
        self.shards = {s.shard_id: s for s in listed}
        leases = self.leases
        first_starts: dict[str, StartAt] = {}
        if leases is None:
            stored = await self.store.all_for(self.mapping.name)
            finished = {shard for shard, cp in stored.items() if cp.shard_end}
            if not stored and self.mapping.starting_position == "LATEST":
                first_starts = await self._anchor_latest(listed, finished)
        else:
            finished = set()
            first = not await leases.read()
            latest = first and self.mapping.starting_position == "LATEST"
            await leases.ensure_rows(listed, anchor_at=self.clock.wall() if latest else None)
            leases.stop_shard = self._stop_shard
        self.status.running()
        self.log.info("mapping_started", shards=len(listed), finished_shards=len(finished))
        running = self.running
        try:
            async with asyncio.TaskGroup() as group:
                if leases is not None:
                    group.create_task(leases.renew_loop(self.stopping))
                while not self.stopping.is_set():
                    done = finished | leases.finished() if leases is not None else finished
                    ready = ready_to_start(listed, finished=done, running=running.keys())
                    if leases is not None:
                        allowed = await self._acquire(leases, listed, done)
                        ready = [shard for shard in ready if shard.shard_id in allowed]
                    for shard in ready:
                        start = first_starts.pop(shard.shard_id, None)
                        await self._start_shard(group, shard.shard_id, start, finished)
                    await self._wait_changed(self.refresh_seconds)
                    listed = await self._relist(listed)
                    if leases is not None and not self.stopping.is_set():
                        await self._refresh_leases(leases, listed)
        except ExceptionGroup as group_error:
            raise first_error(group_error) from group_error
        finally:
            if leases is not None:
                # Let go at once so peers take over now, not after the failover time.
                await leases.release_all()

    async def _refresh_leases(self, leases: LeaseCoordinator, listed: list[ShardInfo]) -> None:
        try:
            await leases.read()
            await leases.ensure_rows(listed, anchor_at=None)
        except STORE_ERRORS as exc:
            self._call_failed("lease_table_read_failed", exc)

    async def _acquire(self, leases: LeaseCoordinator, listed: list[ShardInfo], done: set[str]) -> set[str]:
        """The shards this replica may start now: none this pass if the lease table is unreachable."""
        # Workable: every unfinished shard whose parents are done, running or not.
        workable = {s.shard_id for s in ready_to_start(listed, finished=done, running=())}
        try:
            return await leases.acquire(workable)
        except STORE_ERRORS as exc:
            self._call_failed("lease_acquire_failed", exc)
            return set()

    async def _start_shard(
        self, group: asyncio.TaskGroup, shard_id: str, start: StartAt | None, finished: set[str]
    ) -> None:
        """Start a shard's worker (where its checkpoint says, unless `start` is given); a shard
        whose checkpoint cannot be read now waits for the next pass while the others run on."""
        try:
            start = start or await self._start_of(shard_id)
        except STORE_ERRORS as exc:
            self._call_failed("checkpoint_read_failed", exc, shard=shard_id)
            return
        if start is None:
            finished.add(shard_id)
            return
        work = self._run_worker(ShardWorker(self, shard_id, start, finished), self.running)
        self.running[shard_id] = group.create_task(work, name=f"shard:{shard_id}")

    def _call_failed(self, event: str, exc: Exception, **fields: str) -> None:
        """A scheduling call failed for now: counted and logged; the next pass tries again."""
        self.metrics.poll_errors.inc()
        self.log.warning(event, error=str(exc)[:300], **fields)

    async def _stop_shard(self, shard_id: str) -> None:
        """A lost lease: stop the shard's worker now, before it could checkpoint again."""
        task = self.running.get(shard_id)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _anchor_latest(self, listed: Sequence[ShardInfo], finished: set[str]) -> dict[str, StartAt]:
        """LATEST is the tip when the mapping is first enabled: remember that moment per open shard
        (a row without a sequence number), so a restart before a shard's first record resumes from
        then instead of from a later tip; closed shards hold only older records and are skipped."""
        open_shards, closed_shards = open_at_enable(listed)
        for shard in closed_shards:
            await self.store.put(StoredCheckpoint(self.mapping.name, shard.shard_id, None, shard_end=True))
            finished.add(shard.shard_id)
        for shard in open_shards:
            await self.store.put(StoredCheckpoint(self.mapping.name, shard.shard_id, None))
        return {shard.shard_id: Latest() for shard in open_shards}

    async def _start_of(self, shard_id: str) -> StartAt | None:
        """Where a shard's reading begins: after its checkpoint, else from the StartingPosition;
        None when the shard is already finished."""
        stored = await self.store.get(self.mapping.name, shard_id)
        if stored is not None:
            if stored.shard_end:
                return None
            if stored.sequence_number is not None:
                return AfterSequence(stored.sequence_number)
            return AtTimestamp(stored.updated_at_epoch - LATEST_ANCHOR_MARGIN_SECONDS)
        match self.mapping.starting_position:
            case "AT_TIMESTAMP":
                assert self.mapping.starting_position_timestamp is not None  # the loader requires it
                return AtTimestamp(self.mapping.starting_position_timestamp)
            case _:
                # A shard that appeared after the mapping was enabled (a reshard's child) holds
                # only newer records, so LATEST reads it from its beginning too.
                return TrimHorizon()

    async def _run_worker(self, worker: ShardWorker, running: dict[str, asyncio.Task[None]]) -> None:
        try:
            await worker.run()
            if self.leases is not None and worker.shard_id in worker.finished:
                await self.leases.release(worker.shard_id)
        except* LeaseLost as lost:
            # Another replica holds the shard now; it resumes from the last checkpoint we wrote.
            self.log.warning("shard_stopped_lease_lost", shard=worker.shard_id, error=str(lost.exceptions[0]))
        finally:
            running.pop(worker.shard_id, None)
            # What its lanes still held is dropped with them (read again from the checkpoint).
            self.metrics.buffered_records.dec(sum(lane.abandon() for lane in worker.lanes))
            if worker.shard_id not in worker.finished:
                # No longer read here (stopped, or its lease moved): /status lists what this replica reads.
                self.status.positions.pop(worker.shard_id, None)
            self.ages.pop(worker.shard_id, None)
            self._publish_age()
            self.changed.set()

    async def _relist(self, current: list[ShardInfo]) -> list[ShardInfo]:
        if self.stopping.is_set():
            return current
        try:
            listed = await self.api.list_shards()
        except (ClientError, BotoCoreError) as exc:
            self.metrics.poll_errors.inc()
            self.log.warning("list_shards_failed", error=str(exc)[:300])
            return current
        self.shards = {s.shard_id: s for s in listed}
        return listed

    async def _wait_changed(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self.changed.wait()
        except TimeoutError:
            pass
        self.changed.clear()

    async def sleep_unless_stopping(self, seconds: float) -> bool:
        """Sleep; True if stopping cut it short."""
        try:
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
            return True
        except TimeoutError:
            return False

    def record_age(self, shard_id: str, age_seconds: float) -> None:
        self.ages[shard_id] = max(age_seconds, 0.0)
        self._publish_age()

    def _publish_age(self) -> None:
        # DESIGN §1.7: the age of the last record of the latest batch read, max over shards.
        self.metrics.iterator_age.set(max(self.ages.values(), default=0.0))


class ShardWorker:
    """One shard: a reader and ParallelizationFactor lanes, until the shard ends or stopping."""

    def __init__(self, source: StreamSource, shard_id: str, start: StartAt, finished: set[str]) -> None:
        self.source = source
        self.shard_id = shard_id
        self.start = start
        self.finished = finished
        watermark = start.sequence_number if isinstance(start, AfterSequence) else None
        self.progress = ShardProgress(watermark=watermark)
        self.stored = watermark
        self.last_read = watermark
        self.lanes = [
            Lane(self, index, asyncio.Queue(source.lane_capacity))
            for index in range(source.mapping.parallelization_factor)
        ]
        self.commit_lock = asyncio.Lock()
        self.log = source.log.bind(shard=shard_id)

    async def run(self) -> None:
        source = self.source
        ended = False
        async with asyncio.TaskGroup() as group:
            for lane in self.lanes:
                group.create_task(lane.run())
            reader = group.create_task(self._read_loop())
            stop_watch = group.create_task(source.stopping.wait())
            await asyncio.wait({reader, stop_watch}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                stop_watch.cancel()
                ended = reader.result()
            else:
                reader.cancel()
            for lane in self.lanes:
                lane.close()
        if ended and not source.stopping.is_set() and self.progress.outstanding == 0:
            failures = 0  # children wait for this write: hold the shard until it is done
            while not await self._put_checkpoint(self.progress.watermark, shard_end=True):
                failures += 1
                if await source.sleep_unless_stopping(source.read_backoff(failures)):
                    return
            self.finished.add(self.shard_id)
            self._publish_position(reading=False)
            self.log.info("shard_finished", last_sequence_number=self.progress.watermark)

    # -- reading -------------------------------------------------------------------------------

    def _resume_at(self) -> StartAt:
        return AfterSequence(self.last_read) if self.last_read is not None else self.start

    async def _read_loop(self) -> bool:
        """Read until the shard ends (True) or stopping (False).

        While one reply's records are handed to the lanes, the next GetRecords is already on its
        way when more is waiting (one call in flight per shard, as Lambda's reader has): handing
        over waits on the lanes, and without it reading and processing would take turns instead
        of overlapping. So at most two replies are in hand: the one being handed over, and the next.
        """
        ahead = _ReadAhead()
        try:
            return await self._read_until_done(ahead)
        finally:
            await ahead.discard()

    async def _read_until_done(self, ahead: _ReadAhead) -> bool:
        source, api = self.source, self.source.api
        # As many records per call as the API gives (as Lambda reads): a small Limit caps a shard's
        # throughput at the API's call rate. The lanes' bounded queues still pause reading.
        limit = api.max_read_records
        iterator: str | None = None
        failures = 0
        while not source.stopping.is_set():
            try:
                if ahead.pending:
                    result = await ahead.take()
                else:
                    if iterator is None:
                        iterator = await api.iterator(self.shard_id, self._resume_at())
                        # Listed in /status once reading has a position: LATEST is fixed from here on.
                        self._publish_position(reading=True)
                    result = await api.read(self.shard_id, iterator, limit)
            except (IteratorExpired, PositionTrimmed, ReadThrottled, ClientError, BotoCoreError) as exc:
                failures += 1
                keep_iterator, stopped = await self._read_failed(exc, failures)
                if stopped:
                    return False
                iterator = iterator if keep_iterator else None
                continue
            failures = 0
            iterator = result.next_iterator
            caught_up = result.behind_ms == 0 if result.behind_ms is not None else len(result.items) < limit
            if iterator is not None and result.items and not caught_up and not self._ends_after(result.items):
                ahead.start(api.read(self.shard_id, iterator, limit))
            await self._take(result.items)
            if result.items:
                source.record_age(
                    self.shard_id, source.clock.wall() - result.items[-1].ref.arrival_epoch_seconds
                )
            else:
                # Nothing new: caught up, or as far behind as Kinesis says.
                source.record_age(self.shard_id, (result.behind_ms or 0) / 1000)
            if iterator is None or self._read_to_end(not result.items):
                return True
            if not ahead.pending and await source.sleep_unless_stopping(api.idle_poll_seconds):
                return False
        return False

    async def _read_failed(self, exc: Exception, failures: int) -> tuple[bool, bool]:
        """Account for a failed read: (whether the iterator still holds, whether stopping cut the
        wait short)."""
        source = self.source
        match exc:
            case IteratorExpired():
                return False, False
            case PositionTrimmed():
                # The checkpoint left the retention period: its records are gone (spec §5.2).
                self.log.warning("position_trimmed", position=str(self._resume_at()), error=str(exc))
                self.last_read, self.start = None, TrimHorizon()
                return False, False
        source.metrics.poll_errors.inc()
        delay = source.read_backoff(failures)
        self.log.warning("read_failed", error=str(exc)[:300], failures=failures, retry_in_s=round(delay, 2))
        stopped = await source.sleep_unless_stopping(delay)
        return isinstance(exc, ReadThrottled), stopped

    def _ends_after(self, items: Sequence[StreamItem]) -> bool:
        """Whether `items` reach the end of a closed shard (so there is nothing to read ahead)."""
        shard = self.source.shards.get(self.shard_id)
        if not items or shard is None or shard.ending_sequence_number is None:
            return False
        return int(items[-1].ref.sequence_number) >= int(shard.ending_sequence_number)

    def _read_to_end(self, empty_read: bool) -> bool:
        """A closed shard read past its EndingSequenceNumber (some emulators never end the iterator)."""
        shard = self.source.shards.get(self.shard_id)
        if not empty_read or shard is None or shard.ending_sequence_number is None:
            return False
        return self.last_read is not None and int(self.last_read) >= int(shard.ending_sequence_number)

    async def _take(self, items: Sequence[StreamItem]) -> None:
        source = self.source
        metrics = source.metrics
        lanes = len(self.lanes)
        filters = source.filters
        for item in items:
            metrics.records_polled.inc()
            ticket = self.progress.read(item.ref.sequence_number)
            self.last_read = item.ref.sequence_number
            if filters is not None and not filters.matches(
                record_view(source.mapping.source_kind, item.record)
            ):
                # spec §7.5: skipped, and the checkpoint moves past it with its neighbours.
                metrics.records_filtered.inc()
                self.progress.complete(ticket)
                continue
            lane = self.lanes[zlib.crc32(item.lane_key.encode()) % lanes if lanes > 1 else 0]
            await lane.queue.put(Tracked(item, ticket))
            metrics.buffered_records.inc()
        await self.commit()

    # -- checkpointing -------------------------------------------------------------------------

    def complete(self, tracked: Sequence[Tracked]) -> None:
        for entry in tracked:
            self.progress.complete(entry.ticket)

    async def commit(self) -> None:
        """Persist the finished prefix if it moved; lanes call this concurrently."""
        async with self.commit_lock:
            watermark = self.progress.watermark
            if watermark is None or watermark == self.stored:
                return
            if await self._put_checkpoint(watermark, shard_end=False):
                self.stored = watermark
                self._publish_position(reading=True)

    async def _put_checkpoint(self, sequence_number: str | None, *, shard_end: bool) -> bool:
        """False if the store cannot take it now: the next commit tries again (a crash meanwhile
        redelivers from the last one stored, as at-least-once allows)."""
        source = self.source
        checkpoint = StoredCheckpoint(source.mapping.name, self.shard_id, sequence_number, shard_end)
        try:
            await source.store.put(checkpoint)
        except STORE_ERRORS as exc:
            source.metrics.ack_failures["checkpoint"].inc()
            self.log.warning("checkpoint_failed", position=sequence_number, error=str(exc)[:300])
            return False
        return True

    def _publish_position(self, *, reading: bool) -> None:
        self.source.status.positions[self.shard_id] = {
            "SequenceNumber": self.progress.watermark,
            "LastReadSequenceNumber": self.last_read,
            "IteratorAgeSeconds": round(self.source.ages.get(self.shard_id, 0.0), 3),
            "Finished": not reading,
        }


class Lane:
    """One of a shard's ParallelizationFactor lanes: one batch at a time, in order."""

    def __init__(self, worker: ShardWorker, index: int, queue: asyncio.Queue[Tracked | _End]) -> None:
        self.worker = worker
        self.index = index
        self.queue = queue
        self.carry: Tracked | None = None
        self.closing = False
        self.window_opened = worker.source.clock.monotonic()

    def abandon(self) -> int:
        """Empty the stopped lane; how many records it still held."""
        held = [self.carry, *(self.queue.get_nowait() for _ in range(self.queue.qsize()))]
        self.carry = None
        return sum(isinstance(entry, Tracked) for entry in held)

    def close(self) -> None:
        """The reader stopped: finish what is queued, unless stopping (then it is abandoned)."""
        try:
            self.queue.put_nowait(END)
        except asyncio.QueueFull:
            self.closing = True  # the lane is busy, not waiting: it sees the flag before its next get

    async def run(self) -> None:
        source = self.worker.source
        while not source.stopping.is_set():
            batch = await self._gather()
            if batch is None or not await self._process(batch):
                return
            # spec §2: with a window, the next one opens when the previous invocation completes.
            self.window_opened = source.clock.monotonic()

    async def _next(self, timeout: float | None) -> Tracked | _End | None:
        if self.carry is not None:
            carried, self.carry = self.carry, None
            return carried
        if self.closing and self.queue.empty():
            return END
        try:
            if timeout is None:
                return await self.queue.get()
            if timeout <= 0:
                return self.queue.get_nowait()
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except (asyncio.QueueEmpty, TimeoutError):
            return None

    async def _gather(self) -> list[Tracked] | None:
        """The next batch: BatchSize, the 6 MB cap or the window, whichever comes first (spec §2).
        None once the lane is closed and empty."""
        source = self.worker.source
        clock = source.clock
        first = await self._next(None)
        if not isinstance(first, Tracked):
            self.closing = True
            return None
        builder = BatchBuilder(source.limits, started_at=self.window_opened)
        batch = [first]
        builder.add(first.item.ref.size_bytes)
        try:
            while builder.full_reason(None) is None:
                wait = 0.0 if source.limits.window_seconds == 0 else builder.deadline() - clock.monotonic()
                following = await self._next(max(wait, 0.0))
                if following is None:
                    break
                if isinstance(following, _End):
                    self.closing = True
                    break
                if not builder.fits(following.item.ref.size_bytes):
                    self.carry = following
                    break
                batch.append(following)
                builder.add(following.item.ref.size_bytes)
        finally:
            # Also when cancelled while the window is open: the gathered records leave the lane.
            source.metrics.buffered_records.dec(len(batch))
        return batch

    async def _process(self, batch: list[Tracked]) -> bool:
        """Drive one batch to the end (spec §5.2); False if stopping abandoned it unfinished."""
        worker = self.worker
        source = worker.source
        by_sequence = {entry.item.ref.sequence_number: entry for entry in batch}
        process = StreamBatchProcess(
            [entry.item.ref for entry in batch], source.policy, retention_seconds=source.retention_seconds
        )
        batch_id = f"{worker.shard_id[-12:]}-{batch[0].item.ref.sequence_number[-12:]}"
        source.metrics.in_flight_batches.inc()
        try:
            while True:
                match process.next_decision(source.clock.wall()):
                    case Invoke(records=records, attempt=attempt):
                        if source.stopping.is_set():
                            return False
                        entries = [by_sequence[r.sequence_number] for r in records]
                        payload = encode_stream_event([e.item.encoded for e in entries])
                        result = await source.invoker.invoke(
                            payload,
                            [r.sequence_number for r in records],
                            attempt=attempt,
                            batch_id=batch_id,
                            log_fields={
                                "mapping": source.mapping.name,
                                "shard": worker.shard_id,
                                "lane": self.index,
                                "first": records[0].sequence_number,
                                "last": records[-1].sequence_number,
                            },
                        )
                        used = process.record_result(result.outcome, result.result)
                        source.status.record_result(isinstance(used, BatchSucceeded))
                    case Backoff(seconds=seconds):
                        if await source.sleep_unless_stopping(seconds * random.uniform(0.8, 1.2)):
                            return False
                    case SendToDestination(records=records) as discard:
                        events = [by_sequence[r.sequence_number].item.encoded for r in records]
                        if not await source.failures.send(discard, shard_id=worker.shard_id, events=events):
                            return False
                    case Checkpoint(after_sequence_number=after):
                        done = [e for e in batch if int(e.item.ref.sequence_number) <= int(after)]
                        worker.complete(done)
                        await worker.commit()
                    case Done():
                        return True
        finally:
            source.metrics.in_flight_batches.dec()


class _ReadAhead:
    """At most one GetRecords started ahead of time, owned by the shard's reader."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: asyncio.Task[ReadResult] | None = None

    @property
    def pending(self) -> bool:
        return self._task is not None

    def start(self, read: Coroutine[Any, Any, ReadResult]) -> None:
        self._task = asyncio.create_task(read)

    async def take(self) -> ReadResult:
        task, self._task = self._task, None
        assert task is not None
        return await task

    async def discard(self) -> None:
        """Stopping, or the reply in hand could not be handed over: the read ahead is moot."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # retrieved, so asyncio does not report it as never retrieved
