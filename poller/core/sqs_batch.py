"""What happens to one SQS batch after each invoke (spec §4, §5.1): the pure core of the SQS path.

The queue owns retries: a message that failed is simply not deleted and comes back after its
visibility timeout, and the queue's redrive policy dead-letters it. So the decisions here are few:
- success: delete every message (`Acknowledge`);
- a partial response: delete the ones not listed; the FIFO groups of the listed ones failed;
- a failure: delete nothing; every FIFO group of the batch failed;
- not invoked (throttled): wait (`Backoff`) and invoke again, the same attempt number, for as long
  as the driver can wait; when it cannot (stopping, or the messages would not stay invisible for
  the wait and a whole invoke), hand them back at once (`GiveBack`) and fail their groups.
Later messages of a failed FIFO group must not overtake it; the source hands those back when the
batch is `Finished`. Pure: the driver's port does every call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from poller.core.backoff import THROTTLE_BACKOFF, Backoff
from poller.core.batch_result import (
    BatchFailed,
    BatchNotInvoked,
    BatchPartiallyFailed,
    BatchResult,
    BatchSucceeded,
    classify,
)
from poller.core.outcome import InvokeOutcome


@dataclass(frozen=True, slots=True)
class SqsItem:
    """What the core needs of a message: its id (the `itemIdentifier`) and FIFO group."""

    message_id: str
    group_id: str | None


@dataclass(frozen=True, slots=True)
class InvokeAll:
    """Invoke the function with the whole batch, as formed (attempt numbers as in `Invoke`)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """Delete these messages: they are done."""

    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GiveBack:
    """Make these messages visible again now: received, never run by the function."""

    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    """The batch is over; later messages of `failed_groups` must not overtake it (FIFO)."""

    failed_groups: frozenset[str]


SqsDecision = InvokeAll | Backoff | Acknowledge | GiveBack | Finished


class SqsBatchProcess:
    """One SQS batch from its first invoke to `Finished`.

    `attempt` is the batch's highest ApproximateReceiveCount: a redelivered message makes the batch
    a retry of a failed one, and re-invokes after a throttle keep the number (they are not attempts).
    """

    def __init__(self, items: Sequence[SqsItem], *, attempt: int, report_batch_item_failures: bool) -> None:
        self._items = tuple(items)
        self._ids = tuple(item.message_id for item in self._items)
        self._groups = frozenset(item.group_id for item in self._items if item.group_id is not None)
        self._attempt = attempt
        self._report = report_batch_item_failures
        self._pending: deque[SqsDecision] = deque([InvokeAll(attempt)])
        self._in_flight = False
        self._throttles = 0

    def next_decision(self, now_epoch: float) -> SqsDecision:
        if self._in_flight:
            raise RuntimeError("record_result() must follow an InvokeAll before the next decision")
        decision = self._pending.popleft()
        if isinstance(decision, InvokeAll):
            self._in_flight = True
        return decision

    def record_result(self, outcome: InvokeOutcome, result: BatchResult | None = None) -> BatchResult:
        if not self._in_flight:
            raise RuntimeError("record_result() without an InvokeAll in flight")
        self._in_flight = False
        if result is None:
            result = classify(outcome, self._ids, report_batch_item_failures=self._report)
        match result:
            case BatchSucceeded():
                self._pending += [Acknowledge(self._ids), Finished(frozenset())]
            case BatchPartiallyFailed(failed_ids=failed_ids):
                failed = set(failed_ids)
                done = tuple(i.message_id for i in self._items if i.message_id not in failed)
                groups = frozenset(
                    i.group_id for i in self._items if i.message_id in failed and i.group_id is not None
                )
                self._pending += [Acknowledge(done), Finished(groups)]
            case BatchFailed():
                self._pending.append(Finished(self._groups))
            case BatchNotInvoked(outcome=not_invoked):
                self._throttles += 1
                wait = self._throttle_wait(not_invoked.retry_after_seconds)
                self._pending += [wait, InvokeAll(self._attempt)]
        return result

    def cannot_wait(self) -> bool:
        """The driver could not wait out the last `Backoff`: give the batch back instead."""
        self._pending.clear()
        self._pending += [GiveBack(self._ids), Finished(self._groups)]
        return True

    def _throttle_wait(self, retry_after: float | None) -> Backoff:
        return THROTTLE_BACKOFF.throttled(self._throttles, retry_after)
