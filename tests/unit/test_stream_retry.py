"""spec §5.2 (stream retry semantics), §4.2 (partial responses), §14 items 1–2: the batch state machine.

Every test drives a `StreamBatchProcess` with a scripted function and a `ManualClock` that only
moves when the machine asks for a `Backoff` (or a test says the function took time), so each rule
is checked on the exact sequence of decisions, without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poller.core.batch_result import BatchFailed, BatchPartiallyFailed, BatchSucceeded
from poller.core.clock import ManualClock
from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut
from poller.core.stream_retry import (
    Backoff,
    BackoffPolicy,
    Checkpoint,
    Decision,
    Done,
    FailureCondition,
    Invoke,
    RetryPolicy,
    SendToDestination,
    StreamBatchProcess,
    StreamRecordRef,
    whole_batch_first,
)

EPOCH = 1_732_270_000.0
Fn = Callable[[tuple[StreamRecordRef, ...], int], InvokeOutcome]


def refs(*seqs: str, arrival: float = EPOCH, size: int = 100) -> tuple[StreamRecordRef, ...]:
    return tuple(StreamRecordRef(s, arrival, size) for s in seqs)


def seqs(records: tuple[StreamRecordRef, ...]) -> list[str]:
    return [r.sequence_number for r in records]


OK = Succeeded(b"", request_id="req-ok")
ERR = FunctionFailed("Error", "boom", request_id="req-err")
THROTTLED = NotInvoked("throttled", "429 TooManyRequestsException")


def partial(*failed: str) -> Succeeded:
    body = {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}
    return Succeeded(orjson.dumps(body), request_id="req-partial")


def always(outcome: InvokeOutcome) -> Fn:
    return lambda records, attempt: outcome


def poison(seq: str, outcome: InvokeOutcome = ERR) -> Fn:
    """Fails any invocation that contains record `seq`."""
    return lambda records, attempt: outcome if seq in seqs(records) else OK


def scripted(*outcomes: InvokeOutcome) -> Fn:
    it: Iterator[InvokeOutcome] = iter(outcomes)
    return lambda records, attempt: next(it)


def drive(
    process: StreamBatchProcess, fn: Fn, clock: ManualClock, *, run_seconds: float = 0.0
) -> list[Decision]:
    """Run the batch to Done the way a source would; `run_seconds` is how long each invoke takes."""
    trace: list[Decision] = []
    for _ in range(100_000):
        decision = process.next_decision(clock.wall())
        trace.append(decision)
        match decision:
            case Invoke(records=records, attempt=attempt):
                clock.advance(run_seconds)
                process.record_result(fn(records, attempt))
            case Backoff(seconds=seconds):
                clock.advance(seconds)
            case Done():
                return trace
    raise AssertionError("the batch never finished")


def run(
    records: tuple[StreamRecordRef, ...],
    policy: RetryPolicy,
    fn: Fn,
    *,
    run_seconds: float = 0.0,
    end_sequence_number: str | None = None,
    retention_seconds: float | None = None,
    payload_limit_bytes: int | None = None,
) -> list[Decision]:
    process = StreamBatchProcess(
        records,
        policy,
        end_sequence_number=end_sequence_number,
        retention_seconds=retention_seconds,
        payload_limit_bytes=payload_limit_bytes,
    )
    return drive(process, fn, ManualClock(now=0.0, epoch=EPOCH), run_seconds=run_seconds)


def invokes(trace: list[Decision]) -> list[Invoke]:
    return [d for d in trace if isinstance(d, Invoke)]


def sends(trace: list[Decision]) -> list[SendToDestination]:
    return [d for d in trace if isinstance(d, SendToDestination)]


def checkpoints(trace: list[Decision]) -> list[str]:
    return [d.after_sequence_number for d in trace if isinstance(d, Checkpoint)]


def done(trace: list[Decision]) -> Done:
    last = trace[-1]
    assert isinstance(last, Done)
    return last


# --- success, retries and exhaustion ------------------------------------------------------------


def test_success_checkpoints_the_highest_sequence_number() -> None:
    """spec §5.2: on complete success, checkpoint to the highest sequence number of the batch."""
    records = refs("1", "2", "3")
    trace = run(records, RetryPolicy(), always(OK))
    assert trace == [Invoke(records, 1), Checkpoint("3"), Done(records, ())]


@pytest.mark.parametrize("maximum", [0, 1, 2, 3, 10])
def test_maximum_retry_attempts_n_means_n_plus_one_invocations(maximum: int) -> None:
    """spec §5.2 counting rules / Q7: MaximumRetryAttempts N → N+1 invocations of the same batch, then
    the destination with approximateInvokeCount N+1, the last outcome, and a checkpoint past it."""
    records = refs("1", "2")
    trace = run(records, RetryPolicy(maximum_retry_attempts=maximum), always(ERR))
    assert [(seqs(i.records), i.attempt) for i in invokes(trace)] == [
        (["1", "2"], n) for n in range(1, maximum + 2)
    ]
    assert sends(trace) == [
        SendToDestination(records, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, maximum + 1, ERR)
    ]
    # The records are handed to the destination before the checkpoint passes them (DESIGN §3).
    assert trace[-3:] == [sends(trace)[0], Checkpoint("2"), Done((), records)]


def test_function_error_backoff_is_exponential_from_one_second_capped_at_thirty() -> None:
    """spec §14 item 2: retry delays after function errors start ~1 s, double, and cap at ~30 s."""
    trace = run(refs("1"), RetryPolicy(maximum_retry_attempts=8), always(ERR))
    delays = [(d.seconds, d.reason) for d in trace if isinstance(d, Backoff)]
    assert delays == [(s, "function_error") for s in (1, 2, 4, 8, 16, 30, 30, 30)]


def test_backoff_policy_does_not_overflow_on_ten_thousand_failures() -> None:
    """spec §1.3: MaximumRetryAttempts goes to 10,000, so the delay must stay finite and capped."""
    assert BackoffPolicy().delay(10_000) == 30.0
    assert BackoffPolicy(initial_seconds=0.5, multiplier=1.0).delay(10_000) == 0.5


def test_default_policy_retries_until_the_records_leave_retention() -> None:
    """spec §1.3/§5.2: with the defaults -1/-1 a failing batch is retried until the record expires
    (retention), blocking the shard, and only then discarded."""
    records = refs("1", arrival=EPOCH)
    trace = run(records, RetryPolicy(), always(ERR), retention_seconds=86_400.0)
    runs = invokes(trace)
    # Invokes at t = 0, 1, 3, 7, 15, 31, then every 30 s while t <= 86,400: 6 + 2,878 of them;
    # the next one would be at 86,401 s, past retention.
    assert len(runs) == 6 + (86_400 - 31) // 30
    assert runs[-1].attempt == 2_884
    [sent] = sends(trace)
    assert (sent.records, sent.condition, sent.approximate_invoke_count) == (
        records,
        FailureCondition.RECORD_AGE_EXCEEDED,
        2_884,
    )
    assert done(trace) == Done((), records)


def test_infinite_retries_with_a_maximum_age_end_with_record_age_exceeded() -> None:
    """spec §5.2 counting rules: MaximumRetryAttempts -1 with age 60 retries with growing delays and
    discards with RecordAgeExceeded, reporting the number of invocations so far (AWS saw ~8)."""
    records = refs("1", "2", arrival=EPOCH - 0.5)
    trace = run(records, RetryPolicy(maximum_record_age_seconds=60), always(ERR))
    # Invokes at t = 0, 1, 3, 7, 15, 31; at t = 61 the records are 61.5 s old.
    assert len(invokes(trace)) == 6
    assert sends(trace) == [SendToDestination(records, FailureCondition.RECORD_AGE_EXCEEDED, 6, ERR)]
    assert checkpoints(trace) == ["2"]


def test_record_age_is_judged_when_invoking_so_slow_invocations_count_too() -> None:
    """spec §1.4/§5.2: age is measured from arrival to the moment of (re)invoking, so time spent in
    the function counts: runs of 20 s start at t = 0, 21, 43; at t = 67 the record is too old."""
    records = refs("1")
    trace = run(records, RetryPolicy(maximum_record_age_seconds=60), always(ERR), run_seconds=20.0)
    assert len(invokes(trace)) == 3
    assert sends(trace) == [SendToDestination(records, FailureCondition.RECORD_AGE_EXCEEDED, 3, ERR)]


# --- errors before the function ran ----------------------------------------------------------------


def test_throttles_do_not_consume_retry_attempts() -> None:
    """spec §4.1/§5.2: throttles and errors before invocation back off without counting an attempt."""
    fn = scripted(THROTTLED, THROTTLED, ERR, THROTTLED, ERR)
    trace = run(refs("1"), RetryPolicy(maximum_retry_attempts=1), fn)
    assert [i.attempt for i in invokes(trace)] == [1, 1, 1, 2, 2]
    assert [(d.seconds, d.reason) for d in trace if isinstance(d, Backoff)] == [
        (1, "throttled"),
        (2, "throttled"),
        (1, "function_error"),
        (1, "throttled"),  # a function run resets the throttle streak
    ]
    assert sends(trace)[0].approximate_invoke_count == 2


def test_throttle_backoff_honours_retry_after() -> None:
    """spec §4.1: a throttle that says when to come back (Retry-After) is retried then."""
    fn = scripted(NotInvoked("throttled", "503", retry_after_seconds=7.0), OK)
    trace = run(refs("1"), RetryPolicy(), fn)
    assert Backoff(7.0, "throttled", (1.0, 1.0)) in trace  # waited exactly: no jitter


def test_endless_throttling_ends_at_the_maximum_record_age_with_invoke_count_one() -> None:
    """spec §5.2: before-invocation errors retry until MaximumRecordAgeInSeconds; the function never
    ran, so the record reports approximateInvokeCount 1 and no outcome (Q8)."""
    records = refs("1")
    trace = run(
        records, RetryPolicy(maximum_retry_attempts=0, maximum_record_age_seconds=60), always(THROTTLED)
    )
    assert sends(trace) == [SendToDestination(records, FailureCondition.RECORD_AGE_EXCEEDED, 1, None)]


# --- record age ---------------------------------------------------------------------------------------


def test_records_expired_when_read_are_split_off_before_invoking() -> None:
    """spec §5.2 SNAP: in a mixed batch only the expired records are reported (count 1, never run)
    and the rest is processed normally."""
    old = refs("1", "2", arrival=EPOCH - 120)
    young = refs("3", "4", arrival=EPOCH - 10)
    trace = run(old + young, RetryPolicy(maximum_record_age_seconds=60), always(OK))
    assert trace == [
        SendToDestination(old, FailureCondition.RECORD_AGE_EXCEEDED, 1, None),
        Checkpoint("2"),
        Invoke(young, 1),
        Checkpoint("4"),
        Done(young, old),
    ]


def test_a_fully_expired_batch_is_never_invoked() -> None:
    """spec §5.2: records older than MaximumRecordAgeInSeconds are not sent to the function."""
    old = refs("1", "2", arrival=EPOCH - 61)
    trace = run(old, RetryPolicy(maximum_record_age_seconds=60), always(OK))
    assert trace == [
        SendToDestination(old, FailureCondition.RECORD_AGE_EXCEEDED, 1, None),
        Checkpoint("2"),
        Done((), old),
    ]


def test_a_record_exactly_at_the_maximum_age_is_still_invoked() -> None:
    """spec §1.4: records *older than* the maximum age are discarded; exactly 60 s old is not."""
    trace = run(refs("1", arrival=EPOCH - 60), RetryPolicy(maximum_record_age_seconds=60), always(OK))
    assert sends(trace) == []


def test_first_record_expiring_mid_retry_is_discarded_and_the_rest_keeps_its_attempts() -> None:
    """spec §5.2 reference algorithm: the age check runs before every retry; the expired head is
    reported with the attempts so far, checkpointed, and the remainder retries with the same counter."""
    r1 = refs("1", arrival=EPOCH - 50)
    rest = refs("2", "3", arrival=EPOCH - 5)
    trace = run(r1 + rest, RetryPolicy(maximum_retry_attempts=5, maximum_record_age_seconds=60), always(ERR))
    # Invokes of [1,2,3] at t = 0, 1, 3, 7 (r1 is 57 s old); at t = 15 r1 is 65 s old.
    assert [(seqs(i.records), i.attempt) for i in invokes(trace)] == [
        (["1", "2", "3"], 1),
        (["1", "2", "3"], 2),
        (["1", "2", "3"], 3),
        (["1", "2", "3"], 4),
        (["2", "3"], 5),
        (["2", "3"], 6),
    ]
    assert sends(trace) == [
        SendToDestination(r1, FailureCondition.RECORD_AGE_EXCEEDED, 4, ERR),
        SendToDestination(rest, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, 6, ERR),
    ]
    assert checkpoints(trace) == ["1", "3"]


def test_an_expired_record_out_of_arrival_order_is_passed_by_the_final_checkpoint() -> None:
    """spec §5.2: only the expired records are reported; a checkpoint never passes a record that is
    not done, so an expired record behind a live one is passed by the segment's own checkpoint."""
    r1, r2, r3 = (
        StreamRecordRef("1", EPOCH, 1),
        StreamRecordRef("2", EPOCH - 90, 1),
        StreamRecordRef("3", EPOCH, 1),
    )
    trace = run((r1, r2, r3), RetryPolicy(maximum_record_age_seconds=60), always(OK))
    assert trace == [
        SendToDestination((r2,), FailureCondition.RECORD_AGE_EXCEEDED, 1, None),
        Invoke((r1, r3), 1),
        Checkpoint("3"),
        Done((r1, r3), (r2,)),
    ]


