"""Self-managed Kafka mapping rules and the settings' `kafka:` section: defaults, AWS ranges, AWS's
own error messages where it has them (spec §1.2-§1.6, §2, §5.3, §6.1; DESIGN §1.3, §1.4)."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.config import (
    KafkaMapping,
    Location,
    Problem,
    ResolvedMapping,
    load_config,
    load_mappings,
    load_settings,
    run_validate,
)
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext
from poller.config.resolve import RawEntry, resolve_mapping
from poller.config.resolved import UnstartableMapping
from poller.config.yaml_lines import LineMap

SERVERS = "SelfManagedEventSource: {Endpoints: {KAFKA_BOOTSTRAP_SERVERS: ['b1:9092', 'b2:9092']}}\n"
HEAD = f"""\
Name: orders
{SERVERS}Topics: [orders]
FunctionName: handle-orders
"""
"""Lines 1-4; a test's `extra` starts on line 5."""
TOPIC_ONLY = "Name: orders\nTopics: [orders]\nFunctionName: handle-orders\n"
"""A mapping that leaves its servers to the settings (lines 1-3)."""

MISSING_SERVERS = (
    "Required 'SelfManagedEventSource' parameter is missing. Name the brokers in "
    "SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS, or set kafka.bootstrap_servers "
    "in the settings."
)
MSK_MESSAGE = (
    "EventSourceArn (an Amazon MSK cluster) and SelfManagedEventSource name the cluster twice; "
    "keep SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS and remove EventSourceArn."
)
SERVER_PATTERN = (
    r"(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*"
    r"[A-Za-z0-9]):[0-9]{1,5}"
)
"""botocore's model's pattern for a bootstrap server."""
TOPIC_PATTERN = r"[^.]([a-zA-Z0-9\-_.]+)"


def load(
    tmp_path: Path, extra: str = "", head: str = HEAD, servers: tuple[str, ...] = ()
) -> tuple[list[ResolvedMapping], list[Problem]]:
    file = tmp_path / "orders.yaml"
    file.write_text(head + dedent(extra))
    return load_mappings([file], tmp_path, kafka_bootstrap_servers=servers)


def load_one(
    tmp_path: Path, extra: str = "", head: str = HEAD, servers: tuple[str, ...] = ()
) -> KafkaMapping:
    """The one mapping, which must load without errors or warnings."""
    mappings, problems = load(tmp_path, extra, head, servers)
    assert problems == []
    [mapping] = mappings
    assert isinstance(mapping, KafkaMapping)
    return mapping


def only_problem(tmp_path: Path, extra: str = "", head: str = HEAD, servers: tuple[str, ...] = ()) -> str:
    mappings, problems = load(tmp_path, extra, head, servers)
    assert mappings == []
    assert len(problems) == 1, problems
    return str(problems[0])


def where(tmp_path: Path, line: int) -> str:
    return f"{tmp_path / 'orders.yaml'}:{line}: Mapping 'orders'"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))
    return path


# --- defaults and carried-through settings ---------------------------------------------------------------


def test_defaults_follow_aws(tmp_path: Path) -> None:
    """spec §1.2, §1.3, §2: BatchSize 100, window 500 ms, StartingPosition TRIM_HORIZON, consumer group
    = the ESM's id (our Name), MaximumRetryAttempts / MaximumRecordAgeInSeconds -1; no retry warning
    (on-demand mode retries until success, spec §5.3)."""
    mappings, problems = load(tmp_path)
    assert problems == []
    assert mappings == [
        KafkaMapping(
            name="orders",
            location=Location(tmp_path / "orders.yaml", 1),
            event_source_arn="kafka://b1:9092/orders",
            topic="orders",
            bootstrap_servers=("b1:9092", "b2:9092"),
            consumer_group_id="orders",
            function_name="handle-orders",
            function_timeout_seconds=3,
            enabled=True,
            batch_size=100,
            maximum_batching_window_ms=500,
            starting_position="TRIM_HORIZON",
            starting_position_timestamp=None,
            bisect_batch_on_function_error=False,
            maximum_retry_attempts=-1,
            maximum_record_age_seconds=-1,
            report_batch_item_failures=False,
            on_failure_destination=None,
            filter_patterns=(),
            source_access_configurations=(),
        )
    ]
    assert mappings[0].source_kind == "kafka"


