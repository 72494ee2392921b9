"""What the shared stream helper needs from Kinesis or DynamoDB Streams, and nothing more.

The rest of `poller.sources.streams` drives shards, lanes and checkpoints the same way for both
sources (DESIGN §2: a plain helper, not a base class); each API module only lists shards, makes
iterators, reads records and turns them into Lambda records through this small protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError

from poller.aws_errors import read_error
from poller.core.shard_lineage import ShardInfo
from poller.core.stream_retry import StreamRecordRef
from poller.errors import SourceNotFound


@dataclass(frozen=True, slots=True)
class TrimHorizon:
    pass


@dataclass(frozen=True, slots=True)
class Latest:
    pass


@dataclass(frozen=True, slots=True)
class AtTimestamp:
    epoch_seconds: float


@dataclass(frozen=True, slots=True)
class AfterSequence:
    sequence_number: str


StartAt = TrimHorizon | Latest | AtTimestamp | AfterSequence


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One record as the function will see it, serialised once, with what the engine needs of it."""

    ref: StreamRecordRef
    record: dict[str, Any]
    """The Lambda record (spec §3.2, §3.3): what filters look at."""
    encoded: bytes
    lane_key: str
    """Partition key (Kinesis) or item key (DynamoDB): one key always runs in one lane (spec §9.2)."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    items: Sequence[StreamItem]
    next_iterator: str | None
    """None once a closed shard has been read to its end."""
    behind_ms: int | None
    """Kinesis's MillisBehindLatest; None where the source does not say."""


class IteratorExpired(Exception):
    """The iterator is too old (Kinesis: 5 minutes): make a new one from the last record read."""


class ReadThrottled(Exception):
    """ProvisionedThroughputExceeded / LimitExceeded: back off, then read again."""


class PositionTrimmed(Exception):
    """The position asked for has left the stream's retention: start again at TRIM_HORIZON."""


class StreamApi(Protocol):
    @property
    def kind(self) -> Literal["kinesis", "dynamodb"]: ...

    @property
    def max_read_records(self) -> int:
        """GetRecords' Limit ceiling: 10,000 (Kinesis), 1,000 (DynamoDB Streams)."""
        ...

    @property
    def idle_poll_seconds(self) -> float:
        """Wait between reads of a shard that had nothing new (spec §9.2: Kinesis 1/s, DynamoDB 4/s)."""
        ...

    async def retention_seconds(self) -> float:
        """How long records stay in the stream; they expire like MaximumRecordAgeInSeconds after that."""
        ...

    async def list_shards(self) -> list[ShardInfo]:
        """Every shard the stream lists now, open and closed, parents before children."""
        ...

    async def iterator(self, shard_id: str, start: StartAt) -> str: ...

    async def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
        """One GetRecords call; raises `IteratorExpired`, `ReadThrottled` or `PositionTrimmed`."""
        ...


def not_found(exc: ClientError, stream_arn: str, shard_id: str | None = None) -> Exception:
    """A refused call whose resource does not exist, as the `SourceNotFound` naming what is
    missing; other errors as they are.

    ResourceNotFound covers the stream, one of its shards and a Kinesis consumer alike, and only the
    message tells which. The message leads with the resource ("Stream x under account ... not
    found", "Shard ... in stream ... does not exist", "Could not find shard ...", "Consumer ...";
    DynamoDB Streams prefixes "Requested resource not found: "), so its head is what is matched:
    a stream's own name may contain "shard" or "consumer".
    """
    error = read_error(exc)
    if error.kind != "not_found":
        return exc
    message = error.message
    head = message.lower().removeprefix("requested resource not found:").strip()
    if head.startswith("consumer"):
        return SourceNotFound(f"Consumer not found: {message}")
    if head.startswith(("shard", "could not find shard")) or (shard_id is not None and shard_id in message):
        return SourceNotFound(f"Shard not found: {shard_id or '?'} in {stream_arn} ({message})")
    # spec §1.6: what AWS says when the stream does not exist.
    return SourceNotFound(f"Stream not found: {stream_arn}")
