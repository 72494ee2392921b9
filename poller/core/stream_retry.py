"""The retry, bisect and record-age state machine of one stream batch (spec §5.2).

A Kinesis / DynamoDB Streams (or Kafka) source reads a batch, hands references to its records to a
`StreamBatchProcess`, and then only carries out what the process decides, until `Done`:

    process = StreamBatchProcess(refs, policy)
    while True:
        match process.next_decision(clock.wall()):
            case Invoke(records):            process.record_result(await target.invoke(event_of(records)))
            case Backoff(seconds):           await sleep(seconds + jitter)
            case SendToDestination() as d:   await destination.send(failure_record_of(d))
            case Checkpoint(sequence):       await store.checkpoint(shard, sequence)
            case Done():                     break

The rules, all of them in this file (spec §5.2, §4.2, §14 items 1–2):

- A batch is a queue of segments, processed strictly in order; at first the whole batch.
- Before every invoke, records older than `MaximumRecordAgeInSeconds` (or than the stream's
  retention) are split off with `RecordAgeExceeded`, and records too big for the payload with
  `MaximumPayloadSizeExceeded`; the rest is invoked. The invoke count reported for them is
  max(attempts, 1), as AWS reports 1 for records that were already expired when read.
- Success acknowledges the segment. A partial response whose lowest failed sequence number
  (compared as integers) is not the segment's first record acknowledges the records before it and
  makes the rest a new segment with a fresh attempt counter; with the first record failed it is a
  complete failure that never halves (bisect splits "at the returned sequence number").
- A complete failure with bisect on and more than one record splits the segment in two; the split
  is the retry, so it is not delayed and consumes no attempt, and each half counts its own attempts
  from zero (§14 item 1's recommendation: a single record follows `MaximumRetryAttempts` exactly).
- Otherwise a failure counts one attempt; beyond `MaximumRetryAttempts` (-1: never) the segment is
  sent with `RetryAttemptsExhausted` and the invoke count of attempts, i.e. MaximumRetryAttempts+1.
- A batch that never reached the function backs off (its Retry-After, if any, capped at the
  backoff maximum) and consumes no attempt.
- Records are only checkpointed after they were acknowledged or handed to the destination, so a
  `SendToDestination` always comes before the `Checkpoint` that passes its records.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from poller.core.backoff import Backoff, BackoffPolicy, BackoffReason
from poller.core.batch_result import (
    BatchFailed,
    BatchNotInvoked,
    BatchPartiallyFailed,
    BatchResult,
    BatchSucceeded,
    classify,
)
from poller.core.failure_records import FailureCondition
from poller.core.outcome import InvokeOutcome
from poller.core.stream_retry_types import (
    Checkpoint,
    Decision,
    Done,
    Invoke,
    RetryPolicy,
    SendToDestination,
    StreamRecordRef,
)

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "BackoffReason",
    "Checkpoint",
    "Decision",
    "Done",
    "FailureCondition",
    "Invoke",
    "RetryPolicy",
    "SendToDestination",
    "StreamBatchProcess",
    "StreamRecordRef",
    "whole_batch_first",
]


@dataclass(frozen=True, slots=True)
class _Segment:
    records: tuple[StreamRecordRef, ...]
    end_sequence_number: str
    """Where to checkpoint once the segment is finished: its last record as it was read, so that the
    checkpoint also passes records split off from it (or filtered out after it)."""


class StreamBatchProcess:
    """Drives one batch to completion (see the module docstring for the rules).

    `end_sequence_number` lets the final checkpoint pass records the source filtered out after the
    last delivered one; `retention_seconds` makes records that have left the stream's retention
    expire like `MaximumRecordAgeInSeconds` (the "until the record expires" of -1/-1);
    `payload_limit_bytes` splits off single records too large to invoke (Kafka).
    """

    def __init__(
        self,
        records: Sequence[StreamRecordRef],
        policy: RetryPolicy,
        *,
        end_sequence_number: str | None = None,
        retention_seconds: float | None = None,
        payload_limit_bytes: int | None = None,
    ) -> None:
        refs = tuple(records)
        _check_order(refs, end_sequence_number)
        end = end_sequence_number if end_sequence_number is not None else refs[-1].sequence_number
        self._policy = policy
        limits = [float(policy.maximum_record_age_seconds)] if policy.maximum_record_age_seconds != -1 else []
        limits += [retention_seconds] if retention_seconds is not None else []
        self._age_limit = min(limits) if limits else None
        self._payload_limit = payload_limit_bytes
        self._queue: deque[_Segment] = deque([_Segment(refs, end)] if refs else [])
        # A batch the filter emptied still moves the checkpoint past what was read (spec §5.2).
        self._pending: deque[Decision] = deque([] if refs else [Checkpoint(end)])
        self._in_flight: tuple[StreamRecordRef, ...] | None = None
        self._attempts = 0  # function runs of the head segment; resets whenever the segment changes
        self._throttles = 0  # consecutive not-invoked results, for the throttle backoff only
        self._last_outcome: InvokeOutcome | None = None
        self._acknowledged: list[StreamRecordRef] = []
        self._sent: list[StreamRecordRef] = []

    @property
    def acknowledged(self) -> tuple[StreamRecordRef, ...]:
        return tuple(self._acknowledged)

    @property
    def sent_to_destination(self) -> tuple[StreamRecordRef, ...]:
        return tuple(self._sent)

    def next_decision(self, now_epoch: float) -> Decision:
        """What to do next, at wall time `now_epoch` (record ages are judged at this instant)."""
        if self._in_flight is not None:
            raise RuntimeError("record_result() must follow an Invoke before the next decision")
        while not self._pending:
            if not self._queue:
                return Done(tuple(self._acknowledged), tuple(self._sent))
            if self._split_off_unsendable(now_epoch):
                continue
            self._in_flight = self._queue[0].records
            return Invoke(self._in_flight, self._attempts + 1)
        return self._pending.popleft()

    def record_result(self, outcome: InvokeOutcome, result: BatchResult | None = None) -> BatchResult:
        """Take the outcome of the last `Invoke` and decide what follows.

        `result` defaults to classifying `outcome` against the invoked sequence numbers (spec §4.2);
        a source whose item identifiers are not sequence numbers (Kafka) passes its own, mapped to
        them. Returns the result used, for metrics and logs.
        """
        records = self._in_flight
        if records is None:
            raise RuntimeError("record_result() without an Invoke in flight")
        self._in_flight = None
        if result is None:
            rbif = self._policy.report_batch_item_failures
            result = classify(outcome, {r.sequence_number for r in records}, report_batch_item_failures=rbif)
        match result:
            case BatchNotInvoked(outcome=not_invoked):
                self._throttles += 1
                self._pending.append(
                    self._policy.backoff.throttled(self._throttles, not_invoked.retry_after_seconds)
                )
            case BatchSucceeded() | BatchPartiallyFailed(failed_ids=()):
                # An empty failure list is a success (spec §4.2), whoever built the result.
                self._acknowledged.extend(records)
                self._finish_head()
            case BatchPartiallyFailed(failed_ids=failed_ids):
                self._count_run(outcome)
                self._on_partial_failure(records, failed_ids)
            case BatchFailed():
                self._count_run(outcome)
                self._on_failure(records, may_bisect=True)
        return result

    def cannot_wait(self) -> bool:
        """The driver could not wait out a `Backoff` (stopping): the batch is abandoned unfinished,
        to be read again from the last checkpoint. False: there is nothing else to do with it."""
        return False

    def _count_run(self, outcome: InvokeOutcome) -> None:
        self._attempts += 1
        self._throttles = 0
        self._last_outcome = outcome

    def _on_partial_failure(self, records: tuple[StreamRecordRef, ...], failed_ids: tuple[str, ...]) -> None:
        position = {r.sequence_number: i for i, r in enumerate(records)}
        if any(f not in position for f in failed_ids):
            # An identifier outside the batch fails the whole batch (spec §4.2).
            self._on_failure(records, may_bisect=True)
            return
        # Integers, not strings: "10" sorts before "9" as text (spec §3.2).
        first_failed = position[min(failed_ids, key=int)]
        if first_failed == 0:
            # Nothing before the failure to checkpoint: a complete failure (spec §4.2 notes).
            # Splitting "at the returned sequence number" leaves the whole batch, so no halving.
            self._on_failure(records, may_bisect=False)
            return
        self._acknowledged.extend(records[:first_failed])
        self._pending.append(Checkpoint(records[first_failed - 1].sequence_number))
        head = self._queue[0]
        self._queue[0] = _Segment(records[first_failed:], head.end_sequence_number)
        # The remainder behaves as a new batch with a fresh counter, retried at once (spec §5.2
        # SNAP: the last of 3 records, MaximumRetryAttempts 3, is delivered 1 + 1 + 3 times).
        self._attempts = 0

    def _on_failure(self, records: tuple[StreamRecordRef, ...], *, may_bisect: bool) -> None:
        if may_bisect and self._policy.bisect_on_function_error and len(records) > 1:
            head = self._queue.popleft()
            middle = len(records) // 2
            # Left half first: ordering requires it to finish before the right half starts.
            self._queue.appendleft(_Segment(records[middle:], head.end_sequence_number))
            self._queue.appendleft(_Segment(records[:middle], records[middle - 1].sequence_number))
            self._attempts = 0
            self._last_outcome = None
            return
        maximum = self._policy.maximum_retry_attempts
        if maximum != -1 and self._attempts > maximum:
            self._discard(records, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, self._attempts)
            self._finish_head()
            return
        self._pending.append(Backoff(self._policy.backoff.delay(self._attempts), "function_error"))

    def _split_off_unsendable(self, now_epoch: float) -> bool:
        """Discard the head segment's expired records, else its oversized ones; True if any."""
        head = self._queue[0]
        age_limit, payload_limit = self._age_limit, self._payload_limit
        if age_limit is not None:
            doomed = [now_epoch - r.arrival_epoch_seconds > age_limit for r in head.records]
            if any(doomed):
                self._split_off(head, doomed, FailureCondition.RECORD_AGE_EXCEEDED)
                return True
        if payload_limit is not None:
            doomed = [r.size_bytes > payload_limit for r in head.records]
            if any(doomed):
                self._split_off(head, doomed, FailureCondition.MAXIMUM_PAYLOAD_SIZE_EXCEEDED)
                return True
        return False

    def _split_off(self, head: _Segment, doomed: list[bool], condition: FailureCondition) -> None:
        out = tuple(r for r, d in zip(head.records, doomed, strict=True) if d)
        keep = tuple(r for r, d in zip(head.records, doomed, strict=True) if not d)
        # AWS reports 1 for records that never ran (spec §5.2 SNAP), else the head's runs so far.
        self._discard(out, condition, max(self._attempts, 1))
        if not keep:
            self._finish_head()
            return
        # Arrival order follows sequence order, so expired records normally form a prefix that
        # can be checkpointed now; any others are passed by the segment's own final checkpoint.
        leading = doomed.index(False)
        if leading:
            self._pending.append(Checkpoint(head.records[leading - 1].sequence_number))
        self._queue[0] = _Segment(keep, head.end_sequence_number)

    def _discard(self, records: tuple[StreamRecordRef, ...], condition: FailureCondition, count: int) -> None:
        self._sent.extend(records)
        self._pending.append(SendToDestination(records, condition, count, self._last_outcome))

    def _finish_head(self) -> None:
        head = self._queue.popleft()
        self._pending.append(Checkpoint(head.end_sequence_number))
        self._attempts = 0
        self._throttles = 0
        self._last_outcome = None


