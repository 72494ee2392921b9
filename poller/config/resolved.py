"""Resolved mappings: one frozen value per source kind, defaults applied, every rule checked.

What the rest of poller consumes. A value of these types is known-good: the runtime never
re-validates configuration, and never sees AWS key spellings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


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


ResolvedMapping = SqsMapping
"""Every kind of resolved mapping; becomes a union as stream and Kafka sources land."""
