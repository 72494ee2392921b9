"""Kinesis and DynamoDB Streams mapping rules: defaults, AWS ranges and AWS's own error messages
(spec §1.3, §1.4, §1.6)."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.config import Location, Problem, ResolvedMapping, StreamMapping, load_mappings, run_validate
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext
from poller.config.resolve import RawEntry, resolve_entry, resolve_mapping
from poller.config.yaml_lines import LineMap

KINESIS_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
DYNAMODB_ARN = "arn:aws:dynamodb:eu-west-1:210987654321:table/orders/stream/2024-01-01T00:00:00.000"
KINESIS = f"""\
Name: clicks
EventSourceArn: {KINESIS_ARN}
FunctionName: handle-clicks
StartingPosition: LATEST
"""
DYNAMODB = f"""\
Name: clicks
EventSourceArn: {DYNAMODB_ARN}
FunctionName: handle-clicks
StartingPosition: TRIM_HORIZON
"""
HEADS = {"kinesis": KINESIS, "dynamodb": DYNAMODB}
TITLES = {"kinesis": "Kinesis", "dynamodb": "DynamoDB"}
# Silences the retry warning, so that a test sees only the problem it is about.
BOUNDED = "MaximumRetryAttempts: 2\n"

RETRY_WARNING = (
    "MaximumRetryAttempts is -1 (retry until the record expires) and there is no on-failure "
    "destination: one record that keeps failing blocks its shard until it expires "
    "(MaximumRecordAgeInSeconds, or the stream's retention period) and is then dropped. "
    "Set MaximumRetryAttempts, MaximumRecordAgeInSeconds or DestinationConfig.OnFailure."
)


def load(tmp_path: Path, extra: str = "", head: str = KINESIS) -> tuple[list[ResolvedMapping], list[Problem]]:
    """Write one mapping file (the head on lines 1-4, `extra` from line 5) and load it."""
    file = tmp_path / "clicks.yaml"
    file.write_text(head + dedent(extra))
    return load_mappings([file], tmp_path)


def load_one(tmp_path: Path, extra: str = "", head: str = KINESIS) -> StreamMapping:
    """The one mapping, which must load without errors or warnings."""
    mappings, problems = load(tmp_path, BOUNDED + dedent(extra), head)
    assert problems == []
    [mapping] = mappings
    assert isinstance(mapping, StreamMapping)
    return mapping


def only_problem(tmp_path: Path, extra: str = "", head: str = KINESIS) -> str:
    mappings, problems = load(tmp_path, extra, head)
    assert mappings == []
    assert len(problems) == 1, problems
    return str(problems[0])


def where(tmp_path: Path, line: int) -> str:
    return f"{tmp_path / 'clicks.yaml'}:{line}: Mapping 'clicks'"


# --- defaults and carried-through settings --------------------------------------------------------


def test_kinesis_defaults_follow_aws(tmp_path: Path) -> None:
    """spec §1.3: BatchSize 100, window 0, ParallelizationFactor 1, BisectBatchOnFunctionError false,
    MaximumRetryAttempts -1, MaximumRecordAgeInSeconds -1; DESIGN §1.4: FunctionTimeout 3."""
    mappings, problems = load(tmp_path)
    assert [p.severity for p in problems] == ["warning"]
    assert mappings == [
        StreamMapping(
            name="clicks",
            location=Location(tmp_path / "clicks.yaml", 1),
            source_kind="kinesis",
            event_source_arn=KINESIS_ARN,
            region="us-east-1",
            account_id="123456789012",
            stream_name="clicks",
            function_name="handle-clicks",
            function_timeout_seconds=3,
            enabled=True,
            batch_size=100,
            maximum_batching_window_seconds=0,
            starting_position="LATEST",
            starting_position_timestamp=None,
            parallelization_factor=1,
            bisect_batch_on_function_error=False,
            maximum_retry_attempts=-1,
            maximum_record_age_seconds=-1,
            report_batch_item_failures=False,
            on_failure_destination=None,
            filter_patterns=(),
        )
    ]
    assert mappings[0].source_kind == "kinesis"


def test_dynamodb_defaults_follow_aws(tmp_path: Path) -> None:
    """spec §1.3: DynamoDB Streams has the same defaults as Kinesis; the table names the stream."""
    mappings, problems = load(tmp_path, head=DYNAMODB)
    assert [p.severity for p in problems] == ["warning"]
    assert mappings == [
        StreamMapping(
            name="clicks",
            location=Location(tmp_path / "clicks.yaml", 1),
            source_kind="dynamodb",
            event_source_arn=DYNAMODB_ARN,
            region="eu-west-1",
            account_id="210987654321",
            stream_name="orders",
            function_name="handle-clicks",
            function_timeout_seconds=3,
            enabled=True,
            batch_size=100,
            maximum_batching_window_seconds=0,
            starting_position="TRIM_HORIZON",
            starting_position_timestamp=None,
            parallelization_factor=1,
            bisect_batch_on_function_error=False,
            maximum_retry_attempts=-1,
            maximum_record_age_seconds=-1,
            report_batch_item_failures=False,
            on_failure_destination=None,
        )
    ]


def test_every_setting_carries_through(tmp_path: Path) -> None:
    """spec §1.3, §1.4: every stream parameter, as written, ends up on the resolved mapping."""
    head = KINESIS.replace("StartingPosition: LATEST\n", "StartingPosition: AT_TIMESTAMP\n")
    mappings, problems = load(
        tmp_path,
        """\
        StartingPositionTimestamp: 2024-01-01T00:00:00Z
        FunctionTimeout: 60
        Enabled: false
        BatchSize: 500
        MaximumBatchingWindowInSeconds: 5
        ParallelizationFactor: 10
        BisectBatchOnFunctionError: true
        MaximumRetryAttempts: 3
        MaximumRecordAgeInSeconds: 3600
        FunctionResponseTypes: [ReportBatchItemFailures]
        TumblingWindowInSeconds: 0
        DestinationConfig:
          OnFailure:
            Destination: arn:aws:sqs:us-east-1:123456789012:clicks-dlq
        FilterCriteria:
          Filters:
            - Pattern: '{"data": {"kind": ["click"]}}'
            - Pattern: '{"partitionKey": ["k"]}'
        KMSKeyArn: arn:aws:kms:us-east-1:123456789012:key/1
        MetricsConfig: {Metrics: [EventCount]}
        Tags: {team: web}
        """,
        head,
    )
    assert problems == []
    [mapping] = mappings
    assert mapping == StreamMapping(
        name="clicks",
        location=Location(tmp_path / "clicks.yaml", 1),
        source_kind="kinesis",
        event_source_arn=KINESIS_ARN,
        region="us-east-1",
        account_id="123456789012",
        stream_name="clicks",
        function_name="handle-clicks",
        function_timeout_seconds=60,
        enabled=False,
        batch_size=500,
        maximum_batching_window_seconds=5,
        starting_position="AT_TIMESTAMP",
        starting_position_timestamp=datetime(2024, 1, 1, tzinfo=UTC).timestamp(),
        parallelization_factor=10,
        bisect_batch_on_function_error=True,
        maximum_retry_attempts=3,
        maximum_record_age_seconds=3600,
        report_batch_item_failures=True,
        on_failure_destination="arn:aws:sqs:us-east-1:123456789012:clicks-dlq",
        filter_patterns=('{"data": {"kind": ["click"]}}', '{"partitionKey": ["k"]}'),
    )


@pytest.mark.parametrize(
    ("arn", "region", "name"),
    [
        ("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s.1_a-b", "cn-north-1", "s.1_a-b"),
        ("arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/s", "us-gov-west-1", "s"),
        (
            # moto labels streams with microseconds, AWS with milliseconds.
            "arn:aws:dynamodb:us-east-1:123456789012:table/my.table_1/stream/2024-05-06T07:08:09.123456",
            "us-east-1",
            "my.table_1",
        ),
    ],
)
def test_other_partitions_and_names_are_accepted(tmp_path: Path, arn: str, region: str, name: str) -> None:
    """spec §1.4: stream and DynamoDB stream ARNs in every partition."""
    mapping = load_one(tmp_path, head=KINESIS.replace(KINESIS_ARN, arn))
    assert (mapping.region, mapping.stream_name) == (region, name)


# --- EventSourceArn --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:kinesis:us-east-1:123456789012:stream/",  # no stream name
        "arn:aws:kinesis:us-east-1:123456789012:clicks",  # no `stream/`
        "arn:aws:kinesis:us-east-1:123456789012:stream/bad name",
        "arn:aws:kinesis:us-east-1:123456789012:stream/" + "s" * 129,
    ],
)
def test_malformed_kinesis_arn(tmp_path: Path, arn: str) -> None:
    """spec §1.4: `arn:<partition>:kinesis:<region>:<account>:stream/<name>`."""
    text = only_problem(tmp_path, head=KINESIS.replace(KINESIS_ARN, f"'{arn}'"))
    assert text == (
        f"{where(tmp_path, 2)}: EventSourceArn: Invalid EventSourceArn: {arn} "
        "(expected arn:aws:kinesis:<region>:<12-digit account id>:stream/<stream name>)"
    )


def test_kinesis_consumer_arn_is_refused_with_the_stream_arn_to_use(tmp_path: Path) -> None:
    """spec §1.4: AWS also takes an enhanced fan-out consumer ARN; poller reads the stream itself."""
    consumer = f"{KINESIS_ARN}/consumer/fan-out:1700000000"
    text = only_problem(tmp_path, head=KINESIS.replace(KINESIS_ARN, consumer))
    assert text == (
        f"{where(tmp_path, 2)}: EventSourceArn: Invalid EventSourceArn: {consumer}: Kinesis stream "
        f"consumer ARNs (enhanced fan-out) are not supported; use the stream ARN: {KINESIS_ARN}"
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:dynamodb:eu-west-1:210987654321:table/orders/stream/",  # no stream label
        "arn:aws:dynamodb:eu-west-1:210987654321:table/ab/stream/2024-01-01T00:00:00.000",  # 2-char table
        "arn:aws:dynamodb:eu-west-1:210987654321:index/orders/stream/2024-01-01T00:00:00.000",
    ],
)
def test_malformed_dynamodb_stream_arn(tmp_path: Path, arn: str) -> None:
    """spec §1.4: `arn:<partition>:dynamodb:<region>:<account>:table/<table>/stream/<label>`."""
    text = only_problem(tmp_path, head=DYNAMODB.replace(DYNAMODB_ARN, f"'{arn}'"))
    assert text == (
        f"{where(tmp_path, 2)}: EventSourceArn: Invalid EventSourceArn: {arn} "
        "(expected arn:aws:dynamodb:<region>:<12-digit account id>:table/<table name>/stream/<stream label>)"
    )


# --- StartingPosition and StartingPositionTimestamp ----------------------------------------------------


@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
def test_starting_position_is_required(tmp_path: Path, kind: str) -> None:
    """spec §1.6: a stream source without StartingPosition gets AWS's null-member message."""
    head = "".join(line for line in HEADS[kind].splitlines(True) if not line.startswith("StartingPosition"))
    text = only_problem(tmp_path, head=head)
    assert text == (
        f"{where(tmp_path, 1)}: StartingPosition: 1 validation error detected: Value null at "
        "'startingPosition' failed to satisfy constraint: Member must not be null."
    )


