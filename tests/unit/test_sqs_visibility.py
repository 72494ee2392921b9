"""Which SQS deadlines are trusted and when a throttled batch may run again, on an injected clock."""

from __future__ import annotations

from poller.core.clock import ManualClock
from poller.core.sqs_visibility import (
    MAX_EXTEND_TRIES,
    Visibility,
    after_extension,
    due_for_extension,
    effective_visibility_seconds,
    extension_seconds,
    keeper_margin,
    received,
    reinvoke_fits,
    trusted_deadline,
)


def test_only_messages_near_a_deadline_not_yet_passed_and_not_lost_are_due() -> None:
    clock = ManualClock(now=100.0)
    entries = {
        "near": Visibility(received_at=70.0, deadline=102.0),
        "far": Visibility(received_at=90.0, deadline=120.0),
        "passed": Visibility(received_at=60.0, deadline=100.0),
        "lost": Visibility(received_at=70.0, deadline=101.0, failed_tries=3, lost=True),
    }
    assert due_for_extension(entries, clock.monotonic(), margin=5.0) == ["near"]
    clock.advance(16.0)
    assert due_for_extension(entries, clock.monotonic(), margin=5.0) == ["far"]


def test_a_confirmed_extension_counts_from_when_it_was_sent() -> None:
    entry = Visibility(received_at=0.0, deadline=30.0, failed_tries=2)
    extended = after_extension(entry, confirmed=True, sent_at=27.0, seconds=31, now=28.5)
    assert extended == Visibility(received_at=0.0, deadline=58.0, failed_tries=0)


def test_an_unconfirmed_extension_leaves_the_deadline_and_counts_a_try() -> None:
    entry = Visibility(received_at=0.0, deadline=30.0)
    failed = after_extension(entry, confirmed=False, sent_at=27.0, seconds=31, now=27.2)
    assert failed.deadline == 30.0
    assert failed.failed_tries == 1
    assert not failed.lost
    assert due_for_extension({"m": failed}, 28.0, margin=5.0) == ["m"], "tried again next round"


def test_tries_are_bounded_then_the_message_is_lost() -> None:
    entry = Visibility(received_at=0.0, deadline=30.0)
    for _ in range(MAX_EXTEND_TRIES):
        assert not entry.lost
        entry = after_extension(entry, confirmed=False, sent_at=26.0, seconds=31, now=26.1)
    assert entry.lost
    assert entry.deadline == 30.0
    assert due_for_extension({"m": entry}, 27.0, margin=5.0) == []


def test_a_failure_answered_after_the_deadline_loses_the_message_at_once() -> None:
    entry = Visibility(received_at=0.0, deadline=30.0)
    late = after_extension(entry, confirmed=False, sent_at=29.5, seconds=31, now=30.2)
    assert late.lost
    assert late.failed_tries == 1


def test_a_batch_deadline_is_trusted_only_while_every_message_is_surely_in_hand() -> None:
    a = Visibility(received_at=0.0, deadline=30.0)
    b = Visibility(received_at=1.0, deadline=25.0)
    assert trusted_deadline([a, b], now=10.0) == 25.0
    assert trusted_deadline([a, b], now=25.0) is None
    assert trusted_deadline([a, None], now=10.0) is None
    assert trusted_deadline([a, Visibility(0.0, 40.0, 3, True)], now=10.0) is None
    assert trusted_deadline([], now=10.0) is None


def test_a_reinvoke_needs_the_wait_and_the_whole_invoke_before_the_deadline() -> None:
    clock = ManualClock(now=0.0)
    batch = [received(clock.monotonic(), 10)]  # deadline 10
    clock.advance(2.0)
    fits = {"invoke_seconds": 5.0, "retry_seconds": 10.0, "safety": 1.0}
    assert reinvoke_fits(batch, now=clock.monotonic(), wait=2.0, **fits)  # 2 + 2 + 5 + 1 = 10
    # The wait alone fits with room to spare, but the invoke would outlive the visibility.
    assert not reinvoke_fits(batch, now=clock.monotonic(), wait=2.5, **fits)
    clock.advance(3.0)
    assert not reinvoke_fits(batch, now=clock.monotonic(), wait=0.5, **fits)


def test_a_reinvoke_may_use_visibility_the_keeper_had_confirmed() -> None:
    entry = received(0.0, 10)
    extended = after_extension(entry, confirmed=True, sent_at=6.0, seconds=31, now=6.1)
    refused = after_extension(entry, confirmed=False, sent_at=6.0, seconds=31, now=6.1)
    fits = {"wait": 1.0, "invoke_seconds": 5.0, "retry_seconds": 10.0}
    assert reinvoke_fits([extended], now=7.0, **fits)
    assert not reinvoke_fits([refused], now=7.0, **fits)
    assert not reinvoke_fits([extended, refused], now=7.0, **fits)


def test_throttle_retries_stop_when_the_visibility_timeout_since_the_receive_is_over() -> None:
    """spec §5.1 item 6: retried until the visibility timeout expires, even if the keeper extended."""
    entry = after_extension(received(0.0, 10), confirmed=True, sent_at=8.0, seconds=31, now=8.1)
    fits = {"invoke_seconds": 1.0, "retry_seconds": 10.0}
    assert reinvoke_fits([entry], now=8.5, wait=1.0, **fits)
    assert not reinvoke_fits([entry], now=9.5, wait=1.0, **fits)


def test_a_lost_or_released_message_is_never_reinvoked() -> None:
    lost = Visibility(received_at=0.0, deadline=50.0, failed_tries=3, lost=True)
    fits = {"now": 1.0, "wait": 0.0, "invoke_seconds": 1.0, "retry_seconds": 60.0}
    assert not reinvoke_fits([lost], **fits)
    assert not reinvoke_fits([None], **fits)
    assert not reinvoke_fits([], **fits)


def test_intervals_follow_the_queue_and_the_function() -> None:
    assert keeper_margin(2) == 0.5
    assert keeper_margin(8) == 2.0
    assert keeper_margin(300) == 5.0
    assert extension_seconds(30, 0, 3) == 33
    assert extension_seconds(120, 5, 3) == 120
    # spec §5.1 item 7: window + timeout > visibility makes it window + timeout + 30.
    assert effective_visibility_seconds(10, 0, 3) == 10
    assert effective_visibility_seconds(10, 5, 6) == 41
