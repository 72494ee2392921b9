"""Checkpoints of stream shards (DESIGN §2 `state/`, spec §0): the value and the store protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The position of one mapping in one shard; two mappings on one stream never share a checkpoint."""

    mapping: str
    shard_id: str
    sequence_number: str | None  # last acknowledged record's sequence number; None = not started
    shard_end: bool = False  # the shard (closed by resharding) was read to its end: children may start
    updated_at_epoch: float = 0.0


def sequence_key(sequence_number: str) -> tuple[int, str]:
    """Sort key of a Kinesis/DynamoDB sequence number.

    They are decimal strings of up to 128 digits, so string order is wrong ("9" > "10") and float
    loses precision; (length, digits) without leading zeros is integer order without big-int parsing.
    """
    if not (sequence_number.isascii() and sequence_number.isdecimal()):
        raise ValueError(f"sequence number must be a decimal string, got {sequence_number!r}")
    digits = sequence_number.lstrip("0")
    return (len(digits), digits)


class CheckpointStore(Protocol):
    async def get(self, mapping: str, shard_id: str) -> Checkpoint | None: ...

    async def all_for(self, mapping: str) -> dict[str, Checkpoint]:
        """Checkpoints of one mapping keyed by shard id."""
        ...

    async def put(self, checkpoint: Checkpoint) -> None:
        """Durable (committed) when it returns; never moves a sequence number back; shard_end is sticky."""
        ...

    async def delete_mapping(self, mapping: str) -> int:
        """Forget a deleted mapping's checkpoints; returns how many were removed."""
        ...

    async def aclose(self) -> None: ...