def test_invalid_starting_position_gets_aws_enum_message(tmp_path: Path) -> None:
    """spec §1.6: AWS's ValidationException text for an unknown StartingPosition."""
    text = only_problem(tmp_path, head=KINESIS.replace("LATEST", "EARLIEST"))
    assert text == (
        f"{where(tmp_path, 4)}: StartingPosition: 1 validation error detected: Value 'EARLIEST' at "
        "'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: "
        "[LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
    )


def test_dynamodb_refuses_at_timestamp(tmp_path: Path) -> None:
    """spec §1.3, §1.6: DynamoDB Streams have no AT_TIMESTAMP; AWS names the stream ARN."""
    head = DYNAMODB.replace("TRIM_HORIZON", "AT_TIMESTAMP")
    text = only_problem(tmp_path, "StartingPositionTimestamp: 1700000000\n", head)
    assert text == (
        f"{where(tmp_path, 4)}: StartingPosition: Unsupported starting position for arn type: {DYNAMODB_ARN}"
    )


def test_at_timestamp_needs_a_timestamp(tmp_path: Path) -> None:
    """spec §1.6: AT_TIMESTAMP without StartingPositionTimestamp → `Need to specify a timestamp`."""
    text = only_problem(tmp_path, head=KINESIS.replace("LATEST", "AT_TIMESTAMP"))
    assert text == f"{where(tmp_path, 1)}: StartingPositionTimestamp: Need to specify a timestamp"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC).timestamp()),
        ("2024-01-01T02:00:00+02:00", datetime(2024, 1, 1, tzinfo=UTC).timestamp()),
        ("'2024-01-01T00:00:00.250Z'", datetime(2024, 1, 1, tzinfo=UTC).timestamp() + 0.25),
        ("2024-01-01 00:00:00", datetime(2024, 1, 1, tzinfo=UTC).timestamp()),  # no zone: UTC
        ("1700000000", 1700000000.0),  # Unix seconds
        ("1700000000.5", 1700000000.5),
    ],
)
def test_at_timestamp_takes_iso_or_unix_seconds(tmp_path: Path, written: str, expected: float) -> None:
    """spec §1.3: StartingPositionTimestamp with AT_TIMESTAMP; stored as Unix seconds."""
    head = KINESIS.replace("LATEST", "AT_TIMESTAMP")
    mapping = load_one(tmp_path, f"StartingPositionTimestamp: {written}\n", head)
    assert (mapping.starting_position, mapping.starting_position_timestamp) == ("AT_TIMESTAMP", expected)


