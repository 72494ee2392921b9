"""One shard at work: its reader, its ParallelizationFactor lanes, and its checkpoint.

Records are checkpointed only once every record before them is finished too (`ShardProgress`),
whichever lane finished them, so a crash redelivers at most the batches in flight. A shard read to
its end is marked finished only once that is stored: its children wait for the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from poller.core.shard_progress import ShardProgress
from poller.core.tumbling_window import WindowTracker
from poller.sources.streams.api import AfterSequence, StartAt
from poller.sources.streams.context import STORE_ERRORS, StreamContext
from poller.sources.streams.lanes import Lane, Tracked
from poller.sources.streams.reader import ShardReader
from poller.sources.streams.windows import WindowLane
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
        window_seconds = context.mapping.tumbling_window_seconds
        self.windows = (
            WindowTracker(window_seconds, idle_close_seconds=context.window_idle_close_seconds)
            if window_seconds
            else None
        )
        """The shard's open tumbling window (spec §8); its state lives only in this worker's memory,
        so a restart or a lease moving starts the window again from the checkpoint, with empty state."""
        self.held = False
        self.hold_at: str | None = None
        """While `held`: the furthest position a commit may store, the record before the open window's
        first (spec §8: the checkpoint advances only after the window's final invocation succeeds)."""
        self.caught_up_at: float | None = None
        """Wall time at which the latest read that found nothing new started."""
        self.last_record_at: float | None = None
        """Wall time at which a record was last read."""
        lane_kind = Lane if self.windows is None else WindowLane
        self.lanes = [
            lane_kind(context, self, index, asyncio.Queue(context.lane_capacity))
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
        if ended and not context.stopping.is_set() and self.progress.outstanding == 0 and not self.held:
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

    def hold_checkpoint(self) -> None:
        """A window opens: commits store nothing of it until `release_checkpoint` (spec §8)."""
        self.held, self.hold_at = True, self.progress.watermark

    def release_checkpoint(self) -> None:
        """The window's final invocation succeeded (or the window was given up): commit freely."""
        self.held, self.hold_at = False, None

    def note_read(self, asked_at: float, *, records: bool, caught_up: bool) -> None:
        """A read that started at `asked_at` came back (what a window's close is judged on)."""
        if records:
            self.last_record_at = self.context.clock.wall()
        elif caught_up:
            self.caught_up_at = asked_at

    @property
    def position(self) -> str | None:
        """What the store holds, or should: the finished prefix, but never into an open window."""
        return self.hold_at if self.held else self.progress.watermark

    async def commit(self) -> None:
        """Persist the finished prefix if it moved; lanes call this concurrently."""
        async with self.commit_lock:
            watermark = self.position
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
            "SequenceNumber": self.position,
            "LastReadSequenceNumber": self.reader.last_read,
            "IteratorAgeSeconds": round(self.context.ages.get(self.shard_id, 0.0), 3),
            "Finished": not reading,
        }
        if self.windows is not None:
            opened = self.windows.open
            self.context.status.positions[self.shard_id]["TumblingWindow"] = (
                None if opened is None else opened.as_status()
            )
