"""Which shards of a stream may be read now: parents are finished before their children start.

Resharding closes a shard and opens one (split) or two-into-one (merge) children; records of a key
continue in the child, so reading a child before its parents are finished would deliver a key's
later records before its earlier ones (spec §5.2 "Resharding"). A parent that is no longer listed
(its records left the retention period) counts as finished.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ShardInfo:
    shard_id: str
    parent_ids: tuple[str, ...] = ()
    """`ParentShardId` and `AdjacentParentShardId`, where given."""
    ending_sequence_number: str | None = None
    """Set once the shard is closed: no record will be written to it after this one."""

    @property
    def closed(self) -> bool:
        return self.ending_sequence_number is not None


def ready_to_start(
    shards: Sequence[ShardInfo], *, finished: Collection[str], running: Collection[str]
) -> list[ShardInfo]:
    """The shards to start now, in listing order: not finished, not running, all parents finished."""
    listed = {shard.shard_id for shard in shards}
    return [
        shard
        for shard in shards
        if shard.shard_id not in finished
        and shard.shard_id not in running
        and all(parent in finished or parent not in listed for parent in shard.parent_ids)
    ]


def open_at_enable(shards: Sequence[ShardInfo]) -> tuple[list[ShardInfo], list[ShardInfo]]:
    """For LATEST on a first start: (open shards to read from their tip, closed ones to skip).

    A closed shard has no tip to start from: everything in it is older than the moment the mapping
    was enabled, so LATEST skips it as finished, and its children start from their beginning.
    """
    return [s for s in shards if not s.closed], [s for s in shards if s.closed]
