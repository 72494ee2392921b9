"""Kinesis and DynamoDB Streams mappings: defaults, ranges and the keys a stream source refuses.

Both kinds resolve to one `StreamMapping` (spec §1.3): they differ only in the ARN, in DynamoDB
refusing `AT_TIMESTAMP`, and in their filter data key. Messages are AWS's own where AWS has one
(spec §1.6), so a search for the text finds the AWS docs and forum answers that explain it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from poller.config.destinations import parse_destination
from poller.config.filters import filter_problems
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolved import Location, StartingPosition, StreamKind, StreamMapping
from poller.config.sources import KIND_TITLES, DynamoDbStreamArn, KinesisConsumerArn, KinesisStreamArn
from poller.config.sqs import UNSUPPORTED_DESTINATION, batch_size_range_message

DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 10_000
DEFAULT_PARALLELIZATION_FACTOR = 1
RETRY_UNTIL_EXPIRED = -1
"""`MaximumRetryAttempts` -1: retry until the record expires (spec §1.4), AWS's default."""
NO_MAXIMUM_AGE = -1

MISSING_STARTING_POSITION = (
    "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
    "Member must not be null."
)
"""spec §1.6: AWS's message for a stream source without `StartingPosition`."""

PARALLEL_WINDOWS = (
    "TumblingWindowInSeconds cannot be combined with ParallelizationFactor greater than 1: a window's "
    "state is kept per shard and its batches must run in order. Set ParallelizationFactor to 1 or "
    "TumblingWindowInSeconds to 0."
)
"""spec §8 (UNVERIFIED against AWS, which gives no message): refused, as the state of one shard's
window cannot be carried through batches that run at once."""

# SQS scaling and Kafka parameters; a stream's concurrency is shards × ParallelizationFactor.
_NOT_FOR_STREAMS = (
    ("ScalingConfig", "scaling_config"),
    ("ProvisionedPollerConfig", "provisioned_poller_config"),
    ("Topics", "topics"),
    ("SelfManagedEventSource", "self_managed_event_source"),
    ("SelfManagedKafkaEventSourceConfig", "self_managed_kafka_event_source_config"),
    ("AmazonManagedKafkaEventSourceConfig", "amazon_managed_kafka_event_source_config"),
    ("SourceAccessConfigurations", "source_access_configurations"),
)

_EXPECTED_ARN: dict[StreamKind, str] = {
    "kinesis": "arn:aws:kinesis:<region>:<12-digit account id>:stream/<stream name>",
    "dynamodb": "arn:aws:dynamodb:<region>:<12-digit account id>:table/<table name>/stream/<stream label>",
}

_DESTINATION_PATH = ("DestinationConfig", "OnFailure", "Destination")


def resolve_stream(
    raw: RawMapping, ctx: MappingContext, kind: StreamKind
) -> tuple[StreamMapping | None, list[Problem]]:
    """The resolved mapping (None if any error) and every problem found, warnings included.

    Warnings (advice about how a valid mapping will behave) are only given for a mapping that
    resolves; an invalid one gets its errors.
    """
    title = KIND_TITLES[kind]
    arn = raw.event_source_arn or ""
    stream, arn_message = _parse_stream_arn(arn, kind)
    problems: list[Problem] = []
    if arn_message is not None:
        problems.append(ctx.problem(("EventSourceArn",), arn_message))
    for key, attribute in _NOT_FOR_STREAMS:
        if getattr(raw, attribute) is not None:
            problems.append(ctx.problem((key,), f"{key} is not valid for {title} event sources."))

    position, timestamp, position_problems = _starting_position(raw, ctx, kind, arn)
    problems += position_problems

    batch_size = DEFAULT_BATCH_SIZE if raw.batch_size is None else raw.batch_size
    range_message = batch_size_range_message(batch_size, limit=MAX_BATCH_SIZE)
    if range_message is not None:
        problems.append(ctx.problem(("BatchSize",), range_message))

    window = raw.tumbling_window_in_seconds or 0  # the API's 0-900 is checked by RawMapping; 0 = off
    if window and (raw.parallelization_factor or DEFAULT_PARALLELIZATION_FACTOR) > 1:
        problems.append(ctx.problem(("TumblingWindowInSeconds",), PARALLEL_WINDOWS))

    destination = raw.destination_config.failure_destination if raw.destination_config else None
    if destination is not None and (refused := _destination_problem(destination)) is not None:
        problems.append(ctx.problem(_DESTINATION_PATH, refused))

    patterns = tuple(f.pattern for f in raw.filter_criteria.filters) if raw.filter_criteria else ()
    problems += filter_problems(patterns, ctx, kind)

    if problems or stream is None or position is None:
        return None, problems
    region, account_id, stream_name = stream
    retries = RETRY_UNTIL_EXPIRED if raw.maximum_retry_attempts is None else raw.maximum_retry_attempts
    mapping = StreamMapping(
        name=raw.name,
        location=Location(ctx.file, ctx.lines.line_of()),
        source_kind=kind,
        event_source_arn=arn,
        region=region,
        account_id=account_id,
        stream_name=stream_name,
        function_name=raw.function_name,
        function_timeout_seconds=raw.function_timeout,
        enabled=raw.enabled,
        batch_size=batch_size,
        maximum_batching_window_seconds=raw.maximum_batching_window_in_seconds or 0,
        starting_position=position,
        starting_position_timestamp=timestamp,
        parallelization_factor=raw.parallelization_factor or DEFAULT_PARALLELIZATION_FACTOR,
        bisect_batch_on_function_error=bool(raw.bisect_batch_on_function_error),
        maximum_retry_attempts=retries,
        maximum_record_age_seconds=(
            NO_MAXIMUM_AGE if raw.maximum_record_age_in_seconds is None else raw.maximum_record_age_in_seconds
        ),
        report_batch_item_failures="ReportBatchItemFailures" in raw.function_response_types,
        on_failure_destination=destination,
        filter_patterns=patterns,
        tumbling_window_seconds=window,
    )
    return mapping, _warnings(mapping, ctx)


