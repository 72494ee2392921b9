"""spec §8 (tumbling windows), §4.1 (a response without state fails), §5.2 (retries of the final
invocation): window alignment, the windowed event and response, state carry-over, when a window
closes, and the final invocation, on an injected clock without servers."""

from __future__ import annotations

import orjson
import pytest

from poller.core.backoff import Backoff
from poller.core.batch_result import BatchFailed, BatchNotInvoked, BatchPartiallyFailed, BatchSucceeded
from poller.core.clock import ManualClock
from poller.core.failure_records import FailureCondition
from poller.core.outcome import FunctionFailed, NotInvoked, Succeeded
from poller.core.stream_retry import RetryPolicy
from poller.core.stream_retry_types import Checkpoint, Done, Invoke, SendToDestination, StreamRecordRef
from poller.core.tumbling_window import (
    EMPTY_STATE,
    IDLE_CLOSE_SECONDS,
    CloseReason,
    Window,
    WindowInvocation,
    WindowTracker,
    classify_window_response,
    encode_window_event,
    response_state,
    window_of,
)
from poller.core.window_close import FinalInvokeProcess

# 2024-11-22T07:04:00Z, the spec's example window start.
START = 1_732_259_040


def ref(sequence: int, arrival: float) -> StreamRecordRef:
    return StreamRecordRef(str(sequence), arrival, 100)


# -- alignment (spec §8) -------------------------------------------------------------------------


def test_windows_align_on_epoch_multiples_as_in_the_spec_example() -> None:
    """spec §8: a 120 s window of a record that arrived at 07:05:10.5 is 07:04:00Z–07:06:00Z."""
    window = window_of(START + 70.5, 120)
    assert window == Window(START, START + 120)
    assert window.as_json() == {"start": "2024-11-22T07:04:00Z", "end": "2024-11-22T07:06:00Z"}


@pytest.mark.parametrize("length", [1, 7, 60, 900])
def test_every_arrival_falls_in_exactly_one_window(length: int) -> None:
    """spec §8: fixed, non-overlapping windows; the start is inclusive, the end exclusive."""
    for arrival in (START, START + 0.999, START + length - 0.001, START + length, START + 3 * length + 0.5):
        window = window_of(arrival, length)
        assert window.end - window.start == length
        assert window.start % length == 0
        assert window.contains(arrival)
        assert not window_of(window.end, length).contains(arrival)


@pytest.mark.parametrize("length", [0, 901, -5])
def test_lengths_outside_1_to_900_are_refused(length: int) -> None:
    """spec §1.3, §8: 1–900 enables windows (0 is off and never reaches the core)."""
    with pytest.raises(ValueError, match="1-900"):
        WindowTracker(length)


# -- the event (spec §8) -------------------------------------------------------------------------


def test_the_event_adds_the_window_members_to_the_records_payload() -> None:
    """spec §8: Records, then window, state, shardId, eventSourceARN, isFinalInvokeForWindow,
    isWindowTerminatedEarly; the records are the normal ones, serialised once."""
    invocation = WindowInvocation(
        Window(START, START + 120), b'{"device-17":12}', "shardId-000000000006", "arn:aws:kinesis:x"
    )
    records = [
        orjson.dumps({"kinesis": {"sequenceNumber": "1"}}),
        orjson.dumps({"kinesis": {"sequenceNumber": "2"}}),
    ]
    event = encode_window_event(records, invocation)
    parsed = orjson.loads(event)
    assert list(parsed) == [
        "Records",
        "window",
        "state",
        "shardId",
        "eventSourceARN",
        "isFinalInvokeForWindow",
        "isWindowTerminatedEarly",
    ]
    assert parsed["Records"] == [{"kinesis": {"sequenceNumber": "1"}}, {"kinesis": {"sequenceNumber": "2"}}]
    assert parsed["window"] == {"start": "2024-11-22T07:04:00Z", "end": "2024-11-22T07:06:00Z"}
    assert parsed["state"] == {"device-17": 12}
    assert parsed["shardId"] == "shardId-000000000006"
    assert parsed["eventSourceARN"] == "arn:aws:kinesis:x"
    assert parsed["isFinalInvokeForWindow"] is False
    assert parsed["isWindowTerminatedEarly"] is False
    # The envelope size the batcher counts is exact (plus one comma per record, as elsewhere).
    assert len(event) == invocation.overhead_bytes() + sum(len(r) for r in records) + len(records) - 1


def test_a_final_invocation_without_records_is_valid_json() -> None:
    """spec §8: the final invocation may carry an empty Records list."""
    invocation = WindowInvocation(
        Window(START, START + 60), b"{}", "s", "arn", final=True, terminated_early=True
    )
    parsed = orjson.loads(encode_window_event([], invocation))
    assert parsed["Records"] == []
    assert parsed["isFinalInvokeForWindow"] is True
    assert parsed["isWindowTerminatedEarly"] is True