def test_records_too_large_for_the_payload_are_split_off_for_kafka() -> None:
    """spec §6.2/§6.4: Kafka reports records too big to invoke with MaximumPayloadSizeExceeded."""
    small, big = StreamRecordRef("5", EPOCH, 10), StreamRecordRef("6", EPOCH, 7_000_000)
    trace = run((small, big), RetryPolicy(), always(OK), payload_limit_bytes=6 * 1024 * 1024)
    assert trace == [
        SendToDestination((big,), FailureCondition.MAXIMUM_PAYLOAD_SIZE_EXCEEDED, 1, None),
        Invoke((small,), 1),
        Checkpoint("6"),
        Done((small,), (big,)),
    ]


# --- bisect ---------------------------------------------------------------------------------------------


def test_bisect_halves_are_processed_in_order_without_consuming_retries() -> None:
    """spec §5.2: BisectBatchOnFunctionError splits the failing batch in two, the first half before
    the second; the split is the retry (no delay, no attempt); a single record then follows
    MaximumRetryAttempts (§14 item 1)."""
    records = refs("1", "2", "3", "4")
    trace = run(records, RetryPolicy(maximum_retry_attempts=0, bisect_on_function_error=True), poison("3"))
    r1, r2, r3, r4 = records
    assert trace == [
        Invoke(records, 1),
        Invoke((r1, r2), 1),
        Checkpoint("2"),
        Invoke((r3, r4), 1),
        Invoke((r3,), 1),
        SendToDestination((r3,), FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, 1, ERR),
        Checkpoint("3"),
        Invoke((r4,), 1),
        Checkpoint("4"),
        Done((r1, r2, r4), (r3,)),
    ]


