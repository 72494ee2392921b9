"""A shard's lane under tumbling windows (spec §8): batches that never span two windows, the state
carried from one invocation of a window to the next, and the window's final invocation.

The decisions are the pure core's (`poller.core.tumbling_window`, `poller.core.window_close`); every
invocation, the final one included, goes through the one driver (`poller.dispatch.driver`), so
retries, bisect, MaximumRecordAgeInSeconds, ReportBatchItemFailures and the on-failure destination
apply to a window's batches exactly as to any stream batch (spec §5.2). What windows add:

- the event carries `window`, `state`, `shardId`, `eventSourceARN`, `isFinalInvokeForWindow` and
  `isWindowTerminatedEarly`; a response without a `state` object is a failed invocation (spec §4.1);
- the shard's checkpoint is held at the record before the open window's first, and moves past the
  window only once its final invocation succeeded (or the window was given up to the destination);
- state lives in memory only: when the worker stops (drain, restart, a lease moving to another
  replica) the open window is abandoned and read again from the checkpoint, from its first record,
  with empty state. Never mixed between windows or shards, at least once (spec §8: "on retries they
  may be reprocessed").

Windows run with ParallelizationFactor 1 only (the loader refuses more), so a shard has one lane.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from poller.core.backoff import Backoff
from poller.core.batch_result import BatchPartiallyFailed, BatchSucceeded
from poller.core.batching import BatchLimits
from poller.core.outcome import NotInvoked, Succeeded
from poller.core.sqs_batch import Acknowledge, GiveBack, InvokeAll
from poller.core.stream_retry import Invoke, SendToDestination
from poller.core.tumbling_window import (
    EMPTY_STATE,
    STATE_LIMIT_BYTES,
    CloseReason,
    OpenWindow,
    Window,
    WindowInvocation,
    encode_window_event,
    response_state,
    window_classifier,
)
from poller.core.window_close import FinalInvokeProcess
from poller.dispatch.invoker import Attempt
from poller.sources.streams.context import StreamContext
from poller.sources.streams.failures import stream_delivery
from poller.sources.streams.lanes import Lane, LaneBatch, Tracked, _End

if TYPE_CHECKING:
    from poller.sources.streams.shard import ShardWorker

CLOSE_POLL_SECONDS: Final = 0.2
"""How often a lane whose window has ended looks again whether the shard is caught up."""


class WindowLane(Lane):
    def __init__(
        self, context: StreamContext, worker: ShardWorker, index: int, queue: asyncio.Queue[Tracked | _End]
    ) -> None:
        super().__init__(context, worker, index, queue)
        if worker.windows is None:
            raise ValueError("a window lane needs the shard's window tracker")
        self.tracker = worker.windows
        self.classifier = window_classifier(
            report_batch_item_failures=context.mapping.report_batch_item_failures
        )
        # The 6 MB cap counts the window's members with room for the largest state a batch may carry:
        # a state over 1 MB ends the window and is never sent (the tracker keeps the last one within it).
        empty = WindowInvocation(Window(0, 1), EMPTY_STATE, worker.shard_id, context.mapping.event_source_arn)
        reserve = empty.overhead_bytes() + STATE_LIMIT_BYTES
        self.limits = replace(context.limits, envelope_bytes=reserve)

    def batch_limits(self) -> BatchLimits:
        return self.limits

    def same_batch(self, first: Tracked, following: Tracked) -> bool:
        return self.tracker.same_window(first.item.ref, following.item.ref)

    def port_for(self, batch: list[Tracked]) -> LaneBatch:
        return WindowBatch(self, batch)

    def invocation(self, *, final: bool) -> WindowInvocation:
        return self.tracker.invocation(
            self.worker.shard_id, self.context.mapping.event_source_arn, final=final
        )

    async def run(self) -> None:
        context = self.context
        try:
            while not context.stopping.is_set():
                if not await self._step():
                    return
        finally:
            if self.tracker.open is not None:
                # Abandoned with the worker: read again from the checkpoint, with empty state.
                self.tracker.open = None
                context.metrics.tumbling_windows_open.dec()

    async def _step(self) -> bool:
        """One batch or one window close; False once the lane is done (closed, or stopping)."""
        context, tracker = self.context, self.tracker
        head = await self._next(self._wait_seconds())
        if head is None:
            reason = tracker.close_due(
                context.clock.wall(),
                caught_up_at=self.worker.caught_up_at,
                last_record_at=self.worker.last_record_at,
            )
            return reason is None or await self._close(reason)
        if isinstance(head, _End):
            self.closing = True
            # The reader stopped: at a closed shard's end (spec §8: the window closes), or stopping.
            if tracker.open is not None and not context.stopping.is_set():
                await self._close(CloseReason.SHARD_END)
            return False
        opened = tracker.open
        self.carry = head
        if opened is not None and not tracker.belongs_to_open(head.item.ref):
            # A later window's record, an earlier one's (see `poller.core.tumbling_window`), or the open
            # window was terminated early: it closes first, and the record opens its own, with `{}`.
            return await self._close(tracker.close_reason_for(head.item.ref))
        batch = await self._gather()
        if batch is None:
            return False
        if tracker.open is None:
            self.worker.hold_checkpoint()
            context.metrics.tumbling_windows_open.inc()
        tracker.take([entry.item.ref for entry in batch])
        self.worker.publish_position(reading=True)
        if not await self._process(batch):
            return False
        # spec §2: with a batching window, the next one opens when the previous invocation completes.
        self.window_opened = context.clock.monotonic()
        opened = tracker.open
        if opened is not None and opened.terminated_early:
            return await self._close(CloseReason.STATE_LIMIT)
        return True

    def _wait_seconds(self) -> float | None:
        """How long to wait for a record before looking whether the open window closes."""
        until_end = self.tracker.seconds_until_end(self.context.clock.wall())
        if until_end is None:
            return None
        return until_end if until_end > 0 else CLOSE_POLL_SECONDS

    async def _close(self, reason: CloseReason) -> bool:
        """Make the open window's final invocation (spec §8); False if stopping abandoned it."""
        context = self.context
        opened = self.tracker.open
        if opened is None:
            raise RuntimeError("no window to close")
        process = FinalInvokeProcess(opened, context.policy, retention_seconds=context.retention_seconds)
        context.metrics.in_flight_batches.inc()
        try:
            if not await context.driver.drive(process, FinalInvocation(self, opened, reason)):
                return False
        finally:
            context.metrics.in_flight_batches.dec()
        self.tracker.closed()
        context.metrics.tumbling_windows_open.dec()
        self.worker.log.info(
            "window_closed",
            window_start=opened.window.as_json()["start"],
            reason=str(reason),
            records=opened.records,
            invocations=opened.invocations,
            final_attempts=process.attempts,
        )
        self.worker.publish_position(reading=True)
        return True


