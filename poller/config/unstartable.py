"""Sources Lambda reads and poller cannot read yet: accepted as AWS accepts them, never started.

Amazon MQ (`arn:aws:mq:…` with `Queues`), Amazon DocumentDB (`arn:aws:rds:…:cluster:…` with
`DocumentDBEventSourceConfig`) and Amazon MSK named by its cluster ARN (poller has no MSK API to
turn the ARN into brokers and IAM auth) are validated with Lambda's rules for them (spec §1.3, §1.4,
§1.6), so a definition copied from AWS, or sent through the API, is kept as AWS keeps it. It resolves
to an `UnstartableMapping` that the runtime reports as not running with the reason (spec §1.5), and
loading says so once, as a warning.
"""

from __future__ import annotations

from poller.config.destinations import parse_destination
from poller.config.filters import filter_problems
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolved import Location, UnstartableKind, UnstartableMapping
from poller.config.sources import KIND_TITLES, OtherKind
from poller.config.sqs import batch_size_range_message

MAX_BATCH_SIZE = 10_000
STATE_REASON_CODE = "ESM_CONFIG_NOT_VALID"
"""spec §1.5: the code Lambda puts in StateTransitionReason when a consumer stops for good."""

MISSING_SOURCE_ACCESS = "Required 'sourceAccessConfigurations' parameter is missing."
"""spec §1.6: AWS's message (observed for self-managed Kafka; MQ and DocumentDB need the same
BASIC_AUTH secret)."""
MISSING_STARTING_POSITION = (
    "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
    "Member must not be null."
)
MISSING_TOPICS = "Required 'Topics' parameter is missing."
MISSING_QUEUES = "Required 'Queues' parameter is missing."
MISSING_DOCUMENT_DB = "Required 'DocumentDBEventSourceConfig.DatabaseName' parameter is missing."

WHY: dict[UnstartableKind, str] = {
    "mq": "poller does not read Amazon MQ brokers yet",
    "documentdb": "poller does not read Amazon DocumentDB change streams yet",
    "msk": (
        "poller cannot look up an Amazon MSK cluster's brokers from its ARN; to read it, name its "
        "bootstrap brokers in SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS instead of "
        "EventSourceArn"
    ),
    "kafka": (
        "poller does not decode records through a schema registry (SchemaRegistryConfig); remove it "
        "to receive the records as stored"
    ),
}

# Keys each kind refuses (spec §1.3: n/a cells); everything else the model has is accepted.
_STREAM_ONLY = (
    "ParallelizationFactor",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
)
_KAFKA_ONLY = ("Topics", "SelfManagedEventSource", "AmazonManagedKafkaEventSourceConfig")
_NOT_VALID: dict[OtherKind, tuple[str, ...]] = {
    "mq": (
        "StartingPosition",
        "StartingPositionTimestamp",
        *_STREAM_ONLY,
        "FunctionResponseTypes",
        "DestinationConfig",
        *_KAFKA_ONLY,
        "SelfManagedKafkaEventSourceConfig",
        "DocumentDBEventSourceConfig",
        "ScalingConfig",
        "ProvisionedPollerConfig",
    ),
    "documentdb": (
        *_STREAM_ONLY,
        "FunctionResponseTypes",
        "DestinationConfig",
        *_KAFKA_ONLY,
        "SelfManagedKafkaEventSourceConfig",
        "Queues",
        "ScalingConfig",
        "ProvisionedPollerConfig",
    ),
    "msk": (
        "ParallelizationFactor",
        "SelfManagedEventSource",
        "SelfManagedKafkaEventSourceConfig",
        "Queues",
        "DocumentDBEventSourceConfig",
        "ScalingConfig",
    ),
}


