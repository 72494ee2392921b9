"""A Kafka batch through the one driver: the fast path's core is asked its first decision at the
time the batch was judged (`judged_at`), as the source's own loop did before the driver."""

from __future__ import annotations

from dataclasses import dataclass, field

from poller.core.backoff import Backoff
from poller.core.batch_result import BatchFailed
from poller.core.clock import ManualClock
from poller.core.failure_records import FailureCondition
from poller.core.outcome import FunctionFailed
from poller.core.sqs_batch import InvokeAll
from poller.core.stream_retry import (
    Invoke,
    RetryPolicy,
    SendToDestination,
    StreamBatchProcess,
    StreamRecordRef,
)
from poller.dispatch.driver import Driver
from poller.dispatch.invoker import Attempt

ERROR = FunctionFailed("E", "boom", request_id="r")


@dataclass
class SlowFailingPort:
    """Every invoke takes `invoke_seconds` of the clock and fails."""

    clock: ManualClock
    invoke_seconds: float
    sent: list[FailureCondition] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)

    def may_invoke(self) -> bool:
        return True

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt:
        self.clock.advance(self.invoke_seconds)
        return Attempt(BatchFailed("e"), ERROR, self.invoke_seconds)

    async def wait(self, seconds: float, backoff: Backoff) -> bool:
        self.clock.advance(seconds)
        return True

    async def send_to_destination(self, decision: SendToDestination) -> bool:
        self.sent.append(decision.condition)
        return True

    async def checkpoint(self, after_sequence_number: str) -> None:
        self.checkpoints.append(after_sequence_number)

    async def acknowledge(self, decision: object) -> None:
        raise AssertionError("not for Kafka")

    async def give_back(self, decision: object) -> None:
        raise AssertionError("not for Kafka")


class Results:
    def record_result(self, ok: bool) -> None:
        pass


async def test_a_record_that_expires_during_the_first_attempt_is_sent_on_not_a_crash() -> None:
    """MaximumRecordAge 60 s, a record 50 s old when read and a 30 s failed invoke: the core takes
    the attempt already made, then discards the record as expired (spec §5.2)."""
    clock = ManualClock()
    read_at = clock.wall()
    refs = [StreamRecordRef("5", read_at - 50, 10)]
    policy = RetryPolicy(maximum_record_age_seconds=60)
    port = SlowFailingPort(clock, invoke_seconds=30)

    def build() -> StreamBatchProcess:
        return StreamBatchProcess(refs, policy, end_sequence_number="6")

    driver = Driver(clock=clock, status=Results(), uniform=lambda low, high: 1.0)
    ok = await driver.drive_fast_first(
        port, end_sequence_number="6", build=build, judged_at=read_at
    )
    assert ok
    assert port.sent == [FailureCondition.RECORD_AGE_EXCEEDED]
    assert port.checkpoints == ["6"]

    # Without `judged_at` the instant before the invoke is used: the same outcome.
    clock = ManualClock(now=read_at - ManualClock().epoch)
    port = SlowFailingPort(clock, invoke_seconds=30)
    assert await Driver(clock=clock, status=Results()).drive_fast_first(
        port, end_sequence_number="6", build=build
    )
    assert port.sent == [FailureCondition.RECORD_AGE_EXCEEDED]
