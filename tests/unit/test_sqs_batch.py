"""The pure SQS core (spec §4, §5.1): what is deleted, given back and held for FIFO order."""

from __future__ import annotations

import pytest

from poller.core.backoff import Backoff
from poller.core.batch_result import BatchFailed, BatchNotInvoked, BatchPartiallyFailed, BatchSucceeded
from poller.core.outcome import NotInvoked, Succeeded
from poller.core.sqs_batch import Acknowledge, Finished, GiveBack, InvokeAll, SqsBatchProcess, SqsItem

NOW = 1_700_000_000.0
ITEMS = [SqsItem("a", "g1"), SqsItem("b", "g2"), SqsItem("c", "g1")]


def process(attempt: int = 1) -> SqsBatchProcess:
    return SqsBatchProcess(ITEMS, attempt=attempt, report_batch_item_failures=True)


def throttle(retry_after: float | None = None) -> NotInvoked:
    return NotInvoked("throttled", "429", retry_after_seconds=retry_after)


def test_success_deletes_everything_and_fails_no_group() -> None:
    p = process()
    assert p.next_decision(NOW) == InvokeAll(1)
    p.record_result(Succeeded(b"null", request_id="r"), BatchSucceeded())
    assert p.next_decision(NOW) == Acknowledge(("a", "b", "c"))
    assert p.next_decision(NOW) == Finished(frozenset())


def test_a_partial_response_deletes_the_rest_and_fails_the_listed_groups() -> None:
    """spec §4.2: only the listed messages are retried (by the queue); their FIFO groups wait."""
    p = process()
    p.next_decision(NOW)
    p.record_result(Succeeded(b"", request_id="r"), BatchPartiallyFailed(("b",)))
    assert p.next_decision(NOW) == Acknowledge(("a", "c"))
    assert p.next_decision(NOW) == Finished(frozenset({"g2"}))


def test_the_partial_response_is_classified_by_the_core_when_not_given() -> None:
    p = process()
    p.next_decision(NOW)
    body = b'{"batchItemFailures":[{"itemIdentifier":"c"}]}'
    assert p.record_result(Succeeded(body, request_id="r")) == BatchPartiallyFailed(("c",))
    assert p.next_decision(NOW) == Acknowledge(("a", "b"))


def test_a_failure_deletes_nothing_and_fails_every_group() -> None:
    p = process()
    p.next_decision(NOW)
    p.record_result(Succeeded(b"", request_id="r"), BatchFailed("error"))
    assert p.next_decision(NOW) == Finished(frozenset({"g1", "g2"}))


def test_a_throttle_waits_its_retry_after_exactly_then_invokes_again_with_the_same_attempt() -> None:
    """spec §5.1 item 6: a throttle is not an attempt."""
    p = process(attempt=3)
    p.next_decision(NOW)
    p.record_result(throttle(2.5), BatchNotInvoked(throttle(2.5)))
    assert p.next_decision(NOW) == Backoff(2.5, "throttled", (1.0, 1.0))
    assert p.next_decision(NOW) == InvokeAll(3)


def test_throttles_without_retry_after_back_off_exponentially_with_full_jitter_below() -> None:
    p = process()
    waits = []
    for _ in range(7):
        p.next_decision(NOW)
        p.record_result(throttle(), BatchNotInvoked(throttle()))
        decision = p.next_decision(NOW)
        assert isinstance(decision, Backoff)
        waits.append((decision.seconds, decision.jitter))
    assert waits == [(s, (0.5, 1.0)) for s in (1, 2, 4, 8, 16, 30, 30)]


def test_a_wait_that_cannot_be_made_gives_the_batch_back_and_fails_its_groups() -> None:
    p = process()
    p.next_decision(NOW)
    p.record_result(throttle(), BatchNotInvoked(throttle()))
    assert isinstance(p.next_decision(NOW), Backoff)
    assert p.cannot_wait()
    assert p.next_decision(NOW) == GiveBack(("a", "b", "c"))
    assert p.next_decision(NOW) == Finished(frozenset({"g1", "g2"}))


def test_results_must_follow_an_invoke() -> None:
    p = process()
    with pytest.raises(RuntimeError):
        p.record_result(Succeeded(b"", request_id="r"), BatchSucceeded())
    p.next_decision(NOW)
    with pytest.raises(RuntimeError):
        p.next_decision(NOW)


def test_a_huge_retry_after_is_waited_no_longer_than_the_longest_backoff() -> None:
    """spec §4.1 with ops anchors' cap: a bogus Retry-After must not hold the batch and its FIFO
    group for hours; it is waited exactly up to the longest backoff (30 s), like the streams'."""
    p = process()
    p.next_decision(NOW)
    p.record_result(throttle(3600.0), BatchNotInvoked(throttle(3600.0)))
    assert p.next_decision(NOW) == Backoff(30.0, "throttled", (1.0, 1.0))