def test_milliseconds_are_not_taken_for_seconds(tmp_path: Path) -> None:
    """spec §1.3: the timestamp is Unix *seconds*; a value in ms is refused, not read as ms."""
    head = KINESIS.replace("LATEST", "AT_TIMESTAMP")
    text = only_problem(tmp_path, "StartingPositionTimestamp: 1700000000000\n", head)
    assert text == (
        f"{where(tmp_path, 5)}: StartingPositionTimestamp: 1700000000000 is not a Unix time in seconds"
    )


def test_timestamp_in_the_future_is_refused(tmp_path: Path) -> None:
    """spec §1.3: StartingPositionTimestamp must not be in the future."""
    head = KINESIS.replace("LATEST", "AT_TIMESTAMP")
    text = only_problem(tmp_path, "StartingPositionTimestamp: 2999-01-01T00:00:00Z\n", head)
    assert text == (
        f"{where(tmp_path, 5)}: StartingPositionTimestamp: StartingPositionTimestamp "
        "2999-01-01T00:00:00+00:00 is in the future; it must not be later than the current time."
    )


def test_timestamp_a_moment_ago_is_fine(tmp_path: Path) -> None:
    """spec §1.3: "not in the future" is checked against the clock when the mapping is loaded."""
    head = KINESIS.replace("LATEST", "AT_TIMESTAMP")
    just_now = int(time.time()) - 1
    mapping = load_one(tmp_path, f"StartingPositionTimestamp: {just_now}\n", head)
    assert mapping.starting_position_timestamp == just_now