@pytest.mark.parametrize(
    ("size", "halves"),
    [
        (2, [["1"], ["2"]]),
        (3, [["1"], ["2", "3"]]),
        (5, [["1", "2"], ["3", "4", "5"]]),
    ],
)
def test_bisect_splits_into_first_and_second_half(size: int, halves: list[list[str]]) -> None:
    """spec §5.2: the failing batch is split into two halves, the first half invoked first."""
    records = refs(*[str(n) for n in range(1, size + 1)])
    trace = run(
        records, RetryPolicy(maximum_retry_attempts=0, bisect_on_function_error=True), scripted(ERR, OK, OK)
    )
    assert [seqs(i.records) for i in invokes(trace)][1:] == halves


def test_bisected_single_record_gets_maximum_retry_attempts_plus_one_runs() -> None:
    """spec §14 item 1 (recommendation): retries are counted per sub-batch from zero, so the isolated
    poison record is invoked MaximumRetryAttempts + 1 times alone and reported with that count."""
    records = refs("1", "2")
    trace = run(records, RetryPolicy(maximum_retry_attempts=2, bisect_on_function_error=True), poison("2"))
    assert [seqs(i.records) for i in invokes(trace)] == [["1", "2"], ["1"], ["2"], ["2"], ["2"]]
    assert sends(trace)[0].approximate_invoke_count == 3


