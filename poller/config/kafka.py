"""Self-managed Kafka mappings: defaults, ranges and the keys a Kafka source refuses.

A Kafka mapping names its cluster by bootstrap servers (`SelfManagedEventSource`), or takes the
settings' `kafka.bootstrap_servers`, and reads exactly one topic in one consumer group (spec §1.3,
§1.4). Amazon MSK named by its cluster ARN alone is accepted and not started
(`poller.config.unstartable`): poller has no MSK API to turn a cluster ARN into brokers and IAM
auth; beside `SelfManagedEventSource` the ARN is refused. So is a mapping with a schema registry,
which poller does not decode through. Messages are AWS's own where AWS has one (spec §1.6), and
follow AWS's validation-message format for the API constraints it does not record.
"""

from __future__ import annotations

import re
import time
from datetime import UTC

from poller.config.destinations import KafkaDestinationSpec, parse_destination
from poller.config.filters import filter_problems
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolved import KafkaMapping, Location, StartingPosition, UnstartableMapping
from poller.config.sources import Arn
from poller.config.sqs import batch_size_range_message
from poller.config.unstartable import unstartable

DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 10_000
DEFAULT_BATCHING_WINDOW_MS = 500
"""spec §1.3, §2: Kafka's default window; once `MaximumBatchingWindowInSeconds` is set it is seconds."""
DEFAULT_STARTING_POSITION: StartingPosition = "TRIM_HORIZON"
"""spec §1.2: what AWS records when a self-managed Kafka mapping omits `StartingPosition`."""
MAX_FUNCTION_TIMEOUT = 840
"""spec §5.3: functions used by Kafka event sources may have at most a 14-minute timeout."""
RETRY_UNTIL_EXPIRED = -1
NO_MAXIMUM_AGE = -1

TOPIC_PATTERN = r"[^.]([a-zA-Z0-9\-_.]+)"
"""spec §1.4: the Lambda API's pattern for a topic name (so at least 2 characters)."""
TOPIC_MAX_LENGTH = 249
CONSUMER_GROUP_ID_PATTERN = r"[ a-zA-Z0-9-\/*:_+=.@-]*"
"""botocore's model's pattern for `ConsumerGroupId` (spec §1.4 predates its space); given ids are
checked against the model (`aws_model`), this checks the default, the mapping's Name."""
_TOPIC = re.compile(TOPIC_PATTERN)
_KAFKA_TOPIC_CHARACTERS = re.compile(r"[a-zA-Z0-9._-]+")
_CONSUMER_GROUP_ID = re.compile(CONSUMER_GROUP_ID_PATTERN)
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):(?P<port>\d{1,5})")

MISSING_BOOTSTRAP_SERVERS = (
    "Required 'SelfManagedEventSource' parameter is missing. Name the brokers in "
    "SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS, or set kafka.bootstrap_servers "
    "in the settings."
)
MISSING_TOPICS = "Required 'Topics' parameter is missing."
MSK_WITH_SERVERS = (
    "EventSourceArn (an Amazon MSK cluster) and SelfManagedEventSource name the cluster twice; "
    "keep SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS and remove EventSourceArn."
)

_SERVERS_PATH = ("SelfManagedEventSource", "Endpoints", "KAFKA_BOOTSTRAP_SERVERS")
_GROUP_PATH = ("SelfManagedKafkaEventSourceConfig", "ConsumerGroupId")
_DESTINATION_PATH = ("DestinationConfig", "OnFailure", "Destination")