def _parse_stream_arn(arn: str, kind: StreamKind) -> tuple[tuple[str, str, str] | None, str | None]:
    """(region, account id, stream or table name), or the message saying what is wrong."""
    if kind == "kinesis":
        kinesis = KinesisStreamArn.parse(arn)
        if kinesis is not None:
            return (kinesis.region, kinesis.account_id, kinesis.stream_name), None
        consumer = KinesisConsumerArn.parse(arn)
        if consumer is not None:
            # spec §1.4: AWS accepts a consumer ARN (enhanced fan-out); poller reads with GetRecords.
            return None, (
                f"Invalid EventSourceArn: {arn}: Kinesis stream consumer ARNs (enhanced fan-out) are "
                f"not supported; use the stream ARN: {consumer.stream_arn}"
            )
    else:
        dynamodb = DynamoDbStreamArn.parse(arn)
        if dynamodb is not None:
            return (dynamodb.region, dynamodb.account_id, dynamodb.table_name), None
    return None, f"Invalid EventSourceArn: {arn} (expected {_EXPECTED_ARN[kind]})"


def _starting_position(
    raw: RawMapping, ctx: MappingContext, kind: StreamKind, arn: str
) -> tuple[StartingPosition | None, float | None, list[Problem]]:
    """spec §1.3, §1.6: required; `AT_TIMESTAMP` is Kinesis-only and needs a past timestamp."""
    position = _as_position(raw.starting_position)
    given = raw.starting_position_timestamp
    problems: list[Problem] = []
    timestamp: float | None = None
    if position is None:
        problems.append(ctx.problem(("StartingPosition",), MISSING_STARTING_POSITION))
    elif kind == "dynamodb" and position == "AT_TIMESTAMP":
        message = f"Unsupported starting position for arn type: {arn}"
        problems.append(ctx.problem(("StartingPosition",), message))
    elif position == "AT_TIMESTAMP" and given is None:
        problems.append(ctx.problem(("StartingPositionTimestamp",), "Need to specify a timestamp"))
    elif position == "AT_TIMESTAMP" and given is not None:
        timestamp = _epoch_seconds(given)
        if timestamp > time.time():
            message = (
                f"StartingPositionTimestamp {_iso(given)} is in the future; "
                "it must not be later than the current time."
            )
            problems.append(ctx.problem(("StartingPositionTimestamp",), message))
    if given is not None and position != "AT_TIMESTAMP":
        if kind == "dynamodb":
            message = "StartingPositionTimestamp is not valid for DynamoDB event sources."
        else:
            message = (
                "StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP; "
                "remove it or set StartingPosition: AT_TIMESTAMP."
            )
        problems.append(ctx.problem(("StartingPositionTimestamp",), message))
    return position, timestamp, problems


def _as_position(text: str | None) -> StartingPosition | None:
    # RawMapping has already refused any other value with AWS's enum message.
    match text:
        case "TRIM_HORIZON":
            return "TRIM_HORIZON"
        case "LATEST":
            return "LATEST"
        case "AT_TIMESTAMP":
            return "AT_TIMESTAMP"
        case _:
            return None


def _aware(value: datetime) -> datetime:
    """A date-time without a zone is UTC, as AWS reads ISO timestamps."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _epoch_seconds(value: datetime) -> float:
    return _aware(value).timestamp()


def _iso(value: datetime) -> str:
    return _aware(value).isoformat()


def _destination_problem(destination: str) -> str | None:
    """spec §1.3, §6.1: a stream's on-failure destination is a standard queue or topic, or a bucket."""
    if destination.startswith("kafka://"):
        return UNSUPPORTED_DESTINATION  # Kafka topics are for Kafka sources only
    try:
        parse_destination(destination)
    except ValueError as exc:
        text = str(exc)
        return text[:1].upper() + text[1:]
    return None


def _warnings(mapping: StreamMapping, ctx: MappingContext) -> list[Problem]:
    if mapping.maximum_retry_attempts != RETRY_UNTIL_EXPIRED or mapping.on_failure_destination is not None:
        return []
    # spec §5.2: a failing batch is retried until its records expire, holding back its shard.
    message = (
        "MaximumRetryAttempts is -1 (retry until the record expires) and there is no on-failure "
        "destination: one record that keeps failing blocks its shard until it expires "
        "(MaximumRecordAgeInSeconds, or the stream's retention period) and is then dropped. "
        "Set MaximumRetryAttempts, MaximumRecordAgeInSeconds or DestinationConfig.OnFailure."
    )
    return [ctx.problem(("MaximumRetryAttempts",), message, severity="warning")]
