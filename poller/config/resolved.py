"""Resolved mappings: one frozen value per source kind, defaults applied, every rule checked.

What the rest of poller consumes. A value of these types is known-good: the runtime never
re-validates configuration, and never sees AWS key spellings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal


@dataclass(frozen=True, slots=True)
class Location:
    """Where a mapping was defined, for messages that send the user back to the file."""

    file: Path | None
    line: int | None

    def __str__(self) -> str:
        if self.file is None:
            return "<unknown>" if self.line is None else f"line {self.line}"
        return str(self.file) if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class SqsMapping:
    """An SQS queue (standard or FIFO) feeding a function (spec §1.3, §5.1)."""

    name: str
    location: Location
    event_source_arn: str
    region: str
    account_id: str
    queue_name: str
    fifo: bool
    function_name: str
    function_timeout_seconds: int
    enabled: bool
    batch_size: int
    maximum_batching_window_seconds: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None
    """ScalingConfig.MaximumConcurrency: cap on concurrent invocations; None = no cap."""
    minimum_pollers: int | None
    """ProvisionedPollerConfig; None when the mapping is not in provisioned mode."""
    maximum_pollers: int | None
    filter_patterns: tuple[str, ...] = ()
    """FilterCriteria.Filters[*].Pattern, already validated; records matching none are deleted unseen."""
    source_kind: ClassVar[str] = "sqs"


StreamKind = Literal["kinesis", "dynamodb"]
StartingPosition = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]


@dataclass(frozen=True, slots=True)
class StreamMapping:
    """A Kinesis data stream or a DynamoDB stream feeding a function (spec §1.3, §5.2).

    Both kinds share one shape: shards, a starting position, retries, bisection, record age and an
    on-failure destination mean the same for both (DynamoDB only lacks `AT_TIMESTAMP`).
    """

    name: str
    location: Location
    source_kind: StreamKind
    event_source_arn: str
    region: str
    account_id: str
    stream_name: str
    """Kinesis: the stream's name; DynamoDB: the table's name."""
    function_name: str
    function_timeout_seconds: int
    enabled: bool
    batch_size: int
    maximum_batching_window_seconds: int
    starting_position: StartingPosition
    starting_position_timestamp: float | None
    """Unix seconds; set only with `AT_TIMESTAMP` (Kinesis)."""
    parallelization_factor: int
    """Batches processed at once per shard, 1-10 (spec §9.2)."""
    bisect_batch_on_function_error: bool
    maximum_retry_attempts: int
    """Retries after the first attempt; -1 = until the record expires (spec §5.2)."""
    maximum_record_age_seconds: int
    """-1 = never (the stream's retention still applies)."""
    report_batch_item_failures: bool
    on_failure_destination: str | None
    """`DestinationConfig.OnFailure.Destination` as written, already validated; None = none."""
    filter_patterns: tuple[str, ...] = ()
    """FilterCriteria.Filters[*].Pattern, already validated; records matching none are skipped unseen."""


ResolvedMapping = SqsMapping | StreamMapping
"""Every kind of resolved mapping; `source_kind` tells them apart at run time."""