def resolve_kafka(
    raw: RawMapping, ctx: MappingContext, *, default_bootstrap_servers: tuple[str, ...] = ()
) -> tuple[KafkaMapping | UnstartableMapping | None, list[Problem]]:
    """The resolved mapping (None if any error) and every problem found, warnings included.

    `default_bootstrap_servers` is the settings' `kafka.bootstrap_servers`, used when the mapping
    names no servers of its own (DESIGN §1.3). A valid mapping with a `SchemaRegistryConfig` is
    accepted as AWS accepts it and resolves to a mapping that does not start.
    """
    problems = _refused_keys(raw, ctx)

    topic, topic_problems = _topic(raw, ctx)
    problems += topic_problems

    source = raw.self_managed_event_source
    own = source.endpoints.kafka_bootstrap_servers if source is not None else ()
    servers = own or default_bootstrap_servers
    if not servers and not _is_msk(raw.event_source_arn):  # the MSK message already says what to add
        problems.append(ctx.problem(("SelfManagedEventSource",), MISSING_BOOTSTRAP_SERVERS))
    for index, server in enumerate(own):
        if (message := bootstrap_server_problem(server)) is not None:
            problems.append(ctx.problem((*_SERVERS_PATH, index), message))

    group = _consumer_group_id(raw)
    if not _CONSUMER_GROUP_ID.fullmatch(group):
        message = (
            f"1 validation error detected: Value '{group}' at "
            "'selfManagedKafkaEventSourceConfig.consumerGroupId' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {CONSUMER_GROUP_ID_PATTERN}"
        )
        problems.append(ctx.problem(_GROUP_PATH, message))

    if raw.function_timeout > MAX_FUNCTION_TIMEOUT:
        message = (
            f"FunctionTimeout {raw.function_timeout} is above {MAX_FUNCTION_TIMEOUT} seconds: functions "
            "used by Kafka event sources may have at most a 14-minute timeout."
        )
        problems.append(ctx.problem(("FunctionTimeout",), message))

    position, timestamp, position_problems = _starting_position(raw, ctx)
    problems += position_problems

    batch_size = DEFAULT_BATCH_SIZE if raw.batch_size is None else raw.batch_size
    range_message = batch_size_range_message(batch_size, limit=MAX_BATCH_SIZE)
    if range_message is not None:
        problems.append(ctx.problem(("BatchSize",), range_message))

    destination = raw.destination_config.failure_destination if raw.destination_config else None
    if destination is not None and (refused := _destination_problem(destination, topic)) is not None:
        problems.append(ctx.problem(_DESTINATION_PATH, refused))

    patterns = tuple(f.pattern for f in raw.filter_criteria.filters) if raw.filter_criteria else ()
    problems += filter_problems(patterns, ctx, "kafka")

    if problems or topic is None:
        return None, problems
    config = raw.self_managed_kafka_event_source_config
    if config is not None and config.schema_registry_config is not None:
        return unstartable(
            raw, ctx, "kafka", f"kafka://{servers[0]}/{topic}", on_failure_destination=destination
        )
    window = raw.maximum_batching_window_in_seconds
    mapping = KafkaMapping(
        name=raw.name,
        location=Location(ctx.file, ctx.lines.line_of()),
        event_source_arn=f"kafka://{servers[0]}/{topic}",
        topic=topic,
        bootstrap_servers=tuple(servers),
        consumer_group_id=group,
        function_name=raw.function_name,
        function_timeout_seconds=raw.function_timeout,
        enabled=raw.enabled,
        batch_size=batch_size,
        maximum_batching_window_ms=DEFAULT_BATCHING_WINDOW_MS if window is None else window * 1000,
        starting_position=position,
        starting_position_timestamp=timestamp,
        bisect_batch_on_function_error=bool(raw.bisect_batch_on_function_error),
        maximum_retry_attempts=(
            RETRY_UNTIL_EXPIRED if raw.maximum_retry_attempts is None else raw.maximum_retry_attempts
        ),
        maximum_record_age_seconds=(
            NO_MAXIMUM_AGE if raw.maximum_record_age_in_seconds is None else raw.maximum_record_age_in_seconds
        ),
        report_batch_item_failures="ReportBatchItemFailures" in raw.function_response_types,
        on_failure_destination=destination,
        filter_patterns=patterns,
        # Kept as written, so a mapping copied from AWS loads unchanged and /status can show it. The
        # secrets these entries point at are not read: SASL/TLS credentials and certificates come
        # from the settings' `kafka:` section (DESIGN §1.3), and never sit in a mapping file.
        source_access_configurations=tuple((c.type, c.uri) for c in raw.source_access_configurations or ()),
    )
    # No unbounded-retry warning as for streams: retrying a failing batch until it succeeds is
    # Kafka's documented on-demand behaviour (spec §5.3), not a surprise.
    return mapping, _warnings(raw, ctx)


def bootstrap_server_problem(server: str) -> str | None:
    """What is wrong with one bootstrap server, or None for a valid `host:port` (port 1-65535)."""
    match = _HOST_PORT.fullmatch(server)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        return f"Bootstrap server '{server}' is not host:port (e.g. broker-1.example.com:9092)."
    return None