@pytest.mark.parametrize("position", ["LATEST", "TRIM_HORIZON"])
def test_timestamp_without_at_timestamp_is_refused(tmp_path: Path, position: str) -> None:
    """spec §1.3: StartingPositionTimestamp goes only with AT_TIMESTAMP."""
    head = KINESIS.replace("LATEST", position)
    text = only_problem(tmp_path, "StartingPositionTimestamp: 1700000000\n", head)
    assert text == (
        f"{where(tmp_path, 5)}: StartingPositionTimestamp: StartingPositionTimestamp is only valid with "
        "StartingPosition AT_TIMESTAMP; remove it or set StartingPosition: AT_TIMESTAMP."
    )


def test_dynamodb_refuses_a_timestamp(tmp_path: Path) -> None:
    """spec §1.3: StartingPositionTimestamp is n/a for DynamoDB Streams."""
    text = only_problem(tmp_path, "StartingPositionTimestamp: 1700000000\n", DYNAMODB)
    assert text == (
        f"{where(tmp_path, 5)}: StartingPositionTimestamp: "
        "StartingPositionTimestamp is not valid for DynamoDB event sources."
    )


# --- BatchSize ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "constraint"),
    [("10001", "less than or equal to 10000"), ("0", "greater than or equal to 1")],
)
@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
def test_batch_size_out_of_range(tmp_path: Path, kind: str, size: str, constraint: str) -> None:
    """spec §1.3: BatchSize 1–10,000 for streams; AWS's constraint message."""
    text = only_problem(tmp_path, f"BatchSize: {size}\nMaximumBatchingWindowInSeconds: 1\n", HEADS[kind])
    assert text == (
        f"{where(tmp_path, 5)}: BatchSize: 1 validation error detected: Value '{size}' at 'batchSize' "
        f"failed to satisfy constraint: Member must have value {constraint}"
    )


def test_large_batch_needs_no_window(tmp_path: Path) -> None:
    """spec §1.4, §1.6: the BatchSize > 10 ⇒ window ≥ 1 rule is enforced for SQS only."""
    mapping = load_one(tmp_path, "BatchSize: 10000\n")
    assert (mapping.batch_size, mapping.maximum_batching_window_seconds) == (10_000, 0)


def _resolve(fields: dict[str, object]) -> tuple[ResolvedMapping | None, list[Problem]]:
    raw = RawMapping.model_validate(
        {
            "Name": "m",
            "EventSourceArn": KINESIS_ARN,
            "FunctionName": "f",
            "StartingPosition": "LATEST",
            **fields,
        }
    )
    return resolve_mapping(RawEntry(raw, MappingContext("m", None, LineMap({}))))


