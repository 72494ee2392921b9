"""A shard's reader: GetRecords into the shard's bounded lane queues, pausing when they are full.

It keeps one call in flight ahead of the lanes (`_ReadAhead`), re-creates an expired iterator from
the last record read (never re-reading), starts again at TRIM_HORIZON when its position has left
the stream's retention, and backs off after failed reads. Filtered records (spec §7.5) never reach
a lane: they are finished as soon as they are read.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from poller.core.filtering import record_view
from poller.sources.streams.api import (
    AfterSequence,
    IteratorExpired,
    PositionTrimmed,
    ReadResult,
    ReadThrottled,
    StartAt,
    StreamItem,
    TrimHorizon,
)
from poller.sources.streams.context import StreamContext
from poller.sources.streams.lanes import Tracked

if TYPE_CHECKING:
    from poller.sources.streams.shard import ShardWorker

EMPTY_READS_CAUGHT_UP: Final = 2
"""Without a behind figure (DynamoDB Streams), how many empty reads in a row count as caught up: one
empty page can come mid-stream while catching up from TRIM_HORIZON, and a tumbling window closed on
it early would split (spec §8)."""


class ShardReader:
    def __init__(
        self, context: StreamContext, worker: ShardWorker, start: StartAt, *, last_read: str | None
    ) -> None:
        self.context = context
        self.worker = worker
        self.shard_id = worker.shard_id
        self.start = start
        self.last_read = last_read
        self.log = worker.log

    def _resume_at(self) -> StartAt:
        return AfterSequence(self.last_read) if self.last_read is not None else self.start

    async def run(self) -> bool:
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
        context, api = self.context, self.context.api
        # As many records per call as the API gives (as Lambda reads): a small Limit caps a shard's
        # throughput at the API's call rate. The lanes' bounded queues still pause reading.
        limit = api.max_read_records
        iterator: str | None = None
        failures = 0
        empty_reads = 0
        ahead_asked = 0.0
        while not context.stopping.is_set():
            try:
                if ahead.pending:
                    asked = ahead_asked
                    result = await ahead.take()
                else:
                    if iterator is None:
                        iterator = await api.iterator(self.shard_id, self._resume_at())
                        # Listed in /status once reading has a position: LATEST is fixed from here on.
                        self.worker.publish_position(reading=True)
                    asked = context.clock.wall()
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
                ahead_asked = context.clock.wall()
                ahead.start(api.read(self.shard_id, iterator, limit))
            await self._take(result.items)
            empty_reads = 0 if result.items else empty_reads + 1
            # What a window's close is judged on: Kinesis says how far behind it is; DynamoDB does not.
            behind = result.behind_ms
            shard_caught_up = behind == 0 if behind is not None else empty_reads >= EMPTY_READS_CAUGHT_UP
            self.worker.note_read(asked, records=bool(result.items), caught_up=shard_caught_up)
            if result.items:
                context.record_age(
                    self.shard_id, context.clock.wall() - result.items[-1].ref.arrival_epoch_seconds
                )
            else:
                # Nothing new: caught up, or as far behind as Kinesis says.
                context.record_age(self.shard_id, (result.behind_ms or 0) / 1000)
            if iterator is None or self._read_to_end(not result.items):
                return True
            if not ahead.pending and await context.sleep_unless_stopping(api.idle_poll_seconds):
                return False
        return False

    async def _read_failed(self, exc: Exception, failures: int) -> tuple[bool, bool]:
        """Account for a failed read: (whether the iterator still holds, whether stopping cut the
        wait short)."""
        context = self.context
        match exc:
            case IteratorExpired():
                return False, False
            case PositionTrimmed():
                # The checkpoint left the retention period: its records are gone (spec §5.2).
                self.log.warning("position_trimmed", position=str(self._resume_at()), error=str(exc))
                self.last_read, self.start = None, TrimHorizon()
                return False, False
        context.metrics.poll_errors.inc()
        delay = context.read_backoff(failures)
        self.log.warning("read_failed", error=str(exc)[:300], failures=failures, retry_in_s=round(delay, 2))
        stopped = await context.sleep_unless_stopping(delay)
        return isinstance(exc, ReadThrottled), stopped

    def _ends_after(self, items: Sequence[StreamItem]) -> bool:
        """Whether `items` reach the end of a closed shard (so there is nothing to read ahead)."""
        shard = self.context.shards.get(self.shard_id)
        if not items or shard is None or shard.ending_sequence_number is None:
            return False
        return int(items[-1].ref.sequence_number) >= int(shard.ending_sequence_number)

    def _read_to_end(self, empty_read: bool) -> bool:
        """A closed shard read past its EndingSequenceNumber (some emulators never end the iterator)."""
        shard = self.context.shards.get(self.shard_id)
        if not empty_read or shard is None or shard.ending_sequence_number is None:
            return False
        return self.last_read is not None and int(self.last_read) >= int(shard.ending_sequence_number)

    async def _take(self, items: Sequence[StreamItem]) -> None:
        context, worker = self.context, self.worker
        metrics = context.metrics
        progress = worker.progress
        lanes = worker.lanes
        count = len(lanes)
        filters = context.filters
        for item in items:
            metrics.records_polled.inc()
            ticket = progress.read(item.ref.sequence_number)
            self.last_read = item.ref.sequence_number
            if filters is not None and not filters.matches(
                record_view(context.mapping.source_kind, item.record)
            ):
                # spec §7.5: skipped, and the checkpoint moves past it with its neighbours.
                metrics.records_filtered.inc()
                progress.complete(ticket)
                continue
            lane = lanes[zlib.crc32(item.lane_key.encode()) % count if count > 1 else 0]
            await lane.queue.put(Tracked(item, ticket))
            metrics.buffered_records.inc()
        await worker.commit()


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