def test_bisect_does_not_apply_to_throttles() -> None:
    """spec §5.2: bisect is for function errors only; a throttled batch is retried whole."""
    records = refs("1", "2")
    trace = run(records, RetryPolicy(bisect_on_function_error=True), scripted(THROTTLED, OK))
    assert [seqs(i.records) for i in invokes(trace)] == [["1", "2"], ["1", "2"]]


def test_timeout_is_a_function_error_for_bisect_and_retries() -> None:
    """spec §4.1: a timeout is a function error (Unhandled) and so bisects and counts attempts."""
    trace = run(
        refs("1", "2"),
        RetryPolicy(maximum_retry_attempts=0, bisect_on_function_error=True),
        scripted(TimedOut(3.0), OK, OK),
    )
    assert [seqs(i.records) for i in invokes(trace)] == [["1", "2"], ["1"], ["2"]]


# --- ReportBatchItemFailures ------------------------------------------------------------------------------

RBIF = RetryPolicy(report_batch_item_failures=True)


def test_partial_response_checkpoints_before_the_lowest_failed_sequence_number_as_integer() -> None:
    """spec §4.2/§5.2: checkpoint at the lowest reported sequence number, compared as integers
    ("9" < "10", though "10" < "9" as text), and retry everything from there."""
    records = refs("8", "9", "10", "11")
    trace = run(records, RBIF, scripted(partial("10", "9"), OK))
    assert trace == [
        Invoke(records, 1),
        Checkpoint("8"),
        Invoke(records[1:], 1),
        Checkpoint("11"),
        Done(records, ()),
    ]