def whole_batch_first(
    policy: RetryPolicy,
    *,
    now_epoch: float,
    oldest_arrival_epoch_seconds: float,
    largest_record_bytes: int,
    retention_seconds: float | None = None,
    payload_limit_bytes: int | None = None,
) -> bool:
    """Whether a new `StreamBatchProcess` of a batch would first decide `Invoke(every record, 1)`
    at `now_epoch`: no record past its age limit, none too large to invoke.

    A source may then make that first attempt before building the machine, and build it only if
    the attempt is not a plain success (feeding it the attempt: `next_decision(now_epoch)` then
    `record_result`), which keeps per-record objects off the path of every batch that succeeds.
    """
    limits = [float(policy.maximum_record_age_seconds)] if policy.maximum_record_age_seconds != -1 else []
    limits += [retention_seconds] if retention_seconds is not None else []
    if limits and now_epoch - oldest_arrival_epoch_seconds > min(limits):
        return False
    return payload_limit_bytes is None or largest_record_bytes <= payload_limit_bytes


def _check_order(records: tuple[StreamRecordRef, ...], end_sequence_number: str | None) -> None:
    """Sequence numbers must be decimal and strictly increasing: "lowest failed" and every
    checkpoint rely on stream order (spec §5.2), so a misordered batch is a source bug."""
    if not records and end_sequence_number is None:
        raise ValueError("a batch without records needs an end_sequence_number to checkpoint")
    numbers = [r.sequence_number for r in records]
    for number in [*numbers, end_sequence_number or "0"]:
        if not (number.isascii() and number.isdigit()):
            raise ValueError(f"sequence number {number!r} is not a decimal integer")
    values = [int(n) for n in numbers]
    if any(a >= b for a, b in pairwise(values)):
        raise ValueError("records must be in strictly increasing sequence order")
    if values and end_sequence_number is not None and int(end_sequence_number) < values[-1]:
        raise ValueError("end_sequence_number precedes the last record")
