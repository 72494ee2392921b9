"""A mapping definition exactly as written: the Lambda CreateEventSourceMapping shape (DESIGN §1.4).

Keys keep their AWS (PascalCase) names so SAM/CloudFormation settings copy over unchanged; Python
attributes are snake_case. Every member of botocore's `CreateEventSourceMappingRequest` is here,
nested ones included. This layer checks types and refuses unknown keys, as botocore does on the
client; the model's lengths, ranges, enums and patterns are checked by `poller.config.aws_model`
with Lambda's own messages, and which keys a source accepts, its defaults and its cross-field
rules live in the per-source resolvers (`poller.config.sqs`, …), because those differ by source
(spec §1.3).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_pascal

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"

STARTING_POSITIONS = ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON")


class _AwsShape(BaseModel):
    # Unknown keys are refused, not ignored: a misspelt `MaximumBatchingWindowInSecond` must not
    # silently fall back to a default (DESIGN §1.4).
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_pascal)


def _aws_enum_check(value: str | None) -> str | None:
    if value is not None and value not in STARTING_POSITIONS:
        # spec §1.6: AWS's wording, including its (unsorted) order of the enum values.
        raise ValueError(
            f"1 validation error detected: Value '{value}' at 'startingPosition' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(STARTING_POSITIONS)}]"
        )
    return value


def _unix_seconds(value: object) -> object:
    """A number is Unix seconds, as AWS takes it (spec §1.3); anything else is left to pydantic.

    Pydantic alone would read a number above 2e10 as milliseconds, so a mistyped value in ms would
    quietly become a date in the past instead of being refused as one in the future.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{value} is not a Unix time in seconds") from None
    return value


def _record_age_check(value: int | None) -> int | None:
    if value is not None and 0 <= value < 60:
        # spec §1.4: the API range is -1…604800, yet 0–59 are refused.
        raise ValueError("Input should be -1 or between 60 and 604800")
    return value


class Filter(_AwsShape):
    pattern: str


class FilterCriteria(_AwsShape):
    filters: tuple[Filter, ...] = ()
    """At most 5 (spec §7.1); the count is checked with the patterns (`poller.config.filters`)."""


class DestinationTarget(_AwsShape):
    destination: str | None = None
    """An ARN, `kafka://topic` or `file:///path.jsonl`; `""` means none (as in AWS)."""


class DestinationConfig(_AwsShape):
    on_failure: DestinationTarget | None = None
    on_success: DestinationTarget | None = None

    @property
    def failure_destination(self) -> str | None:
        """`OnFailure.Destination`; None when absent or `""` (AWS's way of removing it)."""
        return (self.on_failure.destination or None) if self.on_failure else None

    @property
    def success_destination(self) -> str | None:
        return (self.on_success.destination or None) if self.on_success else None


class ScalingConfig(_AwsShape):
    maximum_concurrency: int | None = None


class ProvisionedPollerConfig(_AwsShape):
    # The model's ranges are checked by `aws_model`; SQS's floor of 2 by the resolver
    # (`poller.config.resolve`), which knows the source, as it knows the default (spec §1.3).
    minimum_pollers: int | None = None
    """None: the source's default, 2 for SQS, 1 for Kafka."""
    maximum_pollers: int | None = None
    """None: 200."""
    poller_group_name: str | None = None


class KafkaEndpoints(_AwsShape):
    kafka_bootstrap_servers: tuple[str, ...] = Field(alias="KAFKA_BOOTSTRAP_SERVERS")


class SelfManagedEventSource(_AwsShape):
    endpoints: KafkaEndpoints


class SchemaRegistryAccessConfig(_AwsShape):
    type: str
    uri: str = Field(alias="URI")


class SchemaValidationConfig(_AwsShape):
    attribute: str


class SchemaRegistryConfig(_AwsShape):
    schema_registry_uri: str | None = Field(default=None, alias="SchemaRegistryURI")
    event_record_format: str | None = None
    access_configs: tuple[SchemaRegistryAccessConfig, ...] | None = None
    schema_validation_configs: tuple[SchemaValidationConfig, ...] | None = None


class KafkaConsumerConfig(_AwsShape):
    consumer_group_id: str | None = None
    schema_registry_config: SchemaRegistryConfig | None = None
    """Accepted in its AWS shape; a mapping that uses it is not startable (poller delivers records as
    stored, it does not decode them through a registry)."""


class SourceAccessConfiguration(_AwsShape):
    type: str
    uri: str = Field(alias="URI")


class MetricsConfig(_AwsShape):
    metrics: tuple[str, ...] = ()


class LoggingConfig(_AwsShape):
    system_log_level: str | None = None


class DocumentDbEventSourceConfig(_AwsShape):
    database_name: str | None = None
    collection_name: str | None = None
    full_document: str | None = None


class RawMapping(_AwsShape):
    """One mapping as the file spells it; `None` means "not given" so resolvers can tell."""

    # Extensions (not in the Lambda API).
    name: str = Field(pattern=NAME_PATTERN)
    """Stable id: keys checkpoints, metric labels and logs; unique across all files."""
    function_timeout: Annotated[int, Field(ge=1, le=900)] = 3
    """Seconds, as a Lambda function's timeout."""

    # CreateEventSourceMapping parameters.
    event_source_arn: str | None = None
    function_name: str
    enabled: bool = True
    batch_size: int | None = None
    """Range depends on the source (spec §1.3), so it is checked there, with AWS's message."""
    maximum_batching_window_in_seconds: int | None = None
    starting_position: Annotated[str | None, AfterValidator(_aws_enum_check)] = None
    starting_position_timestamp: Annotated[datetime | None, BeforeValidator(_unix_seconds)] = None
    """An ISO 8601 date-time (no zone = UTC) or Unix seconds."""
    parallelization_factor: int | None = None
    bisect_batch_on_function_error: bool | None = None
    maximum_retry_attempts: int | None = None
    maximum_record_age_in_seconds: Annotated[int | None, AfterValidator(_record_age_check)] = None
    function_response_types: tuple[str, ...] = ()
    filter_criteria: FilterCriteria | None = None
    destination_config: DestinationConfig | None = None
    tumbling_window_in_seconds: int | None = None
    """0-900 (0: off) is checked by the botocore model (`aws_model`), so it is refused in AWS's words."""
    scaling_config: ScalingConfig | None = None
    provisioned_poller_config: ProvisionedPollerConfig | None = None
    topics: tuple[str, ...] | None = None
    """Kafka: exactly one topic (the model's count and pattern, `aws_model`)."""
    queues: tuple[str, ...] | None = None
    """Amazon MQ: exactly one queue; accepted, not startable (`poller.config.unstartable`)."""
    self_managed_event_source: SelfManagedEventSource | None = None
    self_managed_kafka_event_source_config: KafkaConsumerConfig | None = None
    amazon_managed_kafka_event_source_config: KafkaConsumerConfig | None = None
    source_access_configurations: tuple[SourceAccessConfiguration, ...] | None = None
    document_db_event_source_config: DocumentDbEventSourceConfig | None = Field(
        default=None, alias="DocumentDBEventSourceConfig"
    )
    kms_key_arn: str | None = Field(default=None, alias="KMSKeyArn")
    """Accepted and not used: poller keeps filter criteria in memory, not encrypted at rest."""
    metrics_config: MetricsConfig | None = None
    logging_config: LoggingConfig | None = None
    tags: dict[str, str] | None = None