def test_partial_remainder_is_a_new_batch_with_a_fresh_counter() -> None:
    """spec §5.2 SNAP: BatchSize 3, MaximumRetryAttempts 3, last record always failing → delivered
    5 times (1 in the batch, then 1 + 3 alone), reported with approximateInvokeCount 4, batch [r3]."""
    records = refs("1", "2", "3")
    failing = partial("3")
    trace = run(
        records, RetryPolicy(maximum_retry_attempts=3, report_batch_item_failures=True), always(failing)
    )
    assert [seqs(i.records) for i in invokes(trace)] == [["1", "2", "3"]] + [["3"]] * 4
    assert sends(trace) == [
        SendToDestination(records[2:], FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, 4, failing)
    ]
    assert checkpoints(trace) == ["2", "3"]
    assert done(trace) == Done(records[:2], records[2:])


def test_partial_response_failing_the_first_record_is_a_complete_failure() -> None:
    """spec §4.2 notes: a valid partial response whose lowest failed record is the first is a complete
    failure: nothing is checkpointed, the attempt counts, and the retry waits."""
    records = refs("1", "2")
    failing = partial("2", "1")
    trace = run(
        records, RetryPolicy(maximum_retry_attempts=1, report_batch_item_failures=True), always(failing)
    )
    assert trace == [
        Invoke(records, 1),
        Backoff(1.0, "function_error"),
        Invoke(records, 2),
        SendToDestination(records, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, 2, failing),
        Checkpoint("2"),
        Done((), records),
    ]


