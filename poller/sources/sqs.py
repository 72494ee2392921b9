"""The SQS source: Lambda's SQS poller (spec §3.1, §4, §5.1, §9.1).

Receive loops long-poll the queue into a bounded local buffer; one dispatcher gathers batches
(BatchSize, window, 6 MB) whenever a concurrency slot is free and runs each as a task; a keeper
extends the visibility of messages still in hand before it runs out. Retrying and dead-lettering
are the queue's: a failed message is simply not deleted, reappears after its visibility timeout,
and the queue's redrive policy moves it to its DLQ (the engine never copies it there).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from poller.config import SqsMapping
from poller.core.batch_result import BatchFailed, BatchNotInvoked, BatchPartiallyFailed, BatchSucceeded
from poller.core.batching import BatchBuilder, BatchLimits
from poller.core.clock import Clock
from poller.core.filtering import FilterSet, compile_filters, sqs_view
from poller.core.message_buffer import MessageBuffer
from poller.core.scaling import ConcurrencyScaler, backoff_seconds
from poller.core.sqs_event import EVENT_OVERHEAD, SqsMessage, build_record, encode_event, from_record
from poller.dispatch.invoker import Invoker
from poller.errors import SourceUnavailable, first_error
from poller.observability.metrics import MappingMetrics
from poller.observability.status import MappingStatus
from poller.sources import sqs_calls
from poller.sources.sqs_visibility_keeper import VisibilityKeeper

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import ReceiveMessageResultTypeDef

BUFFER_CAPACITY = 100
"""Messages held between receive and invoke; small, because their visibility timers are running."""
MAX_RECEIVERS = 10
RECEIVE_WAIT_SECONDS = 20


class SqsSource:
    kind = "sqs"

    def __init__(
        self,
        mapping: SqsMapping,
        *,
        client: SQSClient,
        invoker: Invoker,
        metrics: MappingMetrics,
        status: MappingStatus,
        clock: Clock,
    ) -> None:
        self.mapping = mapping
        self.client = client
        self.invoker = invoker
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.log = structlog.get_logger("poller.sqs").bind(mapping=mapping.name)
        self.buffer = MessageBuffer(BUFFER_CAPACITY)
        self.scaler = ConcurrencyScaler.for_mapping(
            mapping.maximum_concurrency, mapping.minimum_pollers, mapping.maximum_pollers
        )
        self.limits = BatchLimits(
            batch_size=mapping.batch_size,
            window_seconds=mapping.maximum_batching_window_seconds,
            envelope_bytes=EVENT_OVERHEAD,
        )
        # Compiled once per mapping; the loader has already refused invalid patterns (spec §7.6).
        self.filters: FilterSet | None = (
            compile_filters(mapping.filter_patterns, source="sqs") if mapping.filter_patterns else None
        )
        self.keeper = VisibilityKeeper(mapping, client=client, metrics=metrics, clock=clock)
        self.in_flight = 0
        self.forming = 0
        # One lock, two conditions: receive loops wait for room in the buffer, the dispatcher for
        # messages it may take and a free slot; each wakes only those whose wait may be over.
        self.lock = asyncio.Lock()
        self.room = asyncio.Condition(self.lock)
        self.work = asyncio.Condition(self.lock)
        self.polling: set[asyncio.Task[object]] = set()
        """Receive loops inside a ReceiveMessage call: `stop` cancels their long polls."""
        self.stopping = asyncio.Event()
        self.queue_url = ""
        self.receivers = 0
        self.last_receive_full = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop receiving and gathering; batches in flight run on (the drain's first phase)."""
        self.stopping.set()
        for task in self.polling:
            task.cancel()
        async with self.lock:
            self.room.notify_all()
            self.work.notify_all()

    async def run(self) -> None:
        info = await sqs_calls.describe_queue(self.client, self.mapping.queue_name, self.mapping.account_id)
        self.queue_url = info.url
        self.keeper.configure_checked(info.url, info.visibility_timeout_seconds)
        self.status.running()
        self.log.info("mapping_started", queue=self.mapping.queue_name, concurrency=self.scaler.target)
        try:
            async with asyncio.TaskGroup() as outer:
                keeper = outer.create_task(self.keeper.run())
                async with asyncio.TaskGroup() as work:
                    work.create_task(self._receive_manager(work))
                    work.create_task(self._dispatch_loop(work))
                keeper.cancel()
        except ExceptionGroup as group:
            raise first_error(group) from group
        finally:
            await self._give_back_all()

    # -- receiving -----------------------------------------------------------------------------

    async def _receive_manager(self, group: asyncio.TaskGroup) -> None:
        """Keeps as many receive loops running as the scaler's target calls for."""
        while not self.stopping.is_set():
            backlog = len(self.buffer) > 0 or self.last_receive_full
            target = self.scaler.observe(self.clock.monotonic(), backlog=backlog, busy=self.in_flight)
            wanted = max(1, min(MAX_RECEIVERS, target))
            while self.receivers < wanted:
                self.receivers += 1
                group.create_task(self._receive_loop(self.receivers))
            await self._wait_stopping(1.0)

    async def _wait_stopping(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        except TimeoutError:
            return False
        return True

    async def _receive_loop(self, index: int) -> None:
        failures = 0
        try:
            while not self.stopping.is_set() and index <= max(1, min(MAX_RECEIVERS, self.scaler.target)):
                async with self.room:
                    await self.room.wait_for(lambda: self.stopping.is_set() or self.buffer.has_room_for(10))
                if self.stopping.is_set():
                    return
                try:
                    messages = await self._receive_once()
                except SourceUnavailable as exc:  # SourceNotFound propagates: the supervisor restarts
                    failures += 1
                    self.metrics.poll_errors.inc()
                    delay = backoff_seconds(failures) * random.uniform(0.5, 1.0)
                    self.log.warning("poll_failed", error=str(exc)[:300], retry_in_s=round(delay, 2))
                    await self._wait_stopping(delay)
                    continue
                failures = 0
                if messages:
                    await self._accept(messages)
        finally:
            self.receivers -= 1

    async def _receive_once(self) -> list[SqsMessage]:
        try:
            reply = await self._long_poll()
        except (ClientError, BotoCoreError) as exc:
            raise sqs_calls.translate(exc) from exc
        if reply is None:
            return []
        raw = reply.get("Messages", [])
        self.last_receive_full = len(raw) >= 10
        received_at = self.clock.monotonic()
        out: list[SqsMessage] = []
        filtered: list[tuple[str, str]] = []
        for raw_message in raw:
            record = build_record(
                raw_message,
                queue_arn=self.mapping.event_source_arn,
                region=self.mapping.region,
                batching_window_seconds=self.mapping.maximum_batching_window_seconds,
            )
            if self.filters is not None and not self.filters.matches(sqs_view(record)):
                filtered.append((record["messageId"], record["receiptHandle"]))
                continue
            out.append(from_record(record))
        self.keeper.hold(out, received_at)
        if filtered:
            # spec §5.1 item 2, §7.5: messages that match no filter are deleted at once, unseen.
            await self._delete_handles(filtered)
            self.metrics.records_filtered.inc(len(filtered))
        self.metrics.records_polled.inc(len(raw))
        return out

    async def _long_poll(self) -> ReceiveMessageResultTypeDef | None:
        """One ReceiveMessage; None if `stop` cut its long poll short (a message handed over in that
        instant is redelivered after its timeout). Other cancellations (the drain) go on up."""
        task = asyncio.current_task()
        assert task is not None
        self.polling.add(task)
        try:
            reply = await self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except asyncio.CancelledError:
            if self.stopping.is_set() and task.cancelling() == 1:
                task.uncancel()
                return None
            raise
        finally:
            self.polling.discard(task)
        return reply

    async def _accept(self, messages: list[SqsMessage]) -> None:
        async with self.room:
            await self.room.wait_for(
                lambda: self.stopping.is_set() or self.buffer.has_room_for(len(messages))
            )
            if not self.stopping.is_set():
                self.buffer.extend(messages)
                self._gauge_buffered()
                self.work.notify()
                return
        await self.keeper.give_back(messages)

    def _notify_room(self) -> None:
        """Wake as many waiting receive loops as the buffer has room for a full receive (at least
        one): waking them all would have most of them find no room and sleep again."""
        free = self.buffer.capacity - len(self.buffer)
        self.room.notify(max(1, free // 10))

    # -- batching and dispatch -------------------------------------------------------------------

    def _slot_free(self) -> bool:
        return self.in_flight < self.scaler.target

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
        batch_id = uuid.uuid4().hex[:16]
        payload = encode_event(batch)
        ids = [m.message_id for m in batch]
        fields = {
            "mapping": self.mapping.name,
            "queue": self.mapping.queue_name,
            "first": ids[0],
            "last": ids[-1],
        }
        failed_groups: set[str] = set()
        # The queue retries: a batch with a redelivered message (ApproximateReceiveCount > 1) is a
        # retry of a failed one; re-invokes after a throttle keep the number (they are not attempts).
        attempt = max(m.receive_count for m in batch)
        throttles = 0
        try:
            while True:
                result = (
                    await self.invoker.invoke(
                        payload, ids, attempt=attempt, log_fields=fields, batch_id=batch_id
                    )
                ).result
                match result:
                    case BatchSucceeded():
                        await self._delete(batch)
                    case BatchPartiallyFailed(failed_ids=failed_ids):
                        failed = set(failed_ids)
                        await self._delete([m for m in batch if m.message_id not in failed])
                        failed_groups = {m.group_id for m in batch if m.message_id in failed and m.group_id}
                    case BatchFailed():
                        failed_groups = set(groups)
                    case BatchNotInvoked(outcome=outcome):
                        throttles += 1
                        if await self._wait_before_reinvoke(batch, throttles, outcome.retry_after_seconds):
                            continue
                        failed_groups = set(groups)
                        await self.keeper.give_back(batch)
                break
        finally:
            await self._finish(batch, groups, failed_groups)

    async def _wait_before_reinvoke(
        self, batch: list[SqsMessage], throttles: int, retry_after: float | None
    ) -> bool:
        """After a throttle, back off and try again while the messages are surely ours (spec §5.1 item 6).

        The keeper goes on extending them, but the wait and a whole invoke must end within the
        visibility SQS confirmed, or the messages could be redelivered mid-invoke and run twice at
        once; checked again after the wait, in case an extension failed meanwhile. If not, the
        caller gives them back.
        """
        self.scaler.throttled(self.clock.monotonic())
        delay = (
            retry_after if retry_after is not None else backoff_seconds(throttles) * random.uniform(0.5, 1.0)
        )
        if self.stopping.is_set() or not self.keeper.reinvoke_fits(batch, delay):
            return False
        return not await self._wait_stopping(delay) and self.keeper.reinvoke_fits(batch, 0.0)

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

    async def _delete(self, messages: list[SqsMessage]) -> None:
        if messages:
            deleted = await self._delete_handles([(m.message_id, m.receipt_handle) for m in messages])
            self.metrics.records_deleted.inc(deleted)

    async def _delete_handles(self, handles: list[tuple[str, str]]) -> int:
        """Delete; a message SQS did not confirm is redelivered later, and counted here."""
        deleted = len(await sqs_calls.delete_messages(self.client, self.queue_url, handles))
        if failed := len(handles) - deleted:
            self.metrics.ack_failures["delete"].inc(failed)
        return deleted

    async def _give_back_all(self) -> None:
        pending = self.buffer.drain()
        self._gauge_buffered()
        if pending:
            await self.keeper.give_back_on_exit(pending)

    def _gauge_buffered(self, forming: int = 0) -> None:
        self.forming = forming
        self.metrics.buffered_records.set(len(self.buffer) + forming)