def resolve_unstartable(
    raw: RawMapping, ctx: MappingContext, kind: OtherKind
) -> tuple[UnstartableMapping | None, list[Problem]]:
    """The accepted, not startable mapping (None if any error) and every problem, warnings included."""
    title = KIND_TITLES[kind]
    given = raw.model_dump(by_alias=True, exclude_unset=True)
    problems = [
        ctx.problem((key,), f"{key} is not valid for {title} event sources.")
        for key in _NOT_VALID[kind]
        # `[]` and `{}` are how a template spells "none" (e.g. FunctionResponseTypes: []).
        if given.get(key) not in (None, [], {}, ())
    ]
    if raw.tumbling_window_in_seconds:  # 0 means off
        problems.append(
            ctx.problem(
                ("TumblingWindowInSeconds",),
                f"TumblingWindowInSeconds is not valid for {title} event sources.",
            )
        )
    problems += _required(raw, ctx, kind)
    problems += _position_problems(raw, ctx, kind)
    batch = batch_size_range_message(100 if raw.batch_size is None else raw.batch_size, limit=MAX_BATCH_SIZE)
    if batch is not None:
        problems.append(ctx.problem(("BatchSize",), batch))
    destination = raw.destination_config.failure_destination if raw.destination_config else None
    if destination is not None and kind == "msk":
        try:
            parse_destination(destination)
        except ValueError as exc:
            text = str(exc)
            problems.append(
                ctx.problem(("DestinationConfig", "OnFailure", "Destination"), text[:1].upper() + text[1:])
            )
    patterns = tuple(f.pattern for f in raw.filter_criteria.filters) if raw.filter_criteria else ()
    # MQ's data key is `data`, which poller's filter compiler does not model: plain EventBridge rules.
    problems += filter_problems(patterns, ctx, "kafka" if kind == "msk" else None)
    if problems:
        return None, problems
    return unstartable(raw, ctx, kind, raw.event_source_arn or "", on_failure_destination=destination)


def unstartable(
    raw: RawMapping,
    ctx: MappingContext,
    kind: UnstartableKind,
    event_source_arn: str,
    *,
    on_failure_destination: str | None = None,
) -> tuple[UnstartableMapping, list[Problem]]:
    """A valid mapping poller cannot run, with the warning that says so at load."""
    why = WHY[kind]
    mapping = UnstartableMapping(
        name=raw.name,
        location=Location(ctx.file, ctx.lines.line_of()),
        source_kind=kind,
        event_source_arn=event_source_arn,
        function_name=raw.function_name,
        function_timeout_seconds=raw.function_timeout,
        enabled=raw.enabled,
        reason=f"{STATE_REASON_CODE}: {why[:1].upper()}{why[1:]}.",
        on_failure_destination=on_failure_destination,
        report_batch_item_failures="ReportBatchItemFailures" in raw.function_response_types,
    )
    message = f"Accepted, but this mapping will not run: {why}."
    return mapping, [ctx.problem(("EventSourceArn",) if kind != "kafka" else (), message, severity="warning")]


def _required(raw: RawMapping, ctx: MappingContext, kind: OtherKind) -> list[Problem]:
    problems: list[Problem] = []
    if kind == "mq" and raw.queues is None:
        problems.append(ctx.problem(("Queues",), MISSING_QUEUES))
    if kind == "msk" and raw.topics is None:
        problems.append(ctx.problem(("Topics",), MISSING_TOPICS))
    config = raw.document_db_event_source_config
    if kind == "documentdb" and (config is None or config.database_name is None):
        path = (
            ("DocumentDBEventSourceConfig",)
            if config is None
            else ("DocumentDBEventSourceConfig", "DatabaseName")
        )
        problems.append(ctx.problem(path, MISSING_DOCUMENT_DB))
    if kind in ("mq", "documentdb"):
        # The broker's or cluster's user name and password come from a BASIC_AUTH secret.
        access = raw.source_access_configurations or ()
        if not any(c.type == "BASIC_AUTH" for c in access):
            problems.append(ctx.problem(("SourceAccessConfigurations",), MISSING_SOURCE_ACCESS))
    return problems


def _position_problems(raw: RawMapping, ctx: MappingContext, kind: OtherKind) -> list[Problem]:
    """spec §1.3, §1.6: DocumentDB and MSK need a starting position; AT_TIMESTAMP needs its timestamp."""
    if kind == "mq":
        return []
    position = raw.starting_position
    if position is None:
        return [ctx.problem(("StartingPosition",), MISSING_STARTING_POSITION)]
    if position == "AT_TIMESTAMP" and raw.starting_position_timestamp is None:
        return [ctx.problem(("StartingPositionTimestamp",), "Need to specify a timestamp")]
    if position != "AT_TIMESTAMP" and raw.starting_position_timestamp is not None:
        message = (
            "StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP; "
            "remove it or set StartingPosition: AT_TIMESTAMP."
        )
        return [ctx.problem(("StartingPositionTimestamp",), message)]
    return []