def test_partial_with_bisect_splits_at_the_returned_sequence_number_not_in_halves() -> None:
    """spec §4.2 notes: with BisectBatchOnFunctionError and a partial response, the batch is split at
    the returned sequence number and only the remainder retried — no halving."""
    records = refs("1", "2", "3", "4")
    policy = RetryPolicy(bisect_on_function_error=True, report_batch_item_failures=True)
    trace = run(records, policy, scripted(partial("3"), OK))
    assert [seqs(i.records) for i in invokes(trace)] == [["1", "2", "3", "4"], ["3", "4"]]
    assert checkpoints(trace) == ["2", "4"]


def test_partial_with_bisect_failing_the_first_record_retries_whole_without_halving() -> None:
    """spec §4.2 notes: splitting at the first record leaves the whole batch, so it is retried as a
    complete failure rather than halved (our reading; see stream_retry's docstring)."""
    records = refs("1", "2", "3", "4")
    policy = RetryPolicy(bisect_on_function_error=True, report_batch_item_failures=True)
    trace = run(records, policy, scripted(partial("1"), OK))
    assert [seqs(i.records) for i in invokes(trace)] == [["1", "2", "3", "4"]] * 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"batchItemFailures": [{"itemIdentifier": "123"}]}',
        b'{"batchItemFailures": [{"foo": "x"}]}',
        b'{"batchItemFailures": [{"itemIdentifier": ""}]}',
        b'{"batchItemFailures": [{"itemIdentifier": null}]}',
    ],
)
def test_invalid_partial_responses_are_retried_to_exhaustion(body: bytes) -> None:
    """spec §11 Q9: an unknown, empty or null itemIdentifier (or a wrong key) fails the whole batch;
    it is retried MaximumRetryAttempts times, then sent to the destination."""
    trace = run(
        refs("1", "2"),
        RetryPolicy(maximum_retry_attempts=2, report_batch_item_failures=True),
        always(Succeeded(body)),
    )
    assert len(invokes(trace)) == 3
    assert sends(trace)[0].approximate_invoke_count == 3


def test_partial_response_is_ignored_without_report_batch_item_failures() -> None:
    """spec §1.4: without ReportBatchItemFailures the response body is ignored (success)."""
    trace = run(refs("1", "2"), RetryPolicy(), always(partial("1")))
    assert checkpoints(trace) == ["2"]
    assert sends(trace) == []


def test_record_result_returns_the_classification_it_used() -> None:
    """spec §4.2: the process classifies the invoke against the invoked sequence numbers."""
    process = StreamBatchProcess(refs("1", "2"), RBIF)
    assert isinstance(process.next_decision(EPOCH), Invoke)
    assert process.record_result(partial("2")) == BatchPartiallyFailed(("2",))
    assert process.next_decision(EPOCH) == Checkpoint("1")
    assert isinstance(process.next_decision(EPOCH), Invoke)
    assert process.record_result(OK) == BatchSucceeded()


def test_a_source_supplied_result_with_ids_outside_the_segment_is_a_complete_failure() -> None:
    """spec §4.2: an itemIdentifier not in the batch makes the whole batch fail; a Kafka source passes
    its own results, so the process re-checks membership rather than trusting them."""
    records = refs("1", "2")
    process = StreamBatchProcess(
        records, RetryPolicy(maximum_retry_attempts=0, report_batch_item_failures=True)
    )
    process.next_decision(EPOCH)
    process.record_result(OK, BatchPartiallyFailed(("7",)))
    assert process.next_decision(EPOCH) == SendToDestination(
        records, FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, 1, OK
    )


