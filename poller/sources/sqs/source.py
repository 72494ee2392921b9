"""The SQS source: Lambda's SQS poller (spec §3.1, §4, §5.1, §9.1).

Receive loops (`receiver`) long-poll the queue into a bounded local buffer; the dispatch loop here
gathers batches (BatchSize, window, 6 MB) whenever a concurrency slot is free and runs each as a
task, its pure core (`poller.core.sqs_batch`) driven by the one dispatcher through `SqsBatchPort`;
a keeper (`visibility`) extends the visibility of messages still in hand before it runs out.
Retrying and dead-lettering are the queue's: a failed message is simply not deleted, reappears
after its visibility timeout, and the queue's redrive policy moves it to its DLQ (the engine never
copies it there).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import structlog

from poller.config import SqsMapping
from poller.core.backoff import Backoff
from poller.core.batch_result import BatchResult
from poller.core.batching import BatchBuilder, BatchLimits
from poller.core.clock import Clock
from poller.core.message_buffer import MessageBuffer
from poller.core.outcome import InvokeOutcome
from poller.core.scaling import ConcurrencyScaler
from poller.core.sqs_batch import Acknowledge, Finished, GiveBack, InvokeAll, SqsBatchProcess, SqsItem
from poller.core.sqs_event import EVENT_OVERHEAD, SqsMessage, encode_event
from poller.core.stream_retry import Invoke, SendToDestination
from poller.dispatch.driver import AnyDecision, Driver
from poller.dispatch.invoker import Attempt, Invoker
from poller.dispatch.pause import sleep_unless
from poller.errors import first_error
from poller.observability.metrics import MappingMetrics
from poller.observability.status import StatusReport
from poller.sources.sqs import calls
from poller.sources.sqs.receiver import Receivers
from poller.sources.sqs.visibility import VisibilityKeeper

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

BUFFER_CAPACITY = 100
"""Messages held between receive and invoke; small, because their visibility timers are running."""


class SqsSource:
    kind = "sqs"

    def __init__(
        self,
        mapping: SqsMapping,
        *,
        client: SQSClient,
        invoker: Invoker,
        metrics: MappingMetrics,
        status: StatusReport,
        clock: Clock,
    ) -> None:
        self.mapping = mapping
        self.client = client
        self.invoker = invoker
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.log = structlog.get_logger("poller.sqs").bind(mapping=mapping.name)
        self.batch_log = invoker.bound_log(mapping=mapping.name, queue=mapping.queue_name)
        self.buffer = MessageBuffer(BUFFER_CAPACITY)
        self.scaler = ConcurrencyScaler.for_mapping(
            mapping.maximum_concurrency, mapping.minimum_pollers, mapping.maximum_pollers
        )
        self.limits = BatchLimits(
            batch_size=mapping.batch_size,
            window_seconds=mapping.maximum_batching_window_seconds,
            envelope_bytes=EVENT_OVERHEAD,
        )
        self.keeper = VisibilityKeeper(mapping, client=client, metrics=metrics, clock=clock)
        # An SQS mapping has no LastProcessingResult (spec §1.2, §1.5): its attempts are not reported.
        self.driver = Driver(clock=clock, status=_NoProcessingResult())
        self.in_flight = 0
        # One lock, two conditions: receive loops wait for room in the buffer, the dispatcher for
        # messages it may take and a free slot; each wakes only those whose wait may be over.
        self.lock = asyncio.Lock()
        self.room = asyncio.Condition(self.lock)
        self.work = asyncio.Condition(self.lock)
        self.stopping = asyncio.Event()
        self.receivers = Receivers(
            mapping,
            client=client,
            keeper=self.keeper,
            scaler=self.scaler,
            metrics=metrics,
            clock=clock,
            buffer=self.buffer,
            room=self.room,
            work=self.work,
            stopping=self.stopping,
            busy=lambda: self.in_flight,
        )
        self.queue_url = ""

    # -- lifecycle -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop receiving and gathering; batches in flight run on (the drain's first phase)."""
        self.stopping.set()
        self.receivers.cut_long_polls()
        async with self.lock:
            self.room.notify_all()
            self.work.notify_all()

    async def run(self) -> None:
        info = await calls.describe_queue(self.client, self.mapping.queue_name, self.mapping.account_id)
        self.queue_url = info.url
        self.keeper.configure_checked(info.url, info.visibility_timeout_seconds)
        self.status.running()
        self.log.info("mapping_started", queue=self.mapping.queue_name, concurrency=self.scaler.target)
        try:
            async with asyncio.TaskGroup() as outer:
                keeper = outer.create_task(self.keeper.run())
                async with asyncio.TaskGroup() as work:
                    work.create_task(self.receivers.run(work, info.url))
                    work.create_task(self._dispatch_loop(work))
                keeper.cancel()
        except ExceptionGroup as group:
            raise first_error(group) from group
        finally:
            await self._give_back_all()

    # -- batching and dispatch -------------------------------------------------------------------

    def _slot_free(self) -> bool:
        return self.in_flight < self.scaler.target

    def _notify_room(self) -> None:
        """Wake as many waiting receive loops as the buffer has room for a full receive (at least
        one): waking them all would have most of them find no room and sleep again."""
        free = self.buffer.capacity - len(self.buffer)
        self.room.notify(max(1, free // 10))

    async def _dispatch_loop(self, group: asyncio.TaskGroup) -> None:
        while True:
            async with self.work:
                await self.work.wait_for(
                    lambda: self.stopping.is_set() or (self._slot_free() and self.buffer.has_eligible())
                )
                if self.stopping.is_set():
                    return
                # Claim the slot before the window opens, so a batch being gathered counts.
                self.in_flight += 1
            batch, lost = self.keeper.split_lost(await self._gather())
            if lost:
                await self._give_up(lost)
            if not batch:
                async with self.work:
                    self.in_flight -= 1
                continue
            self.metrics.in_flight_batches.set(self.in_flight)
            groups = {m.group_id for m in batch if m.group_id is not None}
            self.buffer.groups_in_flight |= groups
            group.create_task(self._process(batch, groups))

    async def _gather(self) -> list[SqsMessage]:
        """Gather one batch: its window opens now, when a slot is free (spec §2)."""
        builder = BatchBuilder(self.limits, started_at=self.clock.monotonic())
        batch: list[SqsMessage] = []
        async with self.work:
            while True:
                taken = len(batch)
                full = self.buffer.take(builder, batch)
                if len(batch) > taken:
                    self._notify_room()
                self._gauge_buffered(len(batch))
                if full or self.stopping.is_set():
                    break
                if self.limits.window_seconds <= 0:
                    if batch:
                        break
                    await self.work.wait_for(lambda: self.stopping.is_set() or self.buffer.has_eligible())
                    continue
                remaining = builder.deadline() - self.clock.monotonic()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        await self.work.wait_for(lambda: self.stopping.is_set() or self.buffer.has_eligible())
                except TimeoutError:
                    self.buffer.take(builder, batch)
                    break
            if self.stopping.is_set() and batch:
                # Shutting down before the invoke: these go back to the queue at once.
                self.buffer.put_back_front(batch)
                return []
        self._gauge_buffered()
        return batch

    async def _process(self, batch: list[SqsMessage], groups: set[str]) -> None:
        """Drive one batch through its core; whatever happens, release it (`_finish`)."""
        # The queue retries: a batch with a redelivered message (ApproximateReceiveCount > 1) is a
        # retry of a failed one; re-invokes after a throttle keep the number (they are not attempts).
        process = _Finishing(
            SqsBatchProcess(
                [SqsItem(m.message_id, m.group_id) for m in batch],
                attempt=max(m.receive_count for m in batch),
                report_batch_item_failures=self.mapping.report_batch_item_failures,
            )
        )
        try:
            await self.driver.drive(process, SqsBatchPort(self, batch))
        finally:
            await self._finish(batch, groups, set(process.failed_groups))

    async def _finish(self, batch: list[SqsMessage], groups: set[str], failed_groups: set[str]) -> None:
        """Release the batch's slot and groups; hand back what must not overtake a failed group."""
        self.keeper.release(batch)
        async with self.lock:
            overtakers = self.buffer.remove_groups(failed_groups) if failed_groups else []
            self.buffer.groups_in_flight -= groups
            self.in_flight -= 1
            self.metrics.in_flight_batches.set(self.in_flight)
            self._gauge_buffered()
            self._notify_room()
            self.work.notify()
        if overtakers:
            await self.keeper.give_back(overtakers)

    async def _give_up(self, lost: list[SqsMessage]) -> None:
        """Hand back messages whose visibility was not kept, and their FIFO groups' followers."""
        groups = {m.group_id for m in lost if m.group_id is not None}
        async with self.lock:
            followers = self.buffer.remove_groups(groups) if groups else []
            self._gauge_buffered()
        await self.keeper.give_back([*lost, *followers])

    async def _give_back_all(self) -> None:
        pending = self.buffer.drain()
        self._gauge_buffered()
        if pending:
            await self.keeper.give_back_on_exit(pending)

    def _gauge_buffered(self, forming: int = 0) -> None:
        """Buffered records, counting those of a batch being gathered."""
        self.metrics.buffered_records.set(len(self.buffer) + forming)


class SqsBatchPort:
    """What the dispatcher's driver does through the source for one batch (`BatchPort`)."""

    def __init__(self, source: SqsSource, batch: list[SqsMessage]) -> None:
        self.source = source
        self.batch = batch
        self.payload = encode_event(batch)
        self.ids = [m.message_id for m in batch]
        self.batch_id = uuid.uuid4().hex[:16]
        self.log_fields = {"first": self.ids[0], "last": self.ids[-1]}

    def may_invoke(self) -> bool:
        """Always: an SQS batch in flight runs on through a drain (the drain's first phase)."""
        return True

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt:
        if not isinstance(decision, InvokeAll):
            raise TypeError(f"an SQS batch is always invoked whole, not {decision!r}")
        return await self.source.invoker.invoke(
            self.payload,
            self.ids,
            attempt=decision.attempt,
            log=self.source.batch_log,
            log_fields=self.log_fields,
            batch_id=self.batch_id,
        )

    async def wait(self, seconds: float, backoff: Backoff) -> bool:
        """After a throttle, back off and try again while the messages are surely ours (spec §5.1 item 6).

        The keeper goes on extending them, but the wait and a whole invoke must end within the
        visibility SQS confirmed, or the messages could be redelivered mid-invoke and run twice at
        once; checked again after the wait, in case an extension failed meanwhile. If not, the
        core gives them back.
        """
        source = self.source
        source.scaler.throttled(source.clock.monotonic())
        if source.stopping.is_set() or not source.keeper.reinvoke_fits(self.batch, seconds):
            return False
        stopped = await sleep_unless(source.stopping, seconds)
        return not stopped and source.keeper.reinvoke_fits(self.batch, 0.0)

    async def send_to_destination(self, decision: SendToDestination) -> bool:
        raise TypeError("an SQS source has no on-failure destination: its DLQ is the queue's redrive policy")

    async def checkpoint(self, after_sequence_number: str) -> None:
        raise TypeError("an SQS source has no checkpoint: a message is done when it is deleted")

    async def acknowledge(self, decision: Acknowledge) -> None:
        done = self._messages(decision.message_ids)
        if done:
            source = self.source
            handles = [(m.message_id, m.receipt_handle) for m in done]
            deleted = await calls.delete_counted(source.client, source.queue_url, handles, source.metrics)
            source.metrics.records_deleted.inc(deleted)

    async def give_back(self, decision: GiveBack) -> None:
        await self.source.keeper.give_back(self._messages(decision.message_ids))

    def _messages(self, message_ids: tuple[str, ...]) -> list[SqsMessage]:
        wanted = set(message_ids)
        return [m for m in self.batch if m.message_id in wanted]


class _Finishing:
    """A core whose `Finished` is kept: the driver ends on it, and the source then needs its
    failed FIFO groups (empty if the batch ended otherwise, as when it was cancelled)."""

    def __init__(self, process: SqsBatchProcess) -> None:
        self.process = process
        self.failed_groups: frozenset[str] = frozenset()

    def next_decision(self, now_epoch: float) -> AnyDecision:
        decision = self.process.next_decision(now_epoch)
        if isinstance(decision, Finished):
            self.failed_groups = decision.failed_groups
        return decision

    def record_result(self, outcome: InvokeOutcome, result: BatchResult | None = None) -> BatchResult:
        return self.process.record_result(outcome, result)

    def cannot_wait(self) -> bool:
        return self.process.cannot_wait()


class _NoProcessingResult:
    def record_result(self, ok: bool) -> None:
        return None
