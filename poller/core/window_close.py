"""The final invocation of a tumbling window (spec §8), as a pure process the one driver runs.

    process = FinalInvokeProcess(window, policy)
    driver.drive(process, port)   # Invoke → (Backoff → Invoke)* → [SendToDestination] → Checkpoint → Done

The final invocation carries no records (the spec leaves its records UNVERIFIED: every record of
the window has already been invoked by then) and the window's last state. The window's records are
checkpointed only once it succeeds (spec §8: "after it succeeds the checkpoint advances"); while it
fails the shard waits, under the normal retry policy (spec §5.2):

- a throttle or an unreachable function backs off without consuming an attempt;
- a function error (or a response without `state`) consumes one; beyond `MaximumRetryAttempts`
  (-1: never) the window is given up with `RetryAttemptsExhausted`;
- after a failed attempt or a throttle, once the window's newest record is older than
  `MaximumRecordAgeInSeconds` (or the stream's retention), the window is given up with
  `RecordAgeExceeded` (spec §4.1, §5.2: throttles do not consume attempts, but records still
  expire, so a function throttled forever does not hold the shard forever). The first attempt is
  always made: a window is usually longer than the record age, so judging it before would discard
  windows that never failed.

Giving up sends one on-failure record describing the window's records (first to last) and then
checkpoints past them, as a discarded batch is (spec §5.2, §6.2).
"""

from __future__ import annotations

from collections import deque

from poller.core.batch_result import BatchNotInvoked, BatchResult, BatchSucceeded, classify
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
from poller.core.tumbling_window import OpenWindow


class FinalInvokeProcess:
    def __init__(
        self, window: OpenWindow, policy: RetryPolicy, *, retention_seconds: float | None = None
    ) -> None:
        self.window = window
        self._policy = policy
        limits = [float(policy.maximum_record_age_seconds)] if policy.maximum_record_age_seconds != -1 else []
        limits += [retention_seconds] if retention_seconds is not None else []
        self._age_limit = min(limits) if limits else None
        self._pending: deque[Decision] = deque()
        self._attempts = 0
        self._throttles = 0
        self._in_flight = False
        self._finished = False
        self._last_outcome: InvokeOutcome | None = None

    @property
    def attempts(self) -> int:
        """Function runs so far (throttles not counted)."""
        return self._attempts

    def described_records(self) -> tuple[StreamRecordRef, ...]:
        """The window's first and last records (one if they are the same): what a give-up names."""
        first, last = self.window.first, self.window.last
        return (first,) if first.sequence_number == last.sequence_number else (first, last)

    def next_decision(self, now_epoch: float) -> Decision:
        if self._in_flight:
            raise RuntimeError("record_result() must follow an Invoke before the next decision")
        if self._pending:
            return self._pending.popleft()
        if self._finished:
            return Done((), ())
        age_limit = self._age_limit
        if (
            (self._attempts or self._throttles)
            and age_limit is not None
            and now_epoch - self.window.last.arrival_epoch_seconds > age_limit
        ):
            self._give_up(FailureCondition.RECORD_AGE_EXCEEDED)
            return self._pending.popleft()
        self._in_flight = True
        return Invoke((), self._attempts + 1)

    def record_result(self, outcome: InvokeOutcome, result: BatchResult | None = None) -> BatchResult:
        if not self._in_flight:
            raise RuntimeError("record_result() without an Invoke in flight")
        self._in_flight = False
        if result is None:
            result = classify(outcome, (), report_batch_item_failures=self._policy.report_batch_item_failures)
        match result:
            case BatchNotInvoked(outcome=not_invoked):
                self._throttles += 1
                self._pending.append(
                    self._policy.backoff.throttled(self._throttles, not_invoked.retry_after_seconds)
                )
            case BatchSucceeded():
                self._finish()
            case _:
                self._attempts += 1
                self._throttles = 0
                self._last_outcome = outcome
                maximum = self._policy.maximum_retry_attempts
                if maximum != -1 and self._attempts > maximum:
                    self._give_up(FailureCondition.RETRY_ATTEMPTS_EXHAUSTED)
                else:
                    self._pending.append(self._policy.backoff.decision(self._attempts, "function_error"))
        return result

    def cannot_wait(self) -> bool:
        """Stopping: the window is abandoned; its records are read again from the last checkpoint."""
        return False

    def _give_up(self, condition: FailureCondition) -> None:
        count = max(self._attempts, 1)
        self._pending.append(
            SendToDestination(self.described_records(), condition, count, self._last_outcome)
        )
        self._finish()

    def _finish(self) -> None:
        self._pending.append(Checkpoint(self.window.last.sequence_number))
        self._finished = True