def test_a_source_supplied_empty_failure_list_is_a_success() -> None:
    """spec §4.2: `{"batchItemFailures": []}` is a success, also when the source classified it."""
    process = StreamBatchProcess(refs("1"), RBIF)
    process.next_decision(EPOCH)
    process.record_result(OK, BatchPartiallyFailed(()))
    assert process.next_decision(EPOCH) == Checkpoint("1")
    assert process.next_decision(EPOCH) == Done(refs("1"), ())


def test_a_source_supplied_failure_overrides_the_outcome() -> None:
    """spec §4.2: the source may classify itself (Kafka identifiers); its result decides the retry."""
    process = StreamBatchProcess(refs("1"), RetryPolicy())
    process.next_decision(EPOCH)
    assert process.record_result(OK, BatchFailed("bad Kafka identifier")) == BatchFailed(
        "bad Kafka identifier"
    )
    assert process.next_decision(EPOCH) == Backoff(1.0, "function_error")


# --- shape of the API ----------------------------------------------------------------------------------


def test_filtered_batch_and_trailing_filtered_records_still_advance_the_checkpoint() -> None:
    """spec §5.2 reference algorithm: non-matching records are skipped and the checkpoint advances
    past them, also when nothing is left to invoke."""
    assert run((), RetryPolicy(), always(OK), end_sequence_number="42") == [Checkpoint("42"), Done((), ())]
    trace = run(refs("1", "2"), RetryPolicy(), always(OK), end_sequence_number="9")
    assert checkpoints(trace) == ["9"]


def test_done_is_repeated_and_the_protocol_is_enforced() -> None:
    """spec §5.2: one decision at a time — an Invoke must be answered before anything else happens."""
    process = StreamBatchProcess(refs("1"), RetryPolicy())
    with pytest.raises(RuntimeError):
        process.record_result(OK)
    process.next_decision(EPOCH)
    with pytest.raises(RuntimeError):
        process.next_decision(EPOCH)
    process.record_result(OK)
    assert process.next_decision(EPOCH) == Checkpoint("1")
    assert process.next_decision(EPOCH) == process.next_decision(EPOCH) == Done(refs("1"), ())
    assert (process.acknowledged, process.sent_to_destination) == (refs("1"), ())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maximum_retry_attempts": -2},
        {"maximum_retry_attempts": 10_001},
        {"maximum_record_age_seconds": 0},
        {"maximum_record_age_seconds": 59},
        {"maximum_record_age_seconds": 604_801},
    ],
)
def test_policy_rejects_values_outside_aws_ranges(kwargs: dict[str, int]) -> None:
    """spec §1.3/§1.4: MaximumRetryAttempts -1…10000; MaximumRecordAgeInSeconds -1 or 60…604800."""
    with pytest.raises(ValueError, match="Maximum"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("numbers", [("2", "1"), ("1", "1"), ("1", "x"), ("1", "-2"), ("9", "10", "10")])
def test_batch_must_be_in_strict_integer_sequence_order(numbers: tuple[str, ...]) -> None:
    """spec §3.2/§5.2: sequence numbers are numeric and ordered; "lowest failed" depends on it."""
    with pytest.raises(ValueError, match="sequence"):
        StreamBatchProcess(refs(*numbers), RetryPolicy())


def test_integer_order_accepts_what_text_order_rejects() -> None:
    """spec §3.2: "9" then "10" is in order (as integers)."""
    StreamBatchProcess(refs("9", "10"), RetryPolicy())


# --- every path, at random ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    gaps=st.lists(st.integers(1, 10**20), min_size=1, max_size=12),
    ages=st.lists(st.floats(0, 100), min_size=12, max_size=12),
    maximum=st.sampled_from([-1, 0, 1, 3]),
    age=st.sampled_from([-1, 60, 120]),
    bisect=st.booleans(),
    rbif=st.booleans(),
)
def test_any_run_finishes_with_every_record_acknowledged_or_sent_once(
    data: st.DataObject, gaps: list[int], ages: list[float], maximum: int, age: int, bisect: bool, rbif: bool
) -> None:
    """spec §5.2 as invariants: the batch always finishes; each record is acknowledged or sent to the
    destination exactly once, in order; checkpoints only move forward, never past a record that is
    not done, and end at the last record; attempts never exceed MaximumRetryAttempts + 1."""
    numbers = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    arrivals = sorted(EPOCH - a for a in ages[: len(numbers)])  # arrival follows sequence order
    records = tuple(StreamRecordRef(str(n), t, 10) for n, t in zip(numbers, arrivals, strict=True))
    policy = RetryPolicy(maximum, age, bisect, rbif)
    process = StreamBatchProcess(records, policy, retention_seconds=3_600.0)
    clock = ManualClock(now=0.0, epoch=EPOCH)
    finished: set[str] = set()
    last_checkpoint = -1
    for _ in range(100_000):
        decision = process.next_decision(clock.wall())
        match decision:
            case Invoke(records=batch, attempt=attempt):
                assert not finished & set(seqs(batch))
                assert maximum == -1 or attempt <= maximum + 1
                choice = data.draw(st.sampled_from(["ok", "err", "throttle", "partial"]))
                simple: dict[str, InvokeOutcome] = {"ok": OK, "err": ERR, "throttle": THROTTLED}
                outcome = simple.get(choice, OK)
                if choice == "partial":
                    failed = data.draw(st.lists(st.sampled_from(seqs(batch)), min_size=1, unique=True))
                    outcome = partial(*failed)
                clock.advance(data.draw(st.floats(0, 20)))
                process.record_result(outcome)
            case Backoff(seconds=seconds):
                clock.advance(seconds)
            case SendToDestination(records=batch, condition=condition, approximate_invoke_count=count):
                finished |= set(seqs(batch))
                if condition is FailureCondition.RETRY_ATTEMPTS_EXHAUSTED:
                    assert count == maximum + 1
            case Checkpoint(after_sequence_number=position):
                assert int(position) > last_checkpoint
                last_checkpoint = int(position)
                finished |= set(seqs(process.acknowledged))
                assert {s for s in seqs(records) if int(s) <= last_checkpoint} <= finished
            case Done(acknowledged=acked, sent_to_destination=sent):
                assert set(acked).isdisjoint(sent)
                assert sorted(acked + sent, key=lambda r: int(r.sequence_number)) == list(records)
                assert list(acked) == [r for r in records if r in acked]
                assert last_checkpoint == numbers[-1]
                return
    raise AssertionError("the batch never finished")