def test_every_setting_carries_through(tmp_path: Path) -> None:
    """spec §1.3, §1.4: every Kafka parameter, as written, ends up on the resolved mapping."""
    mapping = load_one(
        tmp_path,
        """\
        SelfManagedKafkaEventSourceConfig: {ConsumerGroupId: 'team/a*b:c_d+e=f.g@h-i'}
        StartingPosition: AT_TIMESTAMP
        StartingPositionTimestamp: 2024-01-01T00:00:00Z
        FunctionTimeout: 60
        Enabled: false
        BatchSize: 500
        MaximumBatchingWindowInSeconds: 5
        BisectBatchOnFunctionError: true
        MaximumRetryAttempts: 3
        MaximumRecordAgeInSeconds: 3600
        FunctionResponseTypes: [ReportBatchItemFailures]
        TumblingWindowInSeconds: 0
        DestinationConfig:
          OnFailure:
            Destination: kafka://orders-failures
        FilterCriteria:
          Filters:
            - Pattern: '{"value": {"kind": ["order"]}}'
            - Pattern: '{"value": {"kind": ["refund"]}}'
        SourceAccessConfigurations:
          - Type: SASL_SCRAM_512_AUTH
            URI: arn:aws:secretsmanager:us-east-1:123456789012:secret:kafka
        MetricsConfig: {Metrics: [EventCount]}
        Tags: {team: web}
        """,
    )
    assert mapping == KafkaMapping(
        name="orders",
        location=Location(tmp_path / "orders.yaml", 1),
        event_source_arn="kafka://b1:9092/orders",
        topic="orders",
        bootstrap_servers=("b1:9092", "b2:9092"),
        consumer_group_id="team/a*b:c_d+e=f.g@h-i",
        function_name="handle-orders",
        function_timeout_seconds=60,
        enabled=False,
        batch_size=500,
        maximum_batching_window_ms=5000,
        starting_position="AT_TIMESTAMP",
        starting_position_timestamp=datetime(2024, 1, 1, tzinfo=UTC).timestamp(),
        bisect_batch_on_function_error=True,
        maximum_retry_attempts=3,
        maximum_record_age_seconds=3600,
        report_batch_item_failures=True,
        on_failure_destination="kafka://orders-failures",
        filter_patterns=('{"value": {"kind": ["order"]}}', '{"value": {"kind": ["refund"]}}'),
        source_access_configurations=(
            ("SASL_SCRAM_512_AUTH", "arn:aws:secretsmanager:us-east-1:123456789012:secret:kafka"),
        ),
    )


@pytest.mark.parametrize(("written", "expected_ms"), [("", 500), ("0", 0), ("1", 1000), ("300", 300_000)])
def test_batching_window(tmp_path: Path, written: str, expected_ms: int) -> None:
    """spec §1.3, §2: 500 ms when absent; once set it is whole seconds (0 = invoke at once)."""
    extra = f"MaximumBatchingWindowInSeconds: {written}\n" if written else ""
    assert load_one(tmp_path, extra).maximum_batching_window_ms == expected_ms


@pytest.mark.parametrize("position", ["TRIM_HORIZON", "LATEST"])
def test_starting_position_as_written(tmp_path: Path, position: str) -> None:
    """spec §1.3: TRIM_HORIZON, LATEST, AT_TIMESTAMP."""
    assert load_one(tmp_path, f"StartingPosition: {position}\n").starting_position == position


# --- bootstrap servers -----------------------------------------------------------------------------------


def test_servers_come_from_the_settings_when_the_mapping_names_none(tmp_path: Path) -> None:
    """DESIGN §1.3: `kafka.bootstrap_servers` is the default; `Topics` alone then makes a Kafka mapping."""
    mapping = load_one(tmp_path, head=TOPIC_ONLY, servers=("k1:9092", "k2:9093"))
    assert mapping.bootstrap_servers == ("k1:9092", "k2:9093")
    assert mapping.event_source_arn == "kafka://k1:9092/orders"


def test_the_mappings_own_servers_win(tmp_path: Path) -> None:
    assert load_one(tmp_path, servers=("k1:9092",)).bootstrap_servers == ("b1:9092", "b2:9092")


def test_load_config_threads_the_settings_servers_through(tmp_path: Path) -> None:
    """DESIGN §1.3: the settings file's (or POLLER_KAFKA__BOOTSTRAP_SERVERS') servers reach the mappings."""
    write(tmp_path / "config" / "poller.yaml", "kafka: {bootstrap_servers: ['k1:9092']}\nmappings: [m/]\n")
    write(tmp_path / "config" / "m" / "orders.yaml", TOPIC_ONLY)
    loaded = load_config(environ={}, cwd=tmp_path)
    assert loaded.problems == ()
    assert [m.bootstrap_servers for m in loaded.mappings if isinstance(m, KafkaMapping)] == [("k1:9092",)]
    env = {"POLLER_KAFKA__BOOTSTRAP_SERVERS": '["k9:19092"]'}
    loaded = load_config(environ=env, cwd=tmp_path)
    assert [m.bootstrap_servers for m in loaded.mappings if isinstance(m, KafkaMapping)] == [("k9:19092",)]


def test_no_servers_anywhere(tmp_path: Path) -> None:
    """Neither the mapping nor the settings name a broker: AWS's wording for the missing parameter."""
    text = only_problem(tmp_path, head=TOPIC_ONLY)
    assert text == f"{where(tmp_path, 1)}: SelfManagedEventSource: {MISSING_SERVERS}"


def test_empty_server_list_is_refused(tmp_path: Path) -> None:
    head = HEAD.replace("['b1:9092', 'b2:9092']", "[]")
    text = only_problem(tmp_path, head=head)
    assert text == (
        f"{where(tmp_path, 2)}: SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS: "
        "1 validation error detected: Value '[]' at 'selfManagedEventSource.endpoints.KAFKA_BOOTSTRAP_SERVERS' "
        "failed to satisfy constraint: Member must have length greater than or equal to 1"
    )