class WindowBatch(LaneBatch):
    """A batch of one window: its event carries the window and state; its response's state is kept."""

    lane: WindowLane

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt:
        lane = self.lane
        records = (
            decision.records if isinstance(decision, Invoke) else [entry.item.ref for entry in self.batch]
        )
        invocation = lane.invocation(final=False)
        attempt = await self.context.invoker.invoke(
            encode_window_event(self._events(records), invocation),
            [r.sequence_number for r in records],
            attempt=decision.attempt,
            batch_id=self.batch_id,
            log=lane.batch_log,
            log_fields={
                "first": records[0].sequence_number,
                "last": records[-1].sequence_number,
                "window_start": invocation.window.as_json()["start"],
            },
            classifier=lane.classifier,
        )
        if not isinstance(attempt.outcome, NotInvoked):
            lane.tracker.invoked(_kept_state(attempt))
            self.worker.publish_position(reading=True)
        return attempt


def _kept_state(attempt: Attempt) -> bytes | None:
    """The state to carry: what an invocation that did not fail returned (spec §8)."""
    if isinstance(attempt.result, BatchSucceeded | BatchPartiallyFailed) and isinstance(
        attempt.outcome, Succeeded
    ):
        return response_state(attempt.outcome.payload)[0]
    return None


class FinalInvocation:
    """A window's final invocation, as the driver's `BatchPort`."""

    def __init__(self, lane: WindowLane, opened: OpenWindow, reason: CloseReason) -> None:
        self.lane = lane
        self.context = lane.context
        self.worker = lane.worker
        self.opened = opened
        self.reason = reason
        self.batch_id = f"{self.worker.shard_id[-12:]}-w{opened.window.start}"

    def _event(self) -> bytes:
        return encode_window_event([], self.lane.invocation(final=True))

    def may_invoke(self) -> bool:
        return not self.context.stopping.is_set()

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt:
        opened = self.opened
        return await self.context.invoker.invoke(
            self._event(),
            [],
            attempt=decision.attempt,
            batch_id=self.batch_id,
            log=self.lane.batch_log,
            log_fields={
                "window_start": opened.window.as_json()["start"],
                "final": True,
                "close_reason": str(self.reason),
                "terminated_early": opened.terminated_early,
            },
            classifier=self.lane.classifier,
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
                self.context.mapping,
                shard_id=shard_id,
                records=records,
                events=[],
                batch_size=self.opened.records,
                event=self._event(),
            ),
            log_fields={"shard": shard_id, "first": first, "last": last, "window": True},
            count=self.opened.records,
        )

    async def checkpoint(self, after_sequence_number: str) -> None:
        self.worker.release_checkpoint()
        await self.worker.commit()

    async def acknowledge(self, decision: Acknowledge) -> None:
        raise TypeError("a window is checkpointed, never acknowledged message by message")

    async def give_back(self, decision: GiveBack) -> None:
        raise TypeError("a window is never given back: its records stay in the stream")