@given(
    batch_size=st.integers(min_value=-3, max_value=10_010),
    window=st.none() | st.integers(min_value=0, max_value=300),
)
def test_batch_size_rules_as_a_property(batch_size: int, window: int | None) -> None:
    """spec §1.3: valid iff 1 ≤ BatchSize ≤ 10,000, whatever the window."""
    fields: dict[str, object] = {"BatchSize": batch_size, "MaximumRetryAttempts": 0}
    if window is not None:
        fields["MaximumBatchingWindowInSeconds"] = window
    mapping, problems = _resolve(fields)
    if 1 <= batch_size <= 10_000:
        assert isinstance(mapping, StreamMapping)
        assert (mapping.batch_size, mapping.maximum_batching_window_seconds, problems) == (
            batch_size,
            window or 0,
            [],
        )
    else:
        assert mapping is None
        assert [p.field for p in problems] == ["BatchSize"]


# --- keys a stream source refuses ----------------------------------------------------------------------


NOT_FOR_STREAMS = [
    ("ScalingConfig", "{MaximumConcurrency: 5}"),
    ("ProvisionedPollerConfig", "{}"),
    ("Topics", "[clicks]"),
    ("SelfManagedEventSource", "{Endpoints: {KAFKA_BOOTSTRAP_SERVERS: ['b:9092']}}"),
    ("SelfManagedKafkaEventSourceConfig", "{ConsumerGroupId: g}"),
    ("AmazonManagedKafkaEventSourceConfig", "{ConsumerGroupId: g}"),
    ("SourceAccessConfigurations", "[{Type: BASIC_AUTH, URI: 'arn:aws:secretsmanager:x'}]"),
]


@pytest.mark.parametrize(("key", "value"), NOT_FOR_STREAMS)
@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
def test_sqs_and_kafka_keys_are_not_valid_for_streams(
    tmp_path: Path, kind: str, key: str, value: str
) -> None:
    """spec §1.3: SQS scaling and Kafka parameters are n/a for Kinesis and DynamoDB Streams."""
    text = only_problem(tmp_path, f"{key}: {value}\n", HEADS[kind])
    assert text == f"{where(tmp_path, 5)}: {key}: {key} is not valid for {TITLES[kind]} event sources."


def test_each_refused_key_is_reported_on_its_own_line(tmp_path: Path) -> None:
    mappings, problems = load(tmp_path, "Topics: [orders]\nScalingConfig: {}\n")
    assert mappings == []
    assert [(p.line, p.field) for p in problems] == [(5, "Topics"), (6, "ScalingConfig")]


@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
@pytest.mark.parametrize("seconds", [1, 30, 900])
def test_tumbling_windows_of_1_to_900_seconds_are_accepted(tmp_path: Path, kind: str, seconds: int) -> None:
    """spec §1.3, §1.4, §8: TumblingWindowInSeconds 1–900 enables windows on Kinesis and DynamoDB Streams."""
    mapping = load_one(tmp_path, f"TumblingWindowInSeconds: {seconds}\n", HEADS[kind])
    assert mapping.tumbling_window_seconds == seconds


def test_tumbling_window_zero_means_off(tmp_path: Path) -> None:
    """spec §1.4: TumblingWindowInSeconds 0 disables windows (as does leaving it out)."""
    assert load_one(tmp_path, "TumblingWindowInSeconds: 0\n").tumbling_window_seconds == 0
    assert load_one(tmp_path).tumbling_window_seconds == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "901",
            "1 validation error detected: Value '901' at 'tumblingWindowInSeconds' failed to satisfy "
            "constraint: Member must have value less than or equal to 900",
        ),
        (
            "-1",
            "1 validation error detected: Value '-1' at 'tumblingWindowInSeconds' failed to satisfy "
            "constraint: Member must have value greater than or equal to 0",
        ),
        ("1.5", "Input should be a valid integer, got a number with a fractional part"),
    ],
)
def test_tumbling_window_outside_the_api_range_is_refused(tmp_path: Path, value: str, message: str) -> None:
    """spec §1.3, §1.6: the API range is 0–900 whole seconds, refused with AWS's model-validation
    message (a non-integer is refused by its type); the file and line name the key."""
    text = only_problem(tmp_path, f"TumblingWindowInSeconds: {value}\n")
    assert text == f"{where(tmp_path, 5)}: TumblingWindowInSeconds: {message}"


@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
def test_tumbling_window_with_parallelization_is_refused(tmp_path: Path, kind: str) -> None:
    """spec §8 (note; UNVERIFIED against AWS): state is per shard, so windows need ParallelizationFactor 1."""
    text = only_problem(tmp_path, "ParallelizationFactor: 2\nTumblingWindowInSeconds: 60\n", HEADS[kind])
    assert text == (
        f"{where(tmp_path, 6)}: TumblingWindowInSeconds: TumblingWindowInSeconds cannot be combined with "
        "ParallelizationFactor greater than 1: a window's state is kept per shard and its batches must run "
        "in order. Set ParallelizationFactor to 1 or TumblingWindowInSeconds to 0."
    )