@pytest.mark.parametrize("server", ["b1", "b1:", ":9092", "b1:port", "b 1:9092", "[::1]:9092"])
def test_server_must_match_the_model_pattern(tmp_path: Path, server: str) -> None:
    """botocore's model: `host:port`, the host a DNS name or IPv4 address (so no IPv6 literal)."""
    head = (
        "Name: orders\nSelfManagedEventSource:\n  Endpoints:\n    KAFKA_BOOTSTRAP_SERVERS:\n      - ok:9092\n"
    )
    head += f"      - '{server}'\nTopics: [orders]\nFunctionName: f\n"
    text = only_problem(tmp_path, head=head)
    assert text == (
        f"{where(tmp_path, 6)}: SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS[1]: "
        f"1 validation error detected: Value '[ok:9092, {server}]' at "
        "'selfManagedEventSource.endpoints.KAFKA_BOOTSTRAP_SERVERS' failed to satisfy constraint: "
        f"Member must satisfy constraint: [Member must satisfy regular expression pattern: {SERVER_PATTERN}]"
    )


@pytest.mark.parametrize("server", ["b1:70000", "b1:0"])
def test_server_must_be_host_and_port(tmp_path: Path, server: str) -> None:
    head = (
        "Name: orders\nSelfManagedEventSource:\n  Endpoints:\n    KAFKA_BOOTSTRAP_SERVERS:\n      - ok:9092\n"
    )
    head += f"      - '{server}'\nTopics: [orders]\nFunctionName: f\n"
    text = only_problem(tmp_path, head=head)
    assert text == (
        f"{where(tmp_path, 6)}: SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS[1]: "
        f"Bootstrap server '{server}' is not host:port (e.g. broker-1.example.com:9092)."
    )


@pytest.mark.parametrize("server", ["localhost:9092", "10.0.0.1:1", "broker-1.kafka.svc:65535"])
def test_host_and_port_forms(tmp_path: Path, server: str) -> None:
    head = HEAD.replace("['b1:9092', 'b2:9092']", f"['{server}']")
    assert load_one(tmp_path, head=head).bootstrap_servers == (server,)


# --- Topics ---------------------------------------------------------------------------------------------


def test_topics_are_required(tmp_path: Path) -> None:
    head = HEAD.replace("Topics: [orders]\n", "")
    assert (
        only_problem(tmp_path, head=head)
        == f"{where(tmp_path, 1)}: Topics: Required 'Topics' parameter is missing."
    )


@pytest.mark.parametrize(
    ("topics", "constraint"),
    [("[a1, b1]", "less than or equal to 1"), ("[]", "greater than or equal to 1")],
)
def test_exactly_one_topic(tmp_path: Path, topics: str, constraint: str) -> None:
    """spec §1.3: `Topics` holds exactly one topic; AWS's validation-message format."""
    text = only_problem(tmp_path, head=HEAD.replace("[orders]", topics))
    assert text == (
        f"{where(tmp_path, 3)}: Topics: 1 validation error detected: Value '{topics}' at 'topics' failed "
        f"to satisfy constraint: Member must have length {constraint}"
    )


@pytest.mark.parametrize(
    ("topic", "failed"),
    [
        ("t", [f"Member must satisfy regular expression pattern: {TOPIC_PATTERN}"]),
        (".hidden", [f"Member must satisfy regular expression pattern: {TOPIC_PATTERN}"]),
        ("a b", [f"Member must satisfy regular expression pattern: {TOPIC_PATTERN}"]),
        ("t" * 250, ["Member must have length less than or equal to 249"]),
        (
            "",
            [
                "Member must have length greater than or equal to 1",
                f"Member must satisfy regular expression pattern: {TOPIC_PATTERN}",
            ],
        ),
    ],
)
def test_topic_name_pattern(tmp_path: Path, topic: str, failed: list[str]) -> None:
    """spec §1.4: `[^.]([a-zA-Z0-9\\-_.]+)`, at most 249 characters (so at least 2)."""
    text = only_problem(tmp_path, head=HEAD.replace("[orders]", f"['{topic}']"))
    assert text == (
        f"{where(tmp_path, 3)}: Topics[0]: 1 validation error detected: Value '[{topic}]' at 'topics' "
        f"failed to satisfy constraint: Member must satisfy constraint: [{', '.join(failed)}]"
    )


def test_topic_name_kafka_would_refuse(tmp_path: Path) -> None:
    """The API pattern lets any first character but '.' through; Kafka allows only a-z A-Z 0-9 . _ -."""
    text = only_problem(tmp_path, head=HEAD.replace("[orders]", "['/orders']"))
    assert text == (
        f"{where(tmp_path, 3)}: Topics[0]: Topic '/orders' is not a valid Kafka topic name: "
        "use only a-z A-Z 0-9 . _ -"
    )


@pytest.mark.parametrize("topic", ["ab", "_orders", "-x", "orders.v1_eu-west", "t" * 249])
def test_valid_topic_names(tmp_path: Path, topic: str) -> None:
    assert load_one(tmp_path, head=HEAD.replace("[orders]", f"['{topic}']")).topic == topic


