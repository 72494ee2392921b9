"""The checkpoint of a shard is the end of its finished prefix; children wait for their parents."""

from __future__ import annotations

import random

import pytest

from poller.core.shard_lineage import ShardInfo, open_at_enable, ready_to_start
from poller.core.shard_progress import ShardProgress


def test_watermark_moves_only_over_a_finished_prefix() -> None:
    """DESIGN §3: a record is checkpointed only after everything before it is finished too."""
    progress = ShardProgress()
    tickets = [progress.read(str(n)) for n in (10, 11, 12, 13)]
    assert progress.complete(tickets[1]) is None  # 10 is still running in another lane
    assert progress.complete(tickets[3]) is None
    assert progress.complete(tickets[0]) == "11"
    assert progress.outstanding == 2
    assert progress.complete(tickets[2]) == "13"
    assert progress.outstanding == 0
    assert progress.watermark == "13"


def test_completing_twice_or_a_passed_ticket_changes_nothing() -> None:
    progress = ShardProgress(watermark="5")
    first = progress.read("6")
    assert progress.complete(first) == "6"
    assert progress.complete(first) is None
    assert progress.watermark == "6"


def test_a_ticket_never_handed_out_is_a_bug() -> None:
    progress = ShardProgress()
    progress.read("1")
    with pytest.raises(ValueError, match="never handed out"):
        progress.complete(7)


def test_any_completion_order_ends_at_the_last_record() -> None:
    rng = random.Random(7)
    for _ in range(50):
        progress = ShardProgress()
        sequence = [str(n) for n in range(100, 100 + rng.randint(1, 40))]
        tickets = [progress.read(s) for s in sequence]
        order = tickets[:]
        rng.shuffle(order)
        marks: list[str] = []
        for ticket in order:
            moved = progress.complete(ticket)
            if moved is not None:
                marks.append(moved)
                # The watermark only ever passes records that are all finished.
                assert all(
                    t in order[: order.index(ticket) + 1] for t in tickets[: sequence.index(moved) + 1]
                )
        assert marks == sorted(marks, key=int)
        assert progress.watermark == sequence[-1]


def test_children_start_only_after_every_parent_finished() -> None:
    """spec §5.2: parent shards are processed before child shards (split and merge)."""
    parent = ShardInfo("s-0", ending_sequence_number="90")
    other = ShardInfo("s-1", ending_sequence_number="95")
    split_a = ShardInfo("s-2", parent_ids=("s-0",))
    merged = ShardInfo("s-3", parent_ids=("s-1", "s-0"))
    shards = [parent, other, split_a, merged]
    assert ready_to_start(shards, finished=set(), running=set()) == [parent, other]
    assert ready_to_start(shards, finished=set(), running={"s-0", "s-1"}) == []
    assert ready_to_start(shards, finished={"s-0"}, running={"s-1"}) == [split_a]
    assert ready_to_start(shards, finished={"s-0", "s-1"}, running={"s-2"}) == [merged]


def test_a_parent_gone_from_the_listing_counts_as_finished() -> None:
    """A trimmed parent has no records left to keep in order."""
    child = ShardInfo("s-5", parent_ids=("s-0",))
    assert ready_to_start([child], finished=set(), running=set()) == [child]


def test_latest_on_first_start_skips_closed_shards() -> None:
    closed = ShardInfo("s-0", ending_sequence_number="9")
    live = ShardInfo("s-1", parent_ids=("s-0",))
    assert open_at_enable([closed, live]) == ([live], [closed])