def test_tumbling_window_with_parallelization_one_is_accepted(tmp_path: Path) -> None:
    """spec §8: ParallelizationFactor 1 (the default) is the one factor windows run with."""
    mapping = load_one(tmp_path, "ParallelizationFactor: 1\nTumblingWindowInSeconds: 60\n")
    assert (mapping.parallelization_factor, mapping.tumbling_window_seconds) == (1, 60)


def test_poller_validate_accepts_a_window_and_refuses_a_bad_one(tmp_path: Path) -> None:
    """DESIGN §1.2, spec §8: `poller validate` prints file:line: Mapping: field: message and exits 1."""
    maps = tmp_path / "mappings"
    maps.mkdir()
    (maps / "good.yaml").write_text(
        KINESIS.replace("clicks", "good") + BOUNDED + "TumblingWindowInSeconds: 120\n"
    )
    (maps / "bad.yaml").write_text(
        DYNAMODB.replace("clicks", "bad") + BOUNDED + "TumblingWindowInSeconds: 1000\n"
    )
    out = io.StringIO()
    status = run_validate(None, environ={}, cwd=tmp_path, out=out)
    assert status == 1
    assert out.getvalue().splitlines() == [
        f"{maps / 'bad.yaml'}:6: Mapping 'bad': TumblingWindowInSeconds: 1 validation error detected: "
        "Value '1000' at 'tumblingWindowInSeconds' failed to satisfy constraint: Member must have value "
        "less than or equal to 900",
        "1 mapping OK, 1 problem",
    ]


# --- DestinationConfig.OnFailure -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "destination",
    [
        "arn:aws:sqs:us-east-1:123456789012:clicks-dlq",
        "arn:aws:sns:us-east-1:123456789012:clicks-failures",
        "arn:aws:s3:::clicks-failures",
        "file://{file_root}/clicks-failures.jsonl",
    ],
)
@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
def test_allowed_on_failure_destinations(tmp_path: Path, kind: str, destination: str) -> None:
    """spec §6.1: streams send failures to a standard queue or topic or a bucket; DESIGN §1.4: or a
    file, inside destinations.file_root (by default `var/destinations` beside the settings)."""
    destination = destination.format(file_root=tmp_path / "var" / "destinations")
    mapping = load_one(
        tmp_path, f"DestinationConfig: {{OnFailure: {{Destination: '{destination}'}}}}\n", HEADS[kind]
    )
    assert mapping.on_failure_destination == destination


def test_kafka_destination_is_refused_for_streams(tmp_path: Path) -> None:
    """spec §6.1: `kafka://topic` is for Kafka sources only; AWS's DestinationConfig message."""
    text = only_problem(tmp_path, "DestinationConfig:\n  OnFailure:\n    Destination: kafka://failures\n")
    assert text == (
        f"{where(tmp_path, 7)}: DestinationConfig.OnFailure.Destination: "
        "Unsupported DestinationConfig parameter for given event source mapping type."
    )


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        (
            "arn:aws:sqs:us-east-1:123456789012:dlq.fifo",
            "Destination 'arn:aws:sqs:us-east-1:123456789012:dlq.fifo' is a FIFO queue; "
            "on-failure destinations must be standard queues",
        ),
        (
            "arn:aws:sns:us-east-1:123456789012:failures.fifo",
            "Destination 'arn:aws:sns:us-east-1:123456789012:failures.fifo' is a FIFO topic; "
            "on-failure destinations must be standard topics",
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Destination 'arn:aws:lambda:us-east-1:123456789012:function:f' is not a valid SQS queue, "
            "SNS topic or S3 bucket ARN",
        ),
        (
            "file://relative/path.jsonl",
            "Destination 'file://relative/path.jsonl' must be an absolute file URI: "
            "file:///absolute/path.jsonl",
        ),
    ],
)
def test_unusable_destinations_are_refused(tmp_path: Path, destination: str, expected: str) -> None:
    """spec §1.3, §6.1: only standard queues/topics (FIFO ones are unsupported), buckets and files."""
    text = only_problem(tmp_path, f"DestinationConfig:\n  OnFailure:\n    Destination: '{destination}'\n")
    assert text == f"{where(tmp_path, 7)}: DestinationConfig.OnFailure.Destination: {expected}"


def test_empty_destination_means_none(tmp_path: Path) -> None:
    """spec §1.4: `Destination: ""` is how AWS removes a destination."""
    mapping = load_one(tmp_path, "DestinationConfig: {OnFailure: {Destination: ''}}\n")
    assert mapping.on_failure_destination is None