# -- the response (spec §4.1, §4.2, §8) ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"{}",
        b"[]",
        b'{"batchItemFailures": []}',
        b'{"state": null}',
        b'{"state": [1]}',
        b"nope",
    ],
)
def test_a_response_without_a_state_object_is_a_failed_invocation(body: bytes) -> None:
    """spec §4.1, §8: "Missing state = failed invocation" (a null or non-object state too)."""
    result = classify_window_response(Succeeded(body), {"1"}, report_batch_item_failures=False)
    assert isinstance(result, BatchFailed)
    assert "state" in result.reason
    assert response_state(body)[0] is None


def test_the_state_is_taken_as_compact_json() -> None:
    """spec §8: the response `{"state": {...}}` carries the state to the next invocation."""
    body = b'{"state": {"device-17": 13}, "batchItemFailures": []}'
    assert response_state(body) == (b'{"device-17":13}', "")
    assert (
        classify_window_response(Succeeded(body), {"1"}, report_batch_item_failures=False) == BatchSucceeded()
    )


def test_batch_item_failures_beside_the_state_count_only_with_report_batch_item_failures() -> None:
    """spec §4.2, §8: `{"state": ..., "batchItemFailures": [...]}`; without RBIF the list is ignored."""
    body = b'{"state": {}, "batchItemFailures": [{"itemIdentifier": "2"}]}'
    with_rbif = classify_window_response(Succeeded(body), {"1", "2"}, report_batch_item_failures=True)
    assert with_rbif == BatchPartiallyFailed(("2",))
    assert classify_window_response(Succeeded(body), {"1", "2"}, report_batch_item_failures=False) == (
        BatchSucceeded()
    )


def test_errors_and_throttles_are_classified_as_without_windows() -> None:
    """spec §4.1: a function error fails the batch; a throttle never reached the function."""
    failed = classify_window_response(FunctionFailed("E", "boom"), {"1"}, report_batch_item_failures=False)
    assert isinstance(failed, BatchFailed)
    throttled = NotInvoked("throttled", "429")
    assert classify_window_response(throttled, {"1"}, report_batch_item_failures=False) == BatchNotInvoked(
        throttled
    )


# -- state carry-over and closing (spec §8) ------------------------------------------------------


def test_state_is_carried_between_invocations_of_a_window_and_fresh_in_the_next() -> None:
    """spec §8: the first invocation of a window gets an empty state, later ones what the function
    last returned; a failed invocation leaves the state as it was; the next window starts empty."""
    tracker = WindowTracker(60)
    tracker.take([ref(1, START + 1), ref(2, START + 2)])
    assert tracker.invocation("s", "arn", final=False).state == EMPTY_STATE
    tracker.invoked(b'{"n":2}')
    tracker.take([ref(3, START + 3)])
    assert tracker.invocation("s", "arn", final=False).state == b'{"n":2}'
    tracker.invoked(None)  # failed: retried with the same state
    assert tracker.invocation("s", "arn", final=False).state == b'{"n":2}'
    tracker.invoked(b'{"n":3}')
    final = tracker.invocation("s", "arn", final=True)
    assert (final.state, final.final, final.terminated_early) == (b'{"n":3}', True, False)
    closed = tracker.closed()
    assert (
        closed.records,
        closed.invocations,
        closed.first.sequence_number,
        closed.last.sequence_number,
    ) == (
        3,
        3,
        "1",
        "3",
    )
    tracker.take([ref(4, START + 61)])
    assert tracker.open is not None
    assert tracker.open.window == Window(START + 60, START + 120)
    assert tracker.invocation("s", "arn", final=False).state == EMPTY_STATE


def test_a_batch_never_spans_two_windows() -> None:
    """spec §8: every record belongs to exactly one window, so batches split at window edges."""
    tracker = WindowTracker(60)
    assert tracker.same_window(ref(1, START), ref(2, START + 59.999))
    assert not tracker.same_window(ref(1, START + 59.999), ref(2, START + 60))
    tracker.take([ref(1, START)])
    assert tracker.belongs_to_open(ref(2, START + 30))
    assert not tracker.belongs_to_open(ref(3, START + 60))
    with pytest.raises(RuntimeError, match="closed before"):
        tracker.take([ref(3, START + 60)])


def test_a_window_stays_open_until_its_end_has_passed() -> None:
    """spec §8: the final invocation comes when the window ends, not before."""
    clock = ManualClock(now=0, epoch=START + 10)
    tracker = WindowTracker(60)
    tracker.take([ref(1, START + 5)])
    assert tracker.close_due(clock.wall(), caught_up_at=clock.wall(), last_record_at=clock.wall()) is None
    assert tracker.seconds_until_end(clock.wall()) == pytest.approx(51.0)


