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
    declared_function: str | None = None
    """The function's name when `function_name` names a function declared under `Functions:`
    (DESIGN §1.5.1): it runs in poller's execution environments, and `function_timeout_seconds` is
    that function's `Timeout`. None: another target (Lambda Invoke, `python:`, HTTP)."""
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
    declared_function: str | None = None
    """The function's name when `function_name` names a function declared under `Functions:`
    (DESIGN §1.5.1): it runs in poller's execution environments, and `function_timeout_seconds` is
    that function's `Timeout`. None: another target (Lambda Invoke, `python:`, HTTP)."""
    tumbling_window_seconds: int = 0
    """TumblingWindowInSeconds: 0 = off, 1-900 = stateful windows of that length (spec §8); only
    with ParallelizationFactor 1."""


@dataclass(frozen=True, slots=True)
class KafkaMapping:
    """A topic of a self-managed Kafka cluster feeding a function (spec §1.3, §1.4, §5.3, §9.3).

    Amazon MSK is not supported: poller reaches brokers by their bootstrap servers only. Retries,
    bisection, record age, partial batch responses and the on-failure destination are AWS's
    provisioned-mode controls; poller applies them whatever the mode, and their defaults are the
    on-demand behaviour (retry the whole batch until it succeeds, spec §5.3).
    """

    name: str
    location: Location
    event_source_arn: str
    """A readable stand-in, `kafka://<first bootstrap server>/<topic>`: self-managed Kafka has no
    ARN (spec §1.2), so this only names the source on /status and in logs."""
    topic: str
    bootstrap_servers: tuple[str, ...]
    """`host:port` pairs: the mapping's own `KAFKA_BOOTSTRAP_SERVERS`, else `kafka.bootstrap_servers`
    from the settings."""
    consumer_group_id: str
    """`SelfManagedKafkaEventSourceConfig.ConsumerGroupId`; defaults to the mapping's Name, our stand-in
    for the ESM UUID AWS uses (spec §1.2, §5.3). Unique across Kafka mappings."""
    function_name: str
    function_timeout_seconds: int
    enabled: bool
    batch_size: int
    maximum_batching_window_ms: int
    """500 when `MaximumBatchingWindowInSeconds` is absent (spec §1.3, §2), else those seconds × 1000;
    the window starts when the first record arrives."""
    starting_position: StartingPosition
    """Used only when the consumer group has no committed offset (spec §5.3); default TRIM_HORIZON."""
    starting_position_timestamp: float | None
    """Unix seconds; set only with `AT_TIMESTAMP`."""
    bisect_batch_on_function_error: bool
    maximum_retry_attempts: int
    """Retries after the first attempt; -1 = until the batch succeeds or the records expire (spec
    §5.3). AWS caps -1 at 10 retries when there is an on-failure destination; that is the runtime's
    to apply, the value here is as written."""
    maximum_record_age_seconds: int
    """-1 = never."""
    report_batch_item_failures: bool
    on_failure_destination: str | None
    """SQS, SNS, S3, `kafka://<topic>` (same cluster, not the source topic) or `file://`; None = none."""
    filter_patterns: tuple[str, ...] = ()
    """FilterCriteria.Filters[*].Pattern, already validated; non-matching records are committed unseen."""
    source_access_configurations: tuple[tuple[str, str], ...] = ()
    """`SourceAccessConfigurations` as written, (Type, URI) pairs. Informational: the credentials and
    certificates themselves come from the settings' `kafka:` section, never from a mapping."""
    declared_function: str | None = None
    """The function's name when `function_name` names a function declared under `Functions:`
    (DESIGN §1.5.1): it runs in poller's execution environments, and `function_timeout_seconds` is
    that function's `Timeout`. None: another target (Lambda Invoke, `python:`, HTTP)."""
    source_kind: ClassVar[str] = "kafka"


UnstartableKind = Literal["mq", "documentdb", "msk", "kafka"]


@dataclass(frozen=True, slots=True)
class UnstartableMapping:
    """A mapping Lambda accepts and poller cannot run yet: Amazon MQ, DocumentDB, Amazon MSK named by
    its cluster ARN, a Kafka schema registry (`poller.config.unstartable`).

    It is valid as AWS validates it, so it loads (and the API keeps it) like any other; the runtime
    never opens its source, and reports it as not running with `reason` (DESIGN §1.6, spec §1.5).
    """

    name: str
    location: Location
    source_kind: UnstartableKind
    event_source_arn: str
    """The source's ARN; for self-managed Kafka, the same `kafka://<server>/<topic>` stand-in as
    `KafkaMapping`'s."""
    function_name: str
    function_timeout_seconds: int
    enabled: bool
    reason: str
    """Why poller cannot run it: what /status shows as StateTransitionReason."""
    on_failure_destination: str | None = None
    report_batch_item_failures: bool = False
    declared_function: str | None = None
    """As for the other kinds (DESIGN §1.5.1)."""


ResolvedMapping = SqsMapping | StreamMapping | KafkaMapping | UnstartableMapping
"""Every kind of resolved mapping; `source_kind` tells them apart at run time."""