def test_on_success_destination_is_refused(tmp_path: Path) -> None:
    """spec §1.6: OnSuccess is rejected for event source mappings."""
    text = only_problem(
        tmp_path, "DestinationConfig:\n  OnSuccess: {Destination: 'arn:aws:sns:us-east-1:123456789012:t'}\n"
    )
    assert text == (
        f"{where(tmp_path, 6)}: DestinationConfig.OnSuccess: "
        "Unsupported DestinationConfig parameter for given event source mapping type."
    )


# --- FilterCriteria and FunctionResponseTypes -------------------------------------------------------------


def test_invalid_filter_pattern_is_refused_with_aws_message(tmp_path: Path) -> None:
    """spec §1.6, §7.6: AWS's `Invalid filter pattern definition.`, on the pattern's own line."""
    text = only_problem(tmp_path, "FilterCriteria:\n  Filters:\n    - Pattern: 'not json'\n")
    assert text == (
        f"{where(tmp_path, 7)}: FilterCriteria.Filters[0].Pattern: Invalid filter pattern definition."
    )


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [("kinesis", '{"data": ["plain"]}'), ("dynamodb", '{"dynamodb": [{"exists": true}]}')],
)
def test_filters_follow_the_stream_data_key_rules(tmp_path: Path, kind: str, pattern: str) -> None:
    """spec §7.4, §7.6: Kinesis and DynamoDB refuse a non-object pattern for their data key
    (which SQS would accept for `body`), so the resolver checks filters for the stream's kind."""
    text = only_problem(tmp_path, f"FilterCriteria:\n  Filters:\n    - Pattern: '{pattern}'\n", HEADS[kind])
    assert text == (
        f"{where(tmp_path, 7)}: FilterCriteria.Filters[0].Pattern: Invalid filter pattern definition."
    )


def test_too_many_filters(tmp_path: Path) -> None:
    """spec §7.1: at most 5 filters by default."""
    filters = "".join(f'    - Pattern: \'{{"partitionKey": ["{n}"]}}\'\n' for n in range(6))
    text = only_problem(tmp_path, "FilterCriteria:\n  Filters:\n" + filters)
    assert text == (
        f"{where(tmp_path, 6)}: FilterCriteria.Filters: Invalid filter pattern definition. "
        "(6 filters; at most 5 are allowed)"
    )


@pytest.mark.parametrize("criteria", ["{}", "{Filters: []}"])
def test_empty_filter_criteria_are_fine(tmp_path: Path, criteria: str) -> None:
    """spec §1.4: `{}` / `{"Filters": []}` is how AWS removes filters."""
    assert load_one(tmp_path, f"FilterCriteria: {criteria}\n").filter_patterns == ()


def test_report_batch_item_failures(tmp_path: Path) -> None:
    """spec §1.4, §4.2: FunctionResponseTypes [ReportBatchItemFailures] turns on partial batch responses."""
    mapping = load_one(tmp_path, "FunctionResponseTypes: [ReportBatchItemFailures]\n", DYNAMODB)
    assert mapping.report_batch_item_failures is True


# --- the retry warning ------------------------------------------------------------------------------------


def test_unbounded_retries_without_destination_warn(tmp_path: Path) -> None:
    """spec §1.4, §5.2: with the defaults a poison record holds its shard until it expires, then is lost.
    A warning, not an error: the mapping still loads."""
    mappings, problems = load(tmp_path)
    assert [m.name for m in mappings] == ["clicks"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'clicks.yaml'}:1: warning: Mapping 'clicks': MaximumRetryAttempts: {RETRY_WARNING}"
    ]
    assert problems[0].severity == "warning"


def test_explicit_minus_one_warns_on_its_line(tmp_path: Path) -> None:
    """spec §1.4: -1 is AWS's default, written out or not."""
    mappings, problems = load(
        tmp_path, "MaximumRecordAgeInSeconds: 3600\nMaximumRetryAttempts: -1\n", DYNAMODB
    )
    assert len(mappings) == 1
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'clicks.yaml'}:6: warning: Mapping 'clicks': MaximumRetryAttempts: {RETRY_WARNING}"
    ]


@pytest.mark.parametrize(
    "extra",
    [
        "MaximumRetryAttempts: 0\n",
        "MaximumRetryAttempts: 10000\n",
        "DestinationConfig: {OnFailure: {Destination: 'arn:aws:sqs:us-east-1:123456789012:dlq'}}\n",
    ],
)
def test_no_warning_with_bounded_retries_or_a_destination(tmp_path: Path, extra: str) -> None:
    """spec §5.2: bounded retries, or a destination that keeps the failed records, need no warning."""
    mappings, problems = load(tmp_path, extra)
    assert (len(mappings), problems) == (1, [])