@given(
    ages=st.lists(st.floats(0, 1_000), min_size=1, max_size=6),
    sizes=st.lists(st.integers(1, 2_000), min_size=6, max_size=6),
    age_limit=st.sampled_from([-1, 60, 300]),
    retention=st.sampled_from([None, 120.0]),
    payload_limit=st.sampled_from([None, 500, 1_500]),
)
def test_whole_batch_first_is_exactly_when_the_machine_first_invokes_everything(
    ages: list[float], sizes: list[int], age_limit: int, retention: float | None, payload_limit: int | None
) -> None:
    """The Kafka source's first attempt without the machine must be the machine's own first decision."""
    batch = tuple(
        StreamRecordRef(str(10 + i), EPOCH - age, size)
        for i, (age, size) in enumerate(zip(ages, sizes, strict=False))
    )
    policy = RetryPolicy(maximum_record_age_seconds=age_limit)
    machine = StreamBatchProcess(
        batch, policy, retention_seconds=retention, payload_limit_bytes=payload_limit
    )
    first = machine.next_decision(EPOCH)
    predicted = whole_batch_first(
        policy,
        now_epoch=EPOCH,
        oldest_arrival_epoch_seconds=min(r.arrival_epoch_seconds for r in batch),
        largest_record_bytes=max(r.size_bytes for r in batch),
        retention_seconds=retention,
        payload_limit_bytes=payload_limit,
    )
    assert predicted == (first == Invoke(batch, 1))