def test_a_caught_up_read_after_the_end_closes_the_window() -> None:
    """spec §8: once the end has passed and a read that started after it finds nothing new, no
    record of the window can follow: it closes then (with a margin for the stream's clock)."""
    tracker = WindowTracker(60)
    tracker.take([ref(1, START + 5)])
    now = START + 62.0
    assert tracker.close_due(now, caught_up_at=START + 60.5, last_record_at=START + 5) is None
    assert (
        tracker.close_due(now, caught_up_at=START + 61.0, last_record_at=START + 5) is CloseReason.CAUGHT_UP
    )


def test_without_new_records_the_window_closes_at_most_two_minutes_after_its_end() -> None:
    """spec §8: "If no new records arrive, Lambda waits up to 2 minutes before closing the window"
    (here: reads keep failing, so no read is ever caught up)."""
    clock = ManualClock(now=0, epoch=START + 60)
    tracker = WindowTracker(60)
    tracker.take([ref(1, START + 5)])
    clock.advance(IDLE_CLOSE_SECONDS - 0.5)
    assert tracker.close_due(clock.wall(), caught_up_at=None, last_record_at=START + 5) is None
    clock.advance(0.5)
    assert tracker.close_due(clock.wall(), caught_up_at=None, last_record_at=START + 5) is CloseReason.IDLE
    # A record read after the end (of a later window, still queued) restarts the quiet period.
    assert tracker.close_due(clock.wall(), caught_up_at=None, last_record_at=START + 90) is None


def test_state_over_1_mb_terminates_the_window_early() -> None:
    """spec §8: state max 1 MB per shard; exceeding it ends the window early, and the final
    invocation says isWindowTerminatedEarly; later records of that window open a fresh instance."""
    tracker = WindowTracker(60, state_limit_bytes=100)
    tracker.take([ref(1, START + 1)])
    tracker.invoked(b'{"a":"' + b"x" * 90 + b'"}')
    assert tracker.close_due(START + 2, caught_up_at=None, last_record_at=START + 1) is None
    tracker.invoked(b'{"a":"' + b"x" * 100 + b'"}')
    assert (
        tracker.close_due(START + 2, caught_up_at=None, last_record_at=START + 1) is CloseReason.STATE_LIMIT
    )
    assert not tracker.belongs_to_open(ref(2, START + 3))
    final = tracker.invocation("s", "arn", final=True)
    assert (final.final, final.terminated_early) == (True, True)
    # The oversized state is dropped: the final invocation carries the last one within the limit.
    assert final.state == b'{"a":"' + b"x" * 90 + b'"}'
    assert tracker.invocation("s", "arn", final=False).terminated_early is False  # only the final says so
    tracker.closed()
    tracker.take([ref(2, START + 3)])
    assert tracker.invocation("s", "arn", final=False).state == EMPTY_STATE


def test_open_window_status_shows_bounds_invocations_and_state_size() -> None:
    """spec §8 (the open window, its invocations and state against the 1 MB limit), shown per shard
    as DESIGN §1.6 asks of /status (per shard position)."""
    tracker = WindowTracker(120)
    tracker.take([ref(1, START + 70)])
    tracker.invoked(b'{"n":1}')
    assert tracker.open is not None
    assert tracker.open.as_status() == {
        "Start": "2024-11-22T07:04:00Z",
        "End": "2024-11-22T07:06:00Z",
        "Invocations": 1,
        "Records": 1,
        "StateBytes": 7,
        "TerminatedEarly": False,
    }


# -- the final invocation (spec §8, §5.2) --------------------------------------------------------


def window(*arrivals: float) -> FinalInvokeProcess:
    tracker = WindowTracker(60)
    tracker.take([ref(i + 1, a) for i, a in enumerate(arrivals)])
    assert tracker.open is not None
    return FinalInvokeProcess(tracker.open, RetryPolicy(maximum_retry_attempts=1))


def test_the_checkpoint_advances_only_after_the_final_invocation_succeeds() -> None:
    """spec §8: "after it succeeds the checkpoint advances and state is dropped"."""
    process = window(START + 1, START + 2, START + 3)
    assert process.next_decision(START + 61) == Invoke((), 1)
    process.record_result(Succeeded(b'{"state": {}}'), BatchSucceeded())
    assert process.next_decision(START + 61) == Checkpoint("3")
    assert process.next_decision(START + 61) == Done((), ())