# --- ConsumerGroupId -------------------------------------------------------------------------------------


def test_consumer_group_id_pattern(tmp_path: Path) -> None:
    """botocore's model: `[ a-zA-Z0-9-\\/*:_+=.@-]*` (a space is allowed); AWS's validation message."""
    assert (
        load_one(tmp_path, "SelfManagedKafkaEventSourceConfig:\n  ConsumerGroupId: 'a b'\n").consumer_group_id
        == "a b"
    )
    text = only_problem(tmp_path, "SelfManagedKafkaEventSourceConfig:\n  ConsumerGroupId: 'a#b'\n")
    assert text == (
        f"{where(tmp_path, 6)}: SelfManagedKafkaEventSourceConfig.ConsumerGroupId: 1 validation error "
        "detected: Value 'a#b' at 'selfManagedKafkaEventSourceConfig.consumerGroupId' failed to satisfy "
        r"constraint: Member must satisfy regular expression pattern: [ a-zA-Z0-9-\/*:_+=.@-]*"
    )


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("''", "Member must have length greater than or equal to 1"),
        ("g" * 201, "Member must have length less than or equal to 200"),
    ],
)
def test_consumer_group_id_length(tmp_path: Path, group: str, expected: str) -> None:
    """spec §1.4: 1-200 characters."""
    text = only_problem(tmp_path, f"SelfManagedKafkaEventSourceConfig: {{ConsumerGroupId: {group}}}\n")
    value = group.strip("'")
    assert text == (
        f"{where(tmp_path, 5)}: SelfManagedKafkaEventSourceConfig.ConsumerGroupId: 1 validation error detected: "
        f"Value '{value}' at 'selfManagedKafkaEventSourceConfig.consumerGroupId' failed to satisfy constraint: "
        f"{expected}"
    )


def test_empty_kafka_config_keeps_the_default_group(tmp_path: Path) -> None:
    assert load_one(tmp_path, "SelfManagedKafkaEventSourceConfig: {}\n").consumer_group_id == "orders"


def test_schema_registry_is_accepted_and_not_started(tmp_path: Path) -> None:
    """AWS accepts SchemaRegistryConfig; poller does not decode through a registry, so the mapping
    loads as not startable, with a warning that says why."""
    mappings, problems = load(
        tmp_path, "SelfManagedKafkaEventSourceConfig:\n  SchemaRegistryConfig: {SchemaRegistryURI: x}\n"
    )
    [mapping] = mappings
    assert isinstance(mapping, UnstartableMapping)
    assert (mapping.source_kind, mapping.event_source_arn) == ("kafka", "kafka://b1:9092/orders")
    assert mapping.reason.startswith("ESM_CONFIG_NOT_VALID: Poller does not decode records through a schema")
    assert [
        (p.severity, p.message.startswith("Accepted, but this mapping will not run")) for p in problems
    ] == [("warning", True)]


# --- keys a Kafka source refuses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ParallelizationFactor", "2"),
        ("TumblingWindowInSeconds", "60"),
        ("ScalingConfig", "{MaximumConcurrency: 5}"),
        ("ScalingConfig", "{}"),
        ("EventSourceArn", "'arn:aws:s3:::bucket'"),
    ],
)
def test_keys_not_valid_for_kafka(tmp_path: Path, key: str, value: str) -> None:
    """spec §1.3: these parameters are n/a for Kafka; the streams' wording."""
    text = only_problem(tmp_path, f"{key}: {value}\n")
    assert text == f"{where(tmp_path, 5)}: {key}: {key} is not valid for Kafka event sources."


def test_tumbling_window_zero_means_off(tmp_path: Path) -> None:
    load_one(tmp_path, "TumblingWindowInSeconds: 0\n")


def test_msk_arn_beside_bootstrap_servers_is_refused(tmp_path: Path) -> None:
    """spec §1.4: MSK is named by a cluster ARN, self-managed Kafka by its servers: not both."""
    text = only_problem(tmp_path, "EventSourceArn: arn:aws:kafka:us-east-1:123456789012:cluster/c/abc\n")
    assert text == f"{where(tmp_path, 5)}: EventSourceArn: {MSK_MESSAGE}"


def test_msk_consumer_config_is_refused(tmp_path: Path) -> None:
    text = only_problem(tmp_path, "AmazonManagedKafkaEventSourceConfig: {ConsumerGroupId: g}\n")
    assert text == (
        f"{where(tmp_path, 5)}: AmazonManagedKafkaEventSourceConfig: AmazonManagedKafkaEventSourceConfig "
        "is for Amazon MSK event sources; use SelfManagedKafkaEventSourceConfig."
    )


def test_function_timeout_is_at_most_14_minutes(tmp_path: Path) -> None:
    """spec §5.3: functions used by Kafka event sources may have at most a 14-minute timeout."""
    assert load_one(tmp_path, "FunctionTimeout: 840\n").function_timeout_seconds == 840
    text = only_problem(tmp_path, "FunctionTimeout: 841\n")
    assert text == (
        f"{where(tmp_path, 5)}: FunctionTimeout: FunctionTimeout 841 is above 840 seconds: functions used "
        "by Kafka event sources may have at most a 14-minute timeout."
    )