def test_invalid_mapping_gets_errors_not_the_warning(tmp_path: Path) -> None:
    """Warnings are advice about a mapping that loads; an invalid one gets its errors."""
    mappings, problems = load(tmp_path, "BatchSize: 0\n")
    assert mappings == []
    assert [(p.severity, p.field) for p in problems] == [("error", "BatchSize")]


def test_resolve_mapping_returns_the_warning_beside_the_mapping() -> None:
    """The resolver contract: (mapping or None, every problem); `resolve_entry` keeps its old shape."""
    raw = RawMapping.model_validate(
        {"Name": "m", "EventSourceArn": KINESIS_ARN, "FunctionName": "f", "StartingPosition": "LATEST"}
    )
    entry = RawEntry(raw, MappingContext("m", None, LineMap({})))
    mapping, problems = resolve_mapping(entry)
    assert isinstance(mapping, StreamMapping)
    assert [(p.severity, p.field) for p in problems] == [("warning", "MaximumRetryAttempts")]
    assert resolve_entry(entry) == mapping


def test_validate_prints_the_warning_and_passes(tmp_path: Path) -> None:
    """DESIGN §1.2: warnings are printed but `poller validate` still exits 0."""
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "clicks.yaml").write_text(KINESIS)
    out = io.StringIO()
    assert run_validate(None, environ={}, cwd=tmp_path, out=out) == 0
    assert out.getvalue().splitlines() == [
        f"{tmp_path / 'mappings' / 'clicks.yaml'}:1: warning: Mapping 'clicks': MaximumRetryAttempts: "
        f"{RETRY_WARNING}",
        "1 mapping OK, 0 problems, 1 warning",
    ]


# --- rules across mappings -----------------------------------------------------------------------------


def test_duplicate_stream_and_function(tmp_path: Path) -> None:
    """spec §1.6: one mapping per stream and function; AWS's ResourceConflictException text."""
    (tmp_path / "a.yaml").write_text(KINESIS + BOUNDED)
    (tmp_path / "b.yaml").write_text(KINESIS.replace("Name: clicks", "Name: clicks-again") + BOUNDED)
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert [m.name for m in mappings] == ["clicks"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'b.yaml'}:2: Mapping 'clicks-again': EventSourceArn: The event source arn "
        f'(" {KINESIS_ARN} ") and function (" handle-clicks ") provided mapping already exists. '
        "Please update or delete the existing mapping with UUID clicks"
    ]


def test_duplicate_dynamodb_stream_and_function(tmp_path: Path) -> None:
    """spec §1.6: the same rule and message for DynamoDB Streams."""
    (tmp_path / "a.yaml").write_text(DYNAMODB + BOUNDED)
    (tmp_path / "b.yaml").write_text(DYNAMODB.replace("Name: clicks", "Name: second") + BOUNDED)
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert [m.name for m in mappings] == ["clicks"]
    assert [(p.mapping, p.field) for p in problems] == [("second", "EventSourceArn")]
    assert problems[0].message.startswith(f'The event source arn (" {DYNAMODB_ARN} ")')


def test_same_stream_different_functions_is_fine(tmp_path: Path) -> None:
    """spec §1.6: duplicates are allowed across different functions."""
    (tmp_path / "a.yaml").write_text(KINESIS + BOUNDED)
    (tmp_path / "b.yaml").write_text(
        KINESIS.replace("Name: clicks", "Name: audit").replace("handle-clicks", "audit") + BOUNDED
    )
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert ([m.name for m in mappings], problems) == (["clicks", "audit"], [])
    assert {m.function_name for m in mappings} == {"handle-clicks", "audit"}


def test_streams_and_queues_load_side_by_side(tmp_path: Path) -> None:
    """Every kind resolves to its own type; `source_kind` tells them apart."""
    (tmp_path / "a.yaml").write_text(KINESIS + BOUNDED)
    (tmp_path / "b.yaml").write_text(DYNAMODB.replace("Name: clicks", "Name: orders") + BOUNDED)
    (tmp_path / "c.yaml").write_text(
        "Name: queue\nEventSourceArn: arn:aws:sqs:us-east-1:123456789012:q\nFunctionName: handle-clicks\n"
    )
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert problems == []
    assert [(m.name, m.source_kind) for m in mappings] == [
        ("clicks", "kinesis"),
        ("orders", "dynamodb"),
        ("queue", "sqs"),
    ]