def test_a_failing_final_invocation_is_retried_then_given_up_to_the_destination() -> None:
    """spec §8, §5.2: the shard waits while the final invocation fails, under MaximumRetryAttempts;
    when exhausted, the window's records go to the on-failure destination, then the checkpoint."""
    process = window(START + 1, START + 2, START + 3)
    error = FunctionFailed("E", "boom")
    assert process.next_decision(START + 61) == Invoke((), 1)
    process.record_result(error, BatchFailed("boom"))
    assert isinstance(process.next_decision(START + 61), Backoff)
    assert process.next_decision(START + 62) == Invoke((), 2)
    process.record_result(error, BatchFailed("boom"))
    discard = process.next_decision(START + 62)
    assert isinstance(discard, SendToDestination)
    assert [r.sequence_number for r in discard.records] == ["1", "3"]
    assert (discard.condition, discard.approximate_invoke_count, discard.last_outcome) == (
        FailureCondition.RETRY_ATTEMPTS_EXHAUSTED,
        2,
        error,
    )
    assert process.next_decision(START + 62) == Checkpoint("3")
    assert isinstance(process.next_decision(START + 62), Done)


def test_throttles_back_off_without_consuming_attempts() -> None:
    """spec §4.1, §5.2: a batch that never reached the function does not count against retries."""
    process = window(START + 1)
    throttled = NotInvoked("throttled", "429", retry_after_seconds=2.0)
    for _ in range(5):
        decision = process.next_decision(START + 61)
        assert decision == Invoke((), 1)
        process.record_result(throttled, BatchNotInvoked(throttled))
        assert process.next_decision(START + 61) == Backoff(2.0, "throttled", (1.0, 1.0))
    assert process.attempts == 0


def test_the_record_age_gives_up_a_failing_final_invocation_but_never_skips_the_first() -> None:
    """spec §8, §5.2: MaximumRecordAgeInSeconds applies to the final invocation's retries; the first
    attempt is always made, since windows are often longer than the age."""
    tracker = WindowTracker(600)
    tracker.take([ref(7, START + 1)])
    assert tracker.open is not None
    process = FinalInvokeProcess(tracker.open, RetryPolicy(maximum_record_age_seconds=60))
    assert process.next_decision(START + 700) == Invoke((), 1)
    process.record_result(FunctionFailed("E", "boom"), BatchFailed("boom"))
    assert isinstance(process.next_decision(START + 700), Backoff)
    discard = process.next_decision(START + 701)
    assert isinstance(discard, SendToDestination)
    assert (discard.condition, [r.sequence_number for r in discard.records]) == (
        FailureCondition.RECORD_AGE_EXCEEDED,
        ["7"],
    )
    assert process.next_decision(START + 700) == Checkpoint("7")


def test_a_final_invocation_throttled_forever_is_given_up_once_its_records_are_too_old() -> None:
    """spec §4.1, §5.2, §8: throttles consume no attempt, but the window's records still expire by
    MaximumRecordAgeInSeconds: once the newest is older than 60 s the window goes to the destination
    (RecordAgeExceeded) and the checkpoint moves past it, instead of holding the shard forever."""
    clock = ManualClock(now=0.0, epoch=START + 50)
    tracker = WindowTracker(60)
    tracker.take([ref(1, START + 1), ref(2, START + 20)])
    assert tracker.open is not None
    process = FinalInvokeProcess(tracker.open, RetryPolicy(maximum_record_age_seconds=60))
    throttled = NotInvoked("throttled", "429", retry_after_seconds=5.0)
    while clock.wall() - (START + 20) <= 60:
        assert process.next_decision(clock.wall()) == Invoke((), 1)
        process.record_result(throttled, BatchNotInvoked(throttled))
        backoff = process.next_decision(clock.wall())
        assert isinstance(backoff, Backoff)
        clock.advance(backoff.seconds)
    assert clock.wall() <= START + 20 + 60 + 5  # given up at the first decision past the age
    discard = process.next_decision(clock.wall())
    assert isinstance(discard, SendToDestination)
    assert (discard.condition, [r.sequence_number for r in discard.records]) == (
        FailureCondition.RECORD_AGE_EXCEEDED,
        ["1", "2"],
    )
    assert discard.approximate_invoke_count == 1
    assert process.next_decision(clock.wall()) == Checkpoint("2")
    assert isinstance(process.next_decision(clock.wall()), Done)
    assert process.attempts == 0


def test_unlimited_retries_keep_the_shard_waiting() -> None:
    """spec §8: "if it fails, processing of the shard is suspended until it succeeds" (-1/-1)."""
    tracker = WindowTracker(60)
    tracker.take([ref(1, START + 1)])
    assert tracker.open is not None
    process = FinalInvokeProcess(tracker.open, RetryPolicy())
    for attempt in range(1, 50):
        assert process.next_decision(START + 61 + attempt) == Invoke((), attempt)
        process.record_result(FunctionFailed("E", "boom"), BatchFailed("boom"))
        assert isinstance(process.next_decision(START + 61 + attempt), Backoff)