def servers_overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Whether two mappings name a broker in common (spec §1.6's duplicate rule); hosts ignore case."""
    return bool({s.lower() for s in first} & {s.lower() for s in second})


def _is_msk(event_source_arn: str | None) -> bool:
    """An Amazon MSK cluster (or VPC connection) ARN, `arn:aws:kafka:…` (spec §1.4)."""
    arn = Arn.parse(event_source_arn) if event_source_arn is not None else None
    return arn is not None and arn.service == "kafka"


def _consumer_group_id(raw: RawMapping) -> str:
    config = raw.self_managed_kafka_event_source_config
    given = config.consumer_group_id if config is not None else None
    # spec §1.2, §5.3: AWS defaults the group to the ESM's UUID; the Name is our stable id.
    return raw.name if given is None else given


def _refused_keys(raw: RawMapping, ctx: MappingContext) -> list[Problem]:
    problems: list[Problem] = []
    if raw.event_source_arn is not None:
        msk = _is_msk(raw.event_source_arn)
        message = MSK_WITH_SERVERS if msk else "EventSourceArn is not valid for Kafka event sources."
        problems.append(ctx.problem(("EventSourceArn",), message))
    if raw.amazon_managed_kafka_event_source_config is not None:
        message = (
            "AmazonManagedKafkaEventSourceConfig is for Amazon MSK event sources; "
            "use SelfManagedKafkaEventSourceConfig."
        )
        problems.append(ctx.problem(("AmazonManagedKafkaEventSourceConfig",), message))
    if raw.parallelization_factor is not None:
        message = "ParallelizationFactor is not valid for Kafka event sources."
        problems.append(ctx.problem(("ParallelizationFactor",), message))
    if raw.tumbling_window_in_seconds:  # 0 means off, as a CloudFormation template may spell it
        message = "TumblingWindowInSeconds is not valid for Kafka event sources."
        problems.append(ctx.problem(("TumblingWindowInSeconds",), message))
    if raw.scaling_config is not None:
        message = "ScalingConfig is not valid for Kafka event sources."
        problems.append(ctx.problem(("ScalingConfig",), message))
    return problems


def _topic(raw: RawMapping, ctx: MappingContext) -> tuple[str | None, list[Problem]]:
    """spec §1.3, §1.4: exactly one topic, 1-249 characters matching the Lambda API pattern."""
    topics = raw.topics
    if topics is None:
        return None, [ctx.problem(("Topics",), MISSING_TOPICS)]
    if len(topics) != 1:
        bound = "greater than or equal to 1" if not topics else "less than or equal to 1"
        message = (
            f"1 validation error detected: Value '[{', '.join(topics)}]' at 'topics' failed to satisfy "
            f"constraint: Member must have length {bound}"
        )
        return None, [ctx.problem(("Topics",), message)]
    [topic] = topics
    failed: list[str] = []
    if not topic:
        failed.append("Member must have length greater than or equal to 1")
    if len(topic) > TOPIC_MAX_LENGTH:
        failed.append(f"Member must have length less than or equal to {TOPIC_MAX_LENGTH}")
    if not _TOPIC.fullmatch(topic):
        failed.append(f"Member must satisfy regular expression pattern: {TOPIC_PATTERN}")
    if failed:
        message = (
            f"1 validation error detected: Value '[{topic}]' at 'topics' failed to satisfy constraint: "
            f"Member must satisfy constraint: [{', '.join(failed)}]"
        )
        return None, [ctx.problem(("Topics", 0), message)]
    if not _KAFKA_TOPIC_CHARACTERS.fullmatch(topic):
        # The API pattern lets any first character but '.' through; Kafka itself does not.
        message = f"Topic '{topic}' is not a valid Kafka topic name: use only a-z A-Z 0-9 . _ -"
        return None, [ctx.problem(("Topics", 0), message)]
    return topic, []


def _starting_position(
    raw: RawMapping, ctx: MappingContext
) -> tuple[StartingPosition, float | None, list[Problem]]:
    """spec §1.3, §1.6: optional (TRIM_HORIZON); `AT_TIMESTAMP` needs a timestamp not in the future."""
    position = _as_position(raw.starting_position)
    given = raw.starting_position_timestamp
    problems: list[Problem] = []
    timestamp: float | None = None
    if position == "AT_TIMESTAMP" and given is None:
        problems.append(ctx.problem(("StartingPositionTimestamp",), "Need to specify a timestamp"))
    elif position == "AT_TIMESTAMP" and given is not None:
        aware = given if given.tzinfo is not None else given.replace(tzinfo=UTC)
        timestamp = aware.timestamp()
        if timestamp > time.time():
            message = (
                f"StartingPositionTimestamp {aware.isoformat()} is in the future; "
                "it must not be later than the current time."
            )
            problems.append(ctx.problem(("StartingPositionTimestamp",), message))
    if given is not None and position != "AT_TIMESTAMP":
        message = (
            "StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP; "
            "remove it or set StartingPosition: AT_TIMESTAMP."
        )
        problems.append(ctx.problem(("StartingPositionTimestamp",), message))
    return position, timestamp, problems


def _as_position(text: str | None) -> StartingPosition:
    # RawMapping has already refused any other value with AWS's enum message.
    match text:
        case "LATEST":
            return "LATEST"
        case "AT_TIMESTAMP":
            return "AT_TIMESTAMP"
        case "TRIM_HORIZON":
            return "TRIM_HORIZON"
        case _:
            return DEFAULT_STARTING_POSITION


def _destination_problem(destination: str, topic: str | None) -> str | None:
    """spec §1.3, §6.1: SQS, SNS, S3 or a Kafka topic other than the source's (plus `file://`)."""
    try:
        spec = parse_destination(destination)
    except ValueError as exc:
        text = str(exc)
        return text[:1].upper() + text[1:]
    if isinstance(spec, KafkaDestinationSpec) and spec.topic == topic:
        return (
            f"The on-failure destination kafka://{spec.topic} is the source topic; "
            "Lambda does not allow failed records to be sent back to a topic the mapping reads."
        )
    return None


def _warnings(raw: RawMapping, ctx: MappingContext) -> list[Problem]:
    if raw.provisioned_poller_config is None:
        return []
    message = (
        "ProvisionedPollerConfig has no effect in poller: a Kafka mapping scales by running more "
        "replicas in its consumer group, and the provisioned-mode controls (retries, bisection, record "
        "age, partial batch responses, on-failure destination) apply without it."
    )
    return [ctx.problem(("ProvisionedPollerConfig",), message, severity="warning")]