def test_provisioned_poller_config_loads_with_a_warning(tmp_path: Path) -> None:
    """spec §1.3: Kafka's ProvisionedPollerConfig allows MinimumPollers 1; poller has no use for it."""
    mappings, problems = load(tmp_path, "ProvisionedPollerConfig: {MinimumPollers: 1, MaximumPollers: 1}\n")
    assert [m.name for m in mappings] == ["orders"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'orders.yaml'}:5: warning: Mapping 'orders': ProvisionedPollerConfig: "
        "ProvisionedPollerConfig has no effect in poller: a Kafka mapping scales by running more replicas "
        "in its consumer group, and the provisioned-mode controls (retries, bisection, record age, partial "
        "batch responses, on-failure destination) apply without it."
    ]


def test_sqs_still_needs_two_pollers(tmp_path: Path) -> None:
    """spec §1.3: widening ProvisionedPollerConfig to Kafka's range leaves SQS's minimum of 2."""
    file = write(
        tmp_path / "q.yaml",
        """\
        Name: q
        EventSourceArn: arn:aws:sqs:us-east-1:123456789012:q
        FunctionName: f
        ProvisionedPollerConfig: {MinimumPollers: 1, MaximumPollers: 1}
        """,
    )
    mappings, problems = load_mappings([file], tmp_path)
    assert mappings == []
    assert [str(p) for p in problems] == [
        f"{file}:4: Mapping 'q': ProvisionedPollerConfig.{key}: Input should be greater than or equal to 2"
        for key in ("MinimumPollers", "MaximumPollers")
    ]


# --- StartingPosition / StartingPositionTimestamp --------------------------------------------------------


def test_at_timestamp_needs_a_timestamp(tmp_path: Path) -> None:
    """spec §1.6: AWS's `Need to specify a timestamp`."""
    text = only_problem(tmp_path, "StartingPosition: AT_TIMESTAMP\n")
    assert text == f"{where(tmp_path, 1)}: StartingPositionTimestamp: Need to specify a timestamp"


def test_at_timestamp_takes_unix_seconds(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, "StartingPosition: AT_TIMESTAMP\nStartingPositionTimestamp: 1700000000\n")
    assert (mapping.starting_position, mapping.starting_position_timestamp) == ("AT_TIMESTAMP", 1700000000.0)


def test_timestamp_in_the_future_is_refused(tmp_path: Path) -> None:
    """As for Kinesis (spec §1.3): a start in the future is refused."""
    future = int(time.time()) + 3600
    text = only_problem(tmp_path, f"StartingPosition: AT_TIMESTAMP\nStartingPositionTimestamp: {future}\n")
    iso = datetime.fromtimestamp(future, UTC).isoformat()
    assert text == (
        f"{where(tmp_path, 6)}: StartingPositionTimestamp: StartingPositionTimestamp {iso} is in the future; "
        "it must not be later than the current time."
    )


@pytest.mark.parametrize("position", ["", "StartingPosition: LATEST\n"])
def test_timestamp_without_at_timestamp_is_refused(tmp_path: Path, position: str) -> None:
    text = only_problem(tmp_path, f"{position}StartingPositionTimestamp: 1700000000\n")
    line = 6 if position else 5
    assert text == (
        f"{where(tmp_path, line)}: StartingPositionTimestamp: StartingPositionTimestamp is only valid with "
        "StartingPosition AT_TIMESTAMP; remove it or set StartingPosition: AT_TIMESTAMP."
    )


def test_invalid_starting_position_gets_aws_enum_message(tmp_path: Path) -> None:
    """spec §1.6: AWS's enum message."""
    text = only_problem(tmp_path, "StartingPosition: EARLIEST\n")
    assert text == (
        f"{where(tmp_path, 5)}: StartingPosition: 1 validation error detected: Value 'EARLIEST' at "
        "'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: "
        "[LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
    )


# --- BatchSize -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "constraint"),
    [("0", "greater than or equal to 1"), ("10001", "less than or equal to 10000")],
)
def test_batch_size_out_of_range(tmp_path: Path, size: str, constraint: str) -> None:
    """spec §1.3: 1-10,000; AWS's constraint message, as for streams."""
    text = only_problem(tmp_path, f"BatchSize: {size}\n")
    assert text == (
        f"{where(tmp_path, 5)}: BatchSize: 1 validation error detected: Value '{size}' at 'batchSize' "
        f"failed to satisfy constraint: Member must have value {constraint}"
    )


def _resolve(fields: dict[str, object]) -> tuple[ResolvedMapping | None, list[Problem]]:
    raw = RawMapping.model_validate({"Name": "m", "Topics": ["orders"], "FunctionName": "f", **fields})
    return resolve_mapping(
        RawEntry(raw, MappingContext("m", None, LineMap({}))), kafka_bootstrap_servers=("b:1",)
    )


