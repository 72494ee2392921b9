"""SQS mappings: defaults, ranges and the keys an SQS source refuses (spec §1.3, §1.6).

Messages are AWS's own where AWS has one, so a search for the text finds the AWS docs and forum
answers that explain it.
"""

from __future__ import annotations

from poller.config.filters import filter_problems
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolved import Location, SqsMapping
from poller.config.sources import SqsQueueArn

DEFAULT_BATCH_SIZE = 10
MAX_BATCH_SIZE_STANDARD = 10_000
MAX_BATCH_SIZE_FIFO = 10
BATCH_WITHOUT_WINDOW_MAX = 10
DEFAULT_MIN_POLLERS = 2
DEFAULT_MAX_POLLERS = 200
"""spec §1.3: ProvisionedPollerConfig's defaults for an SQS source."""

# Stream and Kafka parameters; SQS has no shards, positions or retry counts of its own (its
# retries and DLQ come from the queue's visibility timeout and redrive policy).
_NOT_FOR_SQS = (
    ("StartingPosition", "starting_position"),
    ("StartingPositionTimestamp", "starting_position_timestamp"),
    ("ParallelizationFactor", "parallelization_factor"),
    ("BisectBatchOnFunctionError", "bisect_batch_on_function_error"),
    ("MaximumRetryAttempts", "maximum_retry_attempts"),
    ("MaximumRecordAgeInSeconds", "maximum_record_age_in_seconds"),
    ("TumblingWindowInSeconds", "tumbling_window_in_seconds"),
    ("Topics", "topics"),
    ("SelfManagedEventSource", "self_managed_event_source"),
    ("SelfManagedKafkaEventSourceConfig", "self_managed_kafka_event_source_config"),
    ("AmazonManagedKafkaEventSourceConfig", "amazon_managed_kafka_event_source_config"),
    ("SourceAccessConfigurations", "source_access_configurations"),
)

UNSUPPORTED_DESTINATION = "Unsupported DestinationConfig parameter for given event source mapping type."


def batch_size_range_message(value: int, *, limit: int) -> str | None:
    """AWS's constraint message for a BatchSize outside 1..`limit`, or None when it is in range.

    `limit` depends on the source (spec §1.3): 10,000, or 10 for an SQS FIFO queue.
    """
    if value < 1:
        constraint = "greater than or equal to 1"
    elif value > limit:
        constraint = f"less than or equal to {limit}"
    else:
        return None
    return (
        f"1 validation error detected: Value '{value}' at 'batchSize' failed to satisfy constraint: "
        f"Member must have value {constraint}"
    )


def resolve_sqs(raw: RawMapping, ctx: MappingContext) -> SqsMapping | list[Problem]:
    """The resolved mapping, or every problem that prevents it."""
    arn = raw.event_source_arn or ""
    problems: list[Problem] = []
    queue = SqsQueueArn.parse(arn)
    if queue is None:
        problems.append(
            ctx.problem(
                ("EventSourceArn",),
                f"Invalid EventSourceArn: {arn} "
                "(expected arn:aws:sqs:<region>:<12-digit account id>:<queue name>)",
            )
        )
    for key, attribute in _NOT_FOR_SQS:
        if getattr(raw, attribute) is not None:
            problems.append(ctx.problem((key,), f"{key} is not valid for SQS event sources."))

    if raw.destination_config is not None and raw.destination_config.failure_destination:
        # spec §1.3: an SQS source's DLQ is the queue's own redrive policy.
        problems.append(ctx.problem(("DestinationConfig", "OnFailure"), UNSUPPORTED_DESTINATION))

    batch_size = DEFAULT_BATCH_SIZE if raw.batch_size is None else raw.batch_size
    window = raw.maximum_batching_window_in_seconds or 0
    fifo = queue is not None and queue.fifo
    limit = MAX_BATCH_SIZE_FIFO if fifo else MAX_BATCH_SIZE_STANDARD
    range_message = batch_size_range_message(batch_size, limit=limit)
    if range_message is not None:
        problems.append(ctx.problem(("BatchSize",), range_message))
    elif batch_size > BATCH_WITHOUT_WINDOW_MAX and window == 0:
        problems.append(
            ctx.problem(
                ("BatchSize",),
                "Maximum batch window in seconds must be greater than 0 "
                "if maximum batch size is greater than 10",
            )
        )

    patterns = tuple(f.pattern for f in raw.filter_criteria.filters) if raw.filter_criteria else ()
    problems += filter_problems(patterns, ctx, "sqs")

    if problems or queue is None:
        return problems
    pollers = raw.provisioned_poller_config
    return SqsMapping(
        name=raw.name,
        location=Location(ctx.file, ctx.lines.line_of()),
        event_source_arn=arn,
        region=queue.region,
        account_id=queue.account_id,
        queue_name=queue.queue_name,
        fifo=queue.fifo,
        function_name=raw.function_name,
        function_timeout_seconds=raw.function_timeout,
        enabled=raw.enabled,
        batch_size=batch_size,
        maximum_batching_window_seconds=window,
        report_batch_item_failures="ReportBatchItemFailures" in raw.function_response_types,
        maximum_concurrency=raw.scaling_config.maximum_concurrency if raw.scaling_config else None,
        minimum_pollers=_given_or(pollers.minimum_pollers, DEFAULT_MIN_POLLERS) if pollers else None,
        maximum_pollers=_given_or(pollers.maximum_pollers, DEFAULT_MAX_POLLERS) if pollers else None,
        filter_patterns=patterns,
    )


def _given_or(value: int | None, default: int) -> int:
    return default if value is None else value
