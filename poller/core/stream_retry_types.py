"""The values of the stream retry state machine (spec §5.2): its inputs, its policy, its decisions.

Split from `stream_retry` so that sources, destinations and tests can name the decisions they
`match` on without the machine; `stream_retry` re-exports all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from poller.core.backoff import Backoff, BackoffPolicy
from poller.core.failure_records import FailureCondition
from poller.core.outcome import InvokeOutcome


@dataclass(frozen=True, slots=True)
class StreamRecordRef:
    """What the state machine needs of a record; the source keeps the record and maps back by
    sequence number (or by position)."""

    sequence_number: str
    """Decimal digits (Kinesis/DynamoDB sequence number, or a Kafka offset); ordered as integers."""
    arrival_epoch_seconds: float
    """When the record reached the stream; its age is measured from here."""
    size_bytes: int
    """What the record adds to the invoke payload."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The mapping's stream error-handling settings, with AWS's defaults (spec §1.3)."""

    maximum_retry_attempts: int = -1
    """-1 (until the records expire) or 0–10,000 retries after the first attempt."""
    maximum_record_age_seconds: int = -1
    """-1 (never) or 60–604,800, measured from each record's arrival."""
    bisect_on_function_error: bool = False
    report_batch_item_failures: bool = False
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        if not (self.maximum_retry_attempts == -1 or 0 <= self.maximum_retry_attempts <= 10_000):
            raise ValueError(f"MaximumRetryAttempts must be -1 or 0-10000, not {self.maximum_retry_attempts}")
        if not (self.maximum_record_age_seconds == -1 or 60 <= self.maximum_record_age_seconds <= 604_800):
            raise ValueError(
                f"MaximumRecordAgeInSeconds must be -1 or 60-604800, not {self.maximum_record_age_seconds}"
            )


@dataclass(frozen=True, slots=True)
class Invoke:
    """Invoke the function with exactly these records, in this order."""

    records: tuple[StreamRecordRef, ...]
    attempt: int
    """1 on the first run of these records; throttled tries repeat the number, as they do not count."""


@dataclass(frozen=True, slots=True)
class SendToDestination:
    """Discard these records: write one on-failure record describing them (spec §6), if configured."""

    records: tuple[StreamRecordRef, ...]
    condition: FailureCondition
    approximate_invoke_count: int
    last_outcome: InvokeOutcome | None
    """The last function run of these records (for `responseContext`/`requestId`); None if none."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Every record up to and including this sequence number is done; persist the position."""

    after_sequence_number: str


@dataclass(frozen=True, slots=True)
class Done:
    """The batch is finished; every record is in exactly one of the two tuples, in stream order."""

    acknowledged: tuple[StreamRecordRef, ...]
    sent_to_destination: tuple[StreamRecordRef, ...]


Decision = Invoke | Backoff | SendToDestination | Checkpoint | Done