@given(
    batch_size=st.integers(min_value=-3, max_value=10_010),
    window=st.none() | st.integers(min_value=0, max_value=300),
)
def test_batch_size_and_window_as_a_property(batch_size: int, window: int | None) -> None:
    """spec §1.3: valid iff 1 ≤ BatchSize ≤ 10,000, whatever the window (no SQS-style window rule)."""
    fields: dict[str, object] = {"BatchSize": batch_size}
    if window is not None:
        fields["MaximumBatchingWindowInSeconds"] = window
    mapping, problems = _resolve(fields)
    if 1 <= batch_size <= 10_000:
        assert isinstance(mapping, KafkaMapping)
        expected_ms = 500 if window is None else window * 1000
        assert (mapping.batch_size, mapping.maximum_batching_window_ms, problems) == (
            batch_size,
            expected_ms,
            [],
        )
    else:
        assert mapping is None
        assert [p.field for p in problems] == ["BatchSize"]


# --- SourceAccessConfigurations --------------------------------------------------------------------------


def test_source_access_configurations_are_accepted_and_kept(tmp_path: Path) -> None:
    """spec §1.4: the AWS types are accepted as written. Unlike AWS (spec §1.6, `Required
    'sourceAccessConfigurations' parameter is missing.`) they are optional: credentials come from the
    settings (DESIGN §1.3), so the mapping above without them loads too."""
    types = [
        "BASIC_AUTH",
        "SASL_SCRAM_256_AUTH",
        "SASL_SCRAM_512_AUTH",
        "CLIENT_CERTIFICATE_TLS_AUTH",
        "SERVER_ROOT_CA_CERTIFICATE",
        "VIRTUAL_HOST",
        "VPC_SUBNET",
        "VPC_SECURITY_GROUP",
    ]
    entries = "".join(f"  - {{Type: {t}, URI: 'uri-{n}'}}\n" for n, t in enumerate(types))
    mapping = load_one(tmp_path, "SourceAccessConfigurations:\n" + entries)
    assert mapping.source_access_configurations == tuple((t, f"uri-{n}") for n, t in enumerate(types))


def test_unknown_source_access_type(tmp_path: Path) -> None:
    text = only_problem(tmp_path, "SourceAccessConfigurations:\n  - {Type: KERBEROS, URI: x}\n")
    assert text.startswith(
        f"{where(tmp_path, 6)}: SourceAccessConfigurations[0].Type: 1 validation error detected: Value 'KERBEROS' "
        "at 'sourceAccessConfigurations.1.member.type' failed to satisfy constraint: Member must satisfy enum "
        "value set: [BASIC_AUTH, "
    )


# --- DestinationConfig -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "destination",
    [
        "arn:aws:sqs:us-east-1:123456789012:orders-dlq",
        "arn:aws:sns:us-east-1:123456789012:failures",
        "arn:aws:s3:::failure-bucket",
        "kafka://orders-failures",
        "file://{file_root}/failures.jsonl",
    ],
)
def test_allowed_on_failure_destinations(tmp_path: Path, destination: str) -> None:
    """spec §1.3, §6.1: SQS, SNS, S3 and a Kafka topic; DESIGN §1.4 adds `file://` (inside
    destinations.file_root: by default `var/destinations` beside the settings)."""
    destination = destination.format(file_root=tmp_path / "var" / "destinations")
    extra = f"DestinationConfig:\n  OnFailure:\n    Destination: '{destination}'\n"
    assert load_one(tmp_path, extra).on_failure_destination == destination


def test_source_topic_as_destination_is_refused(tmp_path: Path) -> None:
    """spec §1.6 (last paragraph), §6.1: Lambda blocks an on-failure Kafka topic equal to the source topic."""
    text = only_problem(tmp_path, "DestinationConfig:\n  OnFailure:\n    Destination: kafka://orders\n")
    assert text == (
        f"{where(tmp_path, 7)}: DestinationConfig.OnFailure.Destination: The on-failure destination "
        "kafka://orders is the source topic; Lambda does not allow failed records to be sent back to a "
        "topic the mapping reads."
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
            "kafka://#orders",
            "Destination 'kafka://#orders': a Kafka topic name is 1-249 of the characters A-Z a-z 0-9 . _ -",
        ),
    ],
)
def test_unusable_destinations_are_refused(tmp_path: Path, destination: str, expected: str) -> None:
    text = only_problem(tmp_path, f"DestinationConfig:\n  OnFailure:\n    Destination: '{destination}'\n")
    assert text == f"{where(tmp_path, 7)}: DestinationConfig.OnFailure.Destination: {expected}"


def test_on_success_destination_is_refused(tmp_path: Path) -> None:
    """spec §1.6: OnSuccess is rejected for event source mappings."""
    text = only_problem(tmp_path, "DestinationConfig:\n  OnSuccess: {Destination: 'kafka://ok-topic'}\n")
    assert text == (
        f"{where(tmp_path, 6)}: DestinationConfig.OnSuccess: "
        "Unsupported DestinationConfig parameter for given event source mapping type."
    )


# --- FilterCriteria --------------------------------------------------------------------------------------


