"""A shard's ParallelizationFactor lanes (spec §9.2): each gathers its next batch from its queue
and hands it to the dispatcher, one batch at a time, so every key (always in the same lane) stays
in order.

A batch is driven to its end by `poller.dispatch.driver.Driver` over the pure `StreamBatchProcess`
(spec §5.2); `LaneBatch` is what this source does for it: invoke with the stream event, wait unless
stopping, send discarded records to the on-failure destination, and checkpoint what is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from poller.core.backoff import Backoff
from poller.core.batching import BatchBuilder, BatchLimits
from poller.core.sqs_batch import Acknowledge, GiveBack, InvokeAll
from poller.core.stream_event import encode_stream_event
from poller.core.stream_retry import Invoke, SendToDestination, StreamBatchProcess, StreamRecordRef
from poller.dispatch.invoker import Attempt
from poller.sources.streams.api import StreamItem
from poller.sources.streams.context import StreamContext
from poller.sources.streams.failures import stream_delivery

if TYPE_CHECKING:
    from poller.sources.streams.shard import ShardWorker


@dataclass(slots=True)
class Tracked:
    item: StreamItem
    ticket: int


class _End:
    """Put into a lane's queue when its reader has stopped: finish what is queued, then return."""


END: Final = _End()


class Lane:
    """One of a shard's ParallelizationFactor lanes: one batch at a time, in order."""

    def __init__(
        self, context: StreamContext, worker: ShardWorker, index: int, queue: asyncio.Queue[Tracked | _End]
    ) -> None:
        self.context = context
        self.worker = worker
        self.index = index
        self.queue = queue
        self.carry: Tracked | None = None
        self.closing = False
        self.batch_log = context.invoker.bound_log(
            mapping=context.mapping.name, shard=worker.shard_id, lane=index
        )
        self.window_opened = context.clock.monotonic()

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
        context = self.context
        while not context.stopping.is_set():
            batch = await self._gather()
            if batch is None or not await self._process(batch):
                return
            # spec §2: with a window, the next one opens when the previous invocation completes.
            self.window_opened = context.clock.monotonic()

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
        context = self.context
        clock = context.clock
        first = await self._next(None)
        if not isinstance(first, Tracked):
            self.closing = True
            return None
        builder = BatchBuilder(self.batch_limits(), started_at=self.window_opened)
        batch = [first]
        builder.add(first.item.ref.size_bytes)
        try:
            while builder.full_reason(None) is None:
                wait = 0.0 if context.limits.window_seconds == 0 else builder.deadline() - clock.monotonic()
                following = await self._next(max(wait, 0.0))
                if following is None:
                    break
                if isinstance(following, _End):
                    self.closing = True
                    break
                if not builder.fits(following.item.ref.size_bytes) or not self.same_batch(first, following):
                    self.carry = following
                    break
                batch.append(following)
                builder.add(following.item.ref.size_bytes)
        finally:
            # Also when cancelled while the window is open: the gathered records leave the lane.
            context.metrics.buffered_records.dec(len(batch))
        return batch

    def batch_limits(self) -> BatchLimits:
        """The limits of the next batch (a windowed lane counts its window's members in the 6 MB)."""
        return self.context.limits

    def same_batch(self, first: Tracked, following: Tracked) -> bool:
        """Whether `following` may join the batch `first` opened (a windowed lane splits at window edges)."""
        return True

    def port_for(self, batch: list[Tracked]) -> LaneBatch:
        return LaneBatch(self, batch)

    async def _process(self, batch: list[Tracked]) -> bool:
        """Drive one batch to the end (spec §5.2); False if stopping abandoned it unfinished."""
        context = self.context
        process = StreamBatchProcess(
            [entry.item.ref for entry in batch], context.policy, retention_seconds=context.retention_seconds
        )
        context.metrics.in_flight_batches.inc()
        try:
            return await context.driver.drive(process, self.port_for(batch))
        finally:
            context.metrics.in_flight_batches.dec()


class LaneBatch:
    """One gathered batch, as the driver's `BatchPort`."""

    def __init__(self, lane: Lane, batch: list[Tracked]) -> None:
        self.lane = lane
        self.context = lane.context
        self.worker = lane.worker
        self.batch = batch
        self.by_sequence = {entry.item.ref.sequence_number: entry for entry in batch}
        self.batch_id = f"{self.worker.shard_id[-12:]}-{batch[0].item.ref.sequence_number[-12:]}"

    def _events(self, records: Sequence[StreamRecordRef]) -> list[bytes]:
        return [self.by_sequence[r.sequence_number].item.encoded for r in records]

    def may_invoke(self) -> bool:
        return not self.context.stopping.is_set()

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt:
        context = self.context
        records = (
            decision.records if isinstance(decision, Invoke) else [entry.item.ref for entry in self.batch]
        )
        return await context.invoker.invoke(
            encode_stream_event(self._events(records)),
            [r.sequence_number for r in records],
            attempt=decision.attempt,
            batch_id=self.batch_id,
            log=self.lane.batch_log,
            log_fields={"first": records[0].sequence_number, "last": records[-1].sequence_number},
        )

    async def wait(self, seconds: float, backoff: Backoff) -> bool:
        return not await self.context.sleep_unless_stopping(seconds)

    async def send_to_destination(self, decision: SendToDestination) -> bool:
        records = decision.records
        shard_id = self.worker.shard_id
        first, last = records[0].sequence_number, records[-1].sequence_number
        return await self.context.failures.send(
            decision,
            build=stream_delivery(
                self.context.mapping, shard_id=shard_id, records=records, events=self._events(records)
            ),
            log_fields={"shard": shard_id, "first": first, "last": last},
        )

    async def checkpoint(self, after_sequence_number: str) -> None:
        after = int(after_sequence_number)
        self.worker.complete([e for e in self.batch if int(e.item.ref.sequence_number) <= after])
        await self.worker.commit()

    async def acknowledge(self, decision: Acknowledge) -> None:
        raise TypeError("a stream batch is checkpointed, never acknowledged message by message")

    async def give_back(self, decision: GiveBack) -> None:
        raise TypeError("a stream batch is never given back: its records stay in the stream")
