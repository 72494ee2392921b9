"""The one driver (DESIGN §2 `dispatch/`) over both pure cores, against a recording port.

The cores decide (spec §5.1 for SQS, §5.2 for streams and Kafka); these tests pin that the driver
carries out every kind of decision with the port's calls, reports each attempt's result, draws the
jitter from the decision's range, stops when the port says so, and takes the fast path only as far
as a plain success.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from poller.core.backoff import Backoff
from poller.core.batch_result import BatchFailed, BatchNotInvoked, BatchResult, BatchSucceeded
from poller.core.clock import ManualClock
from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded
from poller.core.sqs_batch import Acknowledge, GiveBack, InvokeAll, SqsBatchProcess, SqsItem
from poller.core.stream_retry import (
    Invoke,
    RetryPolicy,
    SendToDestination,
    StreamBatchProcess,
    StreamRecordRef,
)
from poller.dispatch.driver import Driver
from poller.dispatch.invoker import Attempt

OK = Succeeded(b"null", request_id="r")
ERROR = FunctionFailed("E", "boom", request_id="r")
THROTTLED = NotInvoked("throttled", "429", retry_after_seconds=None)


@dataclass
class Port:
    script: list[tuple[InvokeOutcome, BatchResult]]
    can_wait: bool = True
    stop_after: int | None = None
    calls: list[tuple[str, object]] = field(default_factory=list)

    def may_invoke(self) -> bool:
        return self.stop_after is None or sum(1 for c in self.calls if c[0] == "invoke") < self.stop_after

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt:
        what = decision.attempt if isinstance(decision, InvokeAll) else [r.sequence_number for r in decision.records]
        self.calls.append(("invoke", what))
        outcome, result = self.script.pop(0)
        return Attempt(result, outcome, 0.01)

    async def wait(self, seconds: float, backoff: Backoff) -> bool:
        self.calls.append(("wait", round(seconds, 3)))
        return self.can_wait

    async def send_to_destination(self, decision: SendToDestination) -> bool:
        self.calls.append(("send", [r.sequence_number for r in decision.records]))
        return True

    async def checkpoint(self, after_sequence_number: str) -> None:
        self.calls.append(("checkpoint", after_sequence_number))

    async def acknowledge(self, decision: Acknowledge) -> None:
        self.calls.append(("acknowledge", decision.message_ids))

    async def give_back(self, decision: GiveBack) -> None:
        self.calls.append(("give_back", decision.message_ids))


@dataclass
class Results:
    seen: list[bool] = field(default_factory=list)

    def record_result(self, ok: bool) -> None:
        self.seen.append(ok)


def refs(*numbers: int) -> list[StreamRecordRef]:
    return [StreamRecordRef(str(n), 1_700_000_000.0, 10) for n in numbers]


def driver(results: Results, factor: float = 1.0) -> Driver:
    return Driver(clock=ManualClock(), status=results, uniform=lambda low, high: factor * (low + high) / 2)


async def test_a_stream_batch_retries_bisects_sends_and_checkpoints_through_the_port() -> None:
    """spec §5.2: error → bisect halves; the failing half is retried once, then sent on."""
    policy = RetryPolicy(maximum_retry_attempts=1, bisect_on_function_error=True)
    process = StreamBatchProcess(refs(1, 2), policy)
    failed = (ERROR, BatchFailed("e"))
    port = Port([failed, (OK, BatchSucceeded()), failed, failed])
    results = Results()
    assert await driver(results).drive(process, port)
    assert port.calls == [
        ("invoke", ["1", "2"]),
        ("invoke", ["1"]),
        ("checkpoint", "1"),
        ("invoke", ["2"]),
        ("wait", 1.0),
        ("invoke", ["2"]),
        ("send", ["2"]),
        ("checkpoint", "2"),
    ]
    assert results.seen == [False, True, False, False]


async def test_a_backoff_waits_the_jittered_delay_and_stopping_abandons_a_stream_batch() -> None:
    process = StreamBatchProcess(refs(1), RetryPolicy())
    port = Port([(THROTTLED, BatchNotInvoked(THROTTLED))], can_wait=False)
    assert not await driver(Results(), factor=1.0).drive(process, port)
    assert port.calls == [("invoke", ["1"]), ("wait", 1.0)]  # 1 s × the middle of 0.8–1.2


async def test_the_port_can_stop_a_batch_before_its_next_invoke() -> None:
    process = StreamBatchProcess(refs(1), RetryPolicy())
    port = Port([(ERROR, BatchFailed("e"))], stop_after=1)
    assert not await driver(Results()).drive(process, port)
    assert [c[0] for c in port.calls] == ["invoke", "wait"]


async def test_an_sqs_batch_is_acknowledged_after_success() -> None:
    items = [SqsItem("a", None), SqsItem("b", None)]
    process = SqsBatchProcess(items, attempt=1, report_batch_item_failures=False)
    port = Port([(OK, BatchSucceeded())])
    assert await driver(Results()).drive(process, port)
    assert port.calls == [("invoke", 1), ("acknowledge", ("a", "b"))]


async def test_a_throttled_sqs_batch_that_cannot_wait_is_given_back() -> None:
    """spec §5.1 item 6: no time left for the wait and an invoke → the messages go back at once."""
    process = SqsBatchProcess([SqsItem("a", "g")], attempt=2, report_batch_item_failures=False)
    port = Port([(THROTTLED, BatchNotInvoked(THROTTLED))], can_wait=False)
    assert await driver(Results()).drive(process, port)
    assert port.calls == [("invoke", 2), ("wait", 0.75), ("give_back", ("a",))]


async def test_the_fast_path_checkpoints_a_plain_success_without_building_the_core() -> None:
    built: list[int] = []
    port = Port([(OK, BatchSucceeded())])

    def build() -> StreamBatchProcess:
        built.append(1)
        return StreamBatchProcess(refs(1, 2), RetryPolicy())

    assert await driver(Results()).drive_fast_first(port, end_sequence_number="7", build=build)
    assert port.calls == [("invoke", 1), ("checkpoint", "7")]
    assert built == []


async def test_the_fast_path_hands_a_failed_first_attempt_to_the_core() -> None:
    policy = RetryPolicy(maximum_retry_attempts=0)
    port = Port([(ERROR, BatchFailed("e"))])
    results = Results()
    ok = await driver(results).drive_fast_first(
        port, end_sequence_number="9", build=lambda: StreamBatchProcess(refs(1, 2), policy, end_sequence_number="9")
    )
    assert ok
    assert port.calls == [("invoke", 1), ("send", ["1", "2"]), ("checkpoint", "9")]
    assert results.seen == [False]