def test_invalid_filter_pattern_is_refused_with_aws_message(tmp_path: Path) -> None:
    """spec §1.6, §7.6: AWS's `Invalid filter pattern definition.`, on the pattern's own line."""
    text = only_problem(tmp_path, "FilterCriteria:\n  Filters:\n    - Pattern: 'not json'\n")
    assert text == (
        f"{where(tmp_path, 7)}: FilterCriteria.Filters[0].Pattern: Invalid filter pattern definition."
    )


# --- rules across mappings -------------------------------------------------------------------------------


def _second(head: str = HEAD, name: str = "second") -> str:
    return head.replace("Name: orders", f"Name: {name}")


def test_duplicate_servers_topic_and_function(tmp_path: Path) -> None:
    """spec §1.6: overlapping bootstrap servers + same topic + same function; AWS's conflict text with
    the first mapping's Name for the UUID."""
    (tmp_path / "a.yaml").write_text(HEAD)
    (tmp_path / "b.yaml").write_text(_second(HEAD.replace("'b1:9092', 'b2:9092'", "'b2:9092', 'b3:9092'")))
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert [m.name for m in mappings] == ["orders"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'b.yaml'}:3: Mapping 'second': Topics: An event source mapping with event source "
        '("b2:9092,b3:9092"), function ("handle-orders"), topics ("orders") already exists. Please update '
        "or delete the existing mapping with UUID orders"
    ]


def test_duplicate_with_servers_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TOPIC_ONLY)
    (tmp_path / "b.yaml").write_text(_second(HEAD.replace("'b1:9092', 'b2:9092'", "'K1:9092'")))
    mappings, problems = load_mappings([tmp_path], tmp_path, kafka_bootstrap_servers=("k1:9092",))
    assert [m.name for m in mappings] == ["orders"]
    assert [(p.mapping, p.field) for p in problems] == [("second", "Topics")]


@pytest.mark.parametrize(
    "change",
    [
        ("handle-orders", "audit"),  # another function
        ("Topics: [orders]", "Topics: [payments]"),  # another topic
        ("'b1:9092', 'b2:9092'", "'c1:9092'"),  # another cluster
    ],
)
def test_not_duplicates(tmp_path: Path, change: tuple[str, str]) -> None:
    """spec §1.6: duplicates are allowed across different functions (and topics, and clusters)."""
    (tmp_path / "a.yaml").write_text(HEAD)
    (tmp_path / "b.yaml").write_text(_second(HEAD.replace(*change)))
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert ([m.name for m in mappings], problems) == (["orders", "second"], [])


def test_consumer_group_ids_are_unique(tmp_path: Path) -> None:
    """spec §1.4: ConsumerGroupId is unique across Kafka mappings; the default (the Name) counts."""
    (tmp_path / "a.yaml").write_text(HEAD)
    second = _second(HEAD.replace("handle-orders", "audit"))
    (tmp_path / "b.yaml").write_text(
        second + "SelfManagedKafkaEventSourceConfig:\n  ConsumerGroupId: orders\n"
    )
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert [m.name for m in mappings] == ["orders"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'b.yaml'}:6: Mapping 'second': SelfManagedKafkaEventSourceConfig.ConsumerGroupId: "
        f"ConsumerGroupId 'orders' is already used by the Kafka mapping 'orders' at {tmp_path / 'a.yaml'}:1; "
        "a consumer group id must be unique across Kafka event source mappings."
    ]


def test_kafka_streams_and_queues_load_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD)
    (tmp_path / "b.yaml").write_text(
        "Name: queue\nEventSourceArn: arn:aws:sqs:us-east-1:123456789012:orders\nFunctionName: handle-orders\n"
    )
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert problems == []
    assert [(m.name, m.source_kind) for m in mappings] == [("orders", "kafka"), ("queue", "sqs")]


def test_validate_reports_a_kafka_mapping_ok(tmp_path: Path) -> None:
    """DESIGN §1.2: `poller validate` with the settings' servers."""
    write(tmp_path / "config" / "poller.yaml", "kafka: {bootstrap_servers: ['k1:9092']}\nmappings: [m/]\n")
    write(tmp_path / "config" / "m" / "orders.yaml", TOPIC_ONLY)
    out = io.StringIO()
    assert run_validate(None, environ={}, cwd=tmp_path, out=out) == 0
    assert out.getvalue().splitlines() == ["1 mapping OK, 0 problems"]


# --- settings: the kafka: section ------------------------------------------------------------------------


def test_kafka_settings_defaults() -> None:
    """DESIGN §1.3: every key has a default; PLAINTEXT, no credentials, a short fetch wait (DESIGN §4)."""
    settings, problems = load_settings(None, {})
    assert problems == []
    assert settings.kafka.model_dump() == {
        "bootstrap_servers": (),
        "security_protocol": "PLAINTEXT",
        "sasl_mechanism": None,
        "sasl_username": None,
        "sasl_password": None,
        "ssl_cafile": None,
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "client_id": "poller",
        "session_timeout_ms": 10000,
        "fetch_max_wait_ms": 100,
    }


