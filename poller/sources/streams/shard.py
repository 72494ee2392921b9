"""One shard at work: its reader, its ParallelizationFactor lanes, and its checkpoint.

Records are checkpointed only once every record before them is finished too (`ShardProgress`),
whichever lane finished them, so a crash redelivers at most the batches in flight. A shard read to
its end is marked finished only once that is stored: its children wait for the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from poller.core.shard_progress import ShardProgress
from poller.sources.streams.api import AfterSequence, StartAt
from poller.sources.streams.context import STORE_ERRORS, StreamContext
from poller.sources.streams.lanes import Lane, Tracked
from poller.sources.streams.reader import ShardReader
from poller.state.base import Checkpoint as StoredCheckpoint


class ShardWorker:
    """One shard: a reader and ParallelizationFactor lanes, until the shard ends or stopping."""

    def __init__(self, context: StreamContext, shard_id: str, start: StartAt, finished: set[str]) -> None:
        self.context = context
        self.shard_id = shard_id
        self.finished = finished
        watermark = start.sequence_number if isinstance(start, AfterSequence) else None
        self.progress = ShardProgress(watermark=watermark)
        self.stored = watermark
        self.lanes = [
            Lane(context, self, index, asyncio.Queue(context.lane_capacity))
            for index in range(context.mapping.parallelization_factor)
        ]
        self.commit_lock = asyncio.Lock()
        self.log = context.log.bind(shard=shard_id)
        self.reader = ShardReader(context, self, start, last_read=watermark)

    async def run(self) -> None:
        context = self.context
        ended = False
        async with asyncio.TaskGroup() as group:
            for lane in self.lanes:
                group.create_task(lane.run())
            reader = group.create_task(self.reader.run())
            stop_watch = group.create_task(context.stopping.wait())
            await asyncio.wait({reader, stop_watch}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                stop_watch.cancel()
                ended = reader.result()
            else:
                reader.cancel()
            for lane in self.lanes:
                lane.close()
        if ended and not context.stopping.is_set() and self.progress.outstanding == 0:
            failures = 0  # children wait for this write: hold the shard until it is done
            while not await self._put_checkpoint(self.progress.watermark, shard_end=True):
                failures += 1
                if await context.sleep_unless_stopping(context.read_backoff(failures)):
                    return
            self.finished.add(self.shard_id)
            self.publish_position(reading=False)
            self.log.info("shard_finished", last_sequence_number=self.progress.watermark)

    def abandon(self) -> int:
        """Empty the stopped lanes; how many records they still held."""
        return sum(lane.abandon() for lane in self.lanes)

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
                self.publish_position(reading=True)

    async def _put_checkpoint(self, sequence_number: str | None, *, shard_end: bool) -> bool:
        """False if the store cannot take it now: the next commit tries again (a crash meanwhile
        redelivers from the last one stored, as at-least-once allows)."""
        context = self.context
        checkpoint = StoredCheckpoint(context.mapping.name, self.shard_id, sequence_number, shard_end)
        try:
            await context.store.put(checkpoint)
        except STORE_ERRORS as exc:
            context.metrics.ack_failures["checkpoint"].inc()
            self.log.warning("checkpoint_failed", position=sequence_number, error=str(exc)[:300])
            return False
        return True

    def publish_position(self, *, reading: bool) -> None:
        self.context.status.positions[self.shard_id] = {
            "SequenceNumber": self.progress.watermark,
            "LastReadSequenceNumber": self.reader.last_read,
            "IteratorAgeSeconds": round(self.context.ages.get(self.shard_id, 0.0), 3),
            "Finished": not reading,
        }
