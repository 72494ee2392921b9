"""spec §2 batching limits and spec §5.1 item 8 FIFO ordering, on the pure core with a manual clock."""

from __future__ import annotations

from poller.core.backoff import THROTTLE_BACKOFF
from poller.core.batching import MAX_PAYLOAD_BYTES, BatchBuilder, BatchLimits, FlushReason
from poller.core.clock import ManualClock
from poller.core.message_buffer import MessageBuffer
from poller.core.scaling import ConcurrencyScaler
from poller.core.sqs_event import SqsMessage


def msg(i: int, group: str | None = None, size: int = 10) -> SqsMessage:
    return SqsMessage(f"id{i}", f"rh{i}", group, b"x" * (size - 1))


def test_batch_full_at_batch_size() -> None:
    builder = BatchBuilder(BatchLimits(batch_size=3, window_seconds=0), started_at=0)
    for _ in range(3):
        assert builder.fits(10)
        builder.add(10)
    assert not builder.fits(10)
    assert builder.full_reason(10) is FlushReason.SIZE


def test_payload_cap_counts_envelope_and_lets_a_first_oversized_record_through() -> None:
    limits = BatchLimits(batch_size=10_000, window_seconds=5, envelope_bytes=100)
    builder = BatchBuilder(limits, started_at=0)
    builder.add(MAX_PAYLOAD_BYTES - 200)
    assert builder.fits(100)
    assert not builder.fits(101)
    assert builder.full_reason(101) is FlushReason.BYTES
    lone = BatchBuilder(limits, started_at=0)
    assert lone.fits(MAX_PAYLOAD_BYTES * 2)


def test_window_deadline_uses_the_injected_clock() -> None:
    clock = ManualClock()
    builder = BatchBuilder(BatchLimits(batch_size=100, window_seconds=2), started_at=clock.monotonic())
    assert not builder.window_elapsed(clock.monotonic())
    clock.advance(1.999)
    assert not builder.window_elapsed(clock.monotonic())
    clock.advance(0.001)
    assert builder.window_elapsed(clock.monotonic())


def test_buffer_takes_in_order_and_keeps_what_does_not_fit() -> None:
    buffer = MessageBuffer(capacity=100)
    buffer.extend(msg(i) for i in range(5))
    batch: list[SqsMessage] = []
    full = buffer.take(BatchBuilder(BatchLimits(batch_size=3, window_seconds=0), started_at=0), batch)
    assert full
    assert [m.message_id for m in batch] == ["id0", "id1", "id2"]
    assert len(buffer) == 2


def test_fifo_group_in_flight_is_skipped_without_reordering_it() -> None:
    buffer = MessageBuffer(capacity=100)
    buffer.extend([msg(1, "A"), msg(2, "B"), msg(3, "A"), msg(4, "C")])
    buffer.groups_in_flight = {"A"}
    batch: list[SqsMessage] = []
    buffer.take(BatchBuilder(BatchLimits(batch_size=10, window_seconds=0), started_at=0), batch)
    assert [m.message_id for m in batch] == ["id2", "id4"]
    buffer.groups_in_flight = set()
    later: list[SqsMessage] = []
    buffer.take(BatchBuilder(BatchLimits(batch_size=10, window_seconds=0), started_at=0), later)
    assert [m.message_id for m in later] == ["id1", "id3"]


def test_failed_group_messages_are_removed_for_hand_back() -> None:
    buffer = MessageBuffer(capacity=100)
    buffer.extend([msg(1, "A"), msg(2, "B"), msg(3, "A")])
    removed = buffer.remove_groups({"A"})
    assert [m.message_id for m in removed] == ["id1", "id3"]
    assert len(buffer) == 1


def test_buffer_room_is_bounded() -> None:
    buffer = MessageBuffer(capacity=10)
    assert buffer.has_room_for(10)
    buffer.extend(msg(i) for i in range(5))
    assert not buffer.has_room_for(6)
    assert buffer.has_room_for(5)


def test_scaler_starts_at_five_grows_with_backlog_and_respects_the_cap() -> None:
    """spec §9.1: start 5, +300/min while a backlog remains, never above MaximumConcurrency."""
    scaler = ConcurrencyScaler.for_mapping(12, None, None)
    assert scaler.target == 5
    assert scaler.observe(0.0, backlog=True, busy=5) == 10
    assert scaler.observe(0.5, backlog=True, busy=10) == 10  # at most one step a second
    assert scaler.observe(1.0, backlog=True, busy=10) == 12
    assert scaler.observe(2.0, backlog=True, busy=12) == 12
    assert scaler.observe(2.5, backlog=False, busy=0) == 12
    assert scaler.observe(62.5, backlog=False, busy=0) == 5


def test_scaler_does_not_grow_when_slots_are_idle_and_halves_on_throttle() -> None:
    scaler = ConcurrencyScaler.for_mapping(None, None, None)
    assert scaler.cap == 1250
    assert scaler.observe(0.0, backlog=True, busy=2) == 5
    assert scaler.throttled(1.0) == 2
    assert scaler.throttled(2.0) == 2
    tiny = ConcurrencyScaler.for_mapping(2, None, None)
    assert (tiny.target, tiny.cap) == (2, 2)


def test_backoff_doubles_to_a_cap() -> None:
    assert [THROTTLE_BACKOFF.delay(n) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 8.0, 30.0]