def test_kafka_settings_from_file(tmp_path: Path) -> None:
    file = write(
        tmp_path / "poller.yaml",
        """\
        kafka:
          bootstrap_servers: [b1:9093]
          security_protocol: SASL_SSL
          sasl_mechanism: SCRAM-SHA-256
          sasl_username: poller
          sasl_password: s3cret
          ssl_cafile: certs/ca.pem
          ssl_certfile: certs/client.pem
          ssl_keyfile: certs/client.key
          client_id: poller-eu
          fetch_max_wait_ms: 50
        """,
    )
    settings, problems = load_settings(file, {})
    assert problems == []
    kafka = settings.kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
        "poller",
    )
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == "s3cret"
    assert (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile) == (
        Path("certs/ca.pem"),
        Path("certs/client.pem"),
        Path("certs/client.key"),
    )
    assert (kafka.client_id, kafka.fetch_max_wait_ms) == ("poller-eu", 50)


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_needs_mechanism_username_and_password(tmp_path: Path, protocol: str) -> None:
    """A SASL protocol without its credentials is refused at load, naming each missing key."""
    file = write(tmp_path / "poller.yaml", f"kafka:\n  security_protocol: {protocol}\n")
    _, problems = load_settings(file, {})
    assert [str(p) for p in problems] == [
        f"{file}:1: kafka.{key}: Required when security_protocol is {protocol}."
        for key in ("sasl_mechanism", "sasl_username", "sasl_password")
    ]


def test_sasl_keys_without_a_sasl_protocol(tmp_path: Path) -> None:
    """Credentials that would be silently unused are refused."""
    file = write(tmp_path / "poller.yaml", "kafka:\n  sasl_username: poller\n")
    _, problems = load_settings(file, {})
    assert [str(p) for p in problems] == [
        f"{file}:2: kafka.sasl_username: Only used with security_protocol SASL_PLAINTEXT or SASL_SSL, "
        "not PLAINTEXT; set security_protocol or remove this key."
    ]


def test_ssl_files_without_an_ssl_protocol(tmp_path: Path) -> None:
    file = write(
        tmp_path / "poller.yaml",
        "kafka:\n  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: PLAIN\n"
        "  sasl_username: u\n  sasl_password: p\n  ssl_cafile: ca.pem\n",
    )
    _, problems = load_settings(file, {})
    assert [str(p) for p in problems] == [
        f"{file}:6: kafka.ssl_cafile: Only used with security_protocol SSL or SASL_SSL, not SASL_PLAINTEXT; "
        "set security_protocol or remove this key."
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kafka: {security_protocol: TLS}\n",
            "1: kafka.security_protocol: Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'",
        ),
        (
            "kafka:\n  bootstrap_servers: [broker]\n",
            "2: kafka.bootstrap_servers: Bootstrap server 'broker' is not host:port "
            "(e.g. broker-1.example.com:9092).",
        ),
        (
            "kafka:\n  fetch_max_wait_ms: -1\n",
            "2: kafka.fetch_max_wait_ms: Input should be greater than or equal to 0",
        ),
    ],
)
def test_kafka_settings_problems_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    file = write(tmp_path / "poller.yaml", text)
    _, problems = load_settings(file, {})
    assert [str(p) for p in problems] == [f"{file}:{expected}"]


def test_environment_overrides_each_kafka_key() -> None:
    """DESIGN §1.3: `POLLER_KAFKA__…` overrides, `__` separating levels."""
    environ = {
        "POLLER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "POLLER_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "POLLER_KAFKA__SASL_USERNAME": "svc",
        "POLLER_KAFKA__SASL_PASSWORD": "env-secret-value",
        "POLLER_KAFKA__SSL_CAFILE": "/etc/ssl/ca.pem",
        "POLLER_KAFKA__CLIENT_ID": "replica-1",
        "POLLER_KAFKA__FETCH_MAX_WAIT_MS": "250",
    }
    settings, problems = load_settings(None, environ)
    assert problems == []
    kafka = settings.kafka
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == "env-secret-value"
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "svc",
    )
    assert (kafka.ssl_cafile, kafka.client_id, kafka.fetch_max_wait_ms) == (
        Path("/etc/ssl/ca.pem"),
        "replica-1",
        250,
    )


def test_the_password_never_prints(tmp_path: Path) -> None:
    """`sasl_password` is a SecretStr: no repr, str or JSON dump shows it, nor does a settings problem."""
    secret = "env-secret-value"
    environ = {
        "POLLER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "POLLER_KAFKA__SASL_MECHANISM": "PLAIN",
        "POLLER_KAFKA__SASL_USERNAME": "svc",
        "POLLER_KAFKA__SASL_PASSWORD": secret,
    }
    settings, _ = load_settings(None, environ)
    loaded = load_config(environ=environ, cwd=tmp_path)
    shown = [
        repr(settings),
        str(settings),
        repr(settings.kafka),
        str(settings.kafka),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(loaded),
    ]
    assert all(secret not in text for text in shown)
    assert "**********" in repr(settings.kafka)
    # A problem elsewhere in the section must not echo the password either.
    _, problems = load_settings(None, {**environ, "POLLER_KAFKA__FETCH_MAX_WAIT_MS": "soon"})
    assert problems
    assert all(secret not in f"{p!s} {p!r}" for p in problems)
