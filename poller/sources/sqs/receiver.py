"""Receiving: long polls that fill the source's buffer (spec §3.1, §7.5, §9.1).

As many receive loops run as the scaler's target calls for (at most `MAX_RECEIVERS`); each waits
for room in the buffer, long-polls the queue, builds each message's Lambda record, deletes at once
what matches no filter, hands the rest to the visibility keeper and puts them in the buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from poller.config import SqsMapping
from poller.core.backoff import THROTTLE_BACKOFF
from poller.core.clock import Clock
from poller.core.filtering import FilterSet, compile_filters, sqs_view
from poller.core.message_buffer import MessageBuffer
from poller.core.scaling import ConcurrencyScaler
from poller.core.sqs_event import SqsMessage, build_record, from_record
from poller.dispatch.pause import sleep_unless
from poller.errors import SourceUnavailable
from poller.observability.metrics import MappingMetrics
from poller.sources.sqs import calls
from poller.sources.sqs.visibility import VisibilityKeeper

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import ReceiveMessageResultTypeDef

MAX_RECEIVERS = 10
RECEIVE_WAIT_SECONDS = 20
RECEIVE_MAX_MESSAGES = 10
"""The most SQS returns from one ReceiveMessage."""
SCALE_EVERY_SECONDS = 1.0


class Receivers:
    """The receive loops of one mapping, and the manager that scales their number.

    The buffer and its conditions are the source's (one lock: `room` for receive loops waiting to
    put, `work` for the dispatcher waiting to take); `busy` reads how many batches are in flight.
    """

    def __init__(
        self,
        mapping: SqsMapping,
        *,
        client: SQSClient,
        keeper: VisibilityKeeper,
        scaler: ConcurrencyScaler,
        metrics: MappingMetrics,
        clock: Clock,
        buffer: MessageBuffer,
        room: asyncio.Condition,
        work: asyncio.Condition,
        stopping: asyncio.Event,
        busy: Callable[[], int],
    ) -> None:
        self.mapping = mapping
        self.client = client
        self.keeper = keeper
        self.scaler = scaler
        self.metrics = metrics
        self.clock = clock
        self.buffer = buffer
        self.room = room
        self.work = work
        self.stopping = stopping
        self.busy = busy
        self.log = structlog.get_logger("poller.sqs").bind(mapping=mapping.name)
        # Compiled once per mapping; the loader has already refused invalid patterns (spec §7.6).
        self.filters: FilterSet | None = (
            compile_filters(mapping.filter_patterns, source="sqs") if mapping.filter_patterns else None
        )
        self.queue_url = ""
        self.running = 0
        self.last_receive_full = False
        self.polling: set[asyncio.Task[object]] = set()
        """Receive loops inside a ReceiveMessage call: `cut_long_polls` cancels them."""

    def cut_long_polls(self) -> None:
        """End the long polls under way (the source is stopping; see `_long_poll`)."""
        for task in self.polling:
            task.cancel()

    def _wanted(self) -> int:
        return max(1, min(MAX_RECEIVERS, self.scaler.target))

    async def run(self, group: asyncio.TaskGroup, queue_url: str) -> None:
        """Keep as many receive loops running in `group` as the scaler's target calls for."""
        self.queue_url = queue_url
        while not self.stopping.is_set():
            backlog = len(self.buffer) > 0 or self.last_receive_full
            self.scaler.observe(self.clock.monotonic(), backlog=backlog, busy=self.busy())
            while self.running < self._wanted():
                self.running += 1
                group.create_task(self._receive_loop(self.running))
            await sleep_unless(self.stopping, SCALE_EVERY_SECONDS)

    async def _receive_loop(self, index: int) -> None:
        failures = 0
        try:
            # A loop numbered above the target ends: that is how the scaler's step down takes effect.
            while not self.stopping.is_set() and index <= self._wanted():
                async with self.room:
                    await self.room.wait_for(
                        lambda: self.stopping.is_set() or self.buffer.has_room_for(RECEIVE_MAX_MESSAGES)
                    )
                if self.stopping.is_set():
                    return
                try:
                    messages = await self._receive_once()
                except SourceUnavailable as exc:  # SourceNotFound propagates: the supervisor restarts
                    failures += 1
                    self.metrics.poll_errors.inc()
                    delay = THROTTLE_BACKOFF.jittered(failures)
                    self.log.warning("poll_failed", error=str(exc)[:300], retry_in_s=round(delay, 2))
                    await sleep_unless(self.stopping, delay)
                    continue
                failures = 0
                if messages:
                    await self._accept(messages)
        finally:
            self.running -= 1

    async def _receive_once(self) -> list[SqsMessage]:
        try:
            reply = await self._long_poll()
        except (ClientError, BotoCoreError) as exc:
            raise calls.translate(exc) from exc
        if reply is None:
            return []
        raw = reply.get("Messages", [])
        self.last_receive_full = len(raw) >= RECEIVE_MAX_MESSAGES
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
            await calls.delete_counted(self.client, self.queue_url, filtered, self.metrics)
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
                MaxNumberOfMessages=RECEIVE_MAX_MESSAGES,
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
        """Put received messages in the buffer once there is room; if the source stops first, they
        go back to the queue."""
        async with self.room:
            await self.room.wait_for(
                lambda: self.stopping.is_set() or self.buffer.has_room_for(len(messages))
            )
            if not self.stopping.is_set():
                self.buffer.extend(messages)
                self.metrics.buffered_records.set(len(self.buffer))
                self.work.notify()
                return
        await self.keeper.give_back(messages)
