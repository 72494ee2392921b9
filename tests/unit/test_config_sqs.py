"""SQS mapping rules: defaults, AWS ranges and AWS's own error messages (spec §1.3, §1.4, §1.6)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.config import Location, Problem, SqsMapping, load_mappings
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext
from poller.config.resolve import RawEntry, resolve_entry
from poller.config.yaml_lines import LineMap

ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
HEAD = f"""\
Name: orders
EventSourceArn: {ARN}
FunctionName: handle-orders
"""


def load(tmp_path: Path, extra: str = "", head: str = HEAD) -> tuple[list[SqsMapping], list[Problem]]:
    """Write one mapping file (HEAD on lines 1-3, `extra` from line 4) and load it."""
    file = tmp_path / "orders.yaml"
    file.write_text(head + dedent(extra))
    return load_mappings([file], tmp_path)


def only_problem(tmp_path: Path, extra: str = "", head: str = HEAD) -> str:
    mappings, problems = load(tmp_path, extra, head)
    assert mappings == []
    assert len(problems) == 1, problems
    return str(problems[0])


def test_defaults_follow_aws(tmp_path: Path) -> None:
    """spec §1.3: BatchSize 10, window 0; DESIGN §1.4: FunctionTimeout 3, Enabled true."""
    mappings, problems = load(tmp_path)
    assert problems == []
    assert mappings == [
        SqsMapping(
            name="orders",
            location=Location(tmp_path / "orders.yaml", 1),
            event_source_arn=ARN,
            region="us-east-1",
            account_id="123456789012",
            queue_name="orders",
            fifo=False,
            function_name="handle-orders",
            function_timeout_seconds=3,
            enabled=True,
            batch_size=10,
            maximum_batching_window_seconds=0,
            report_batch_item_failures=False,
            maximum_concurrency=None,
            minimum_pollers=None,
            maximum_pollers=None,
        )
    ]
    assert SqsMapping.source_kind == "sqs"


def test_every_setting_carries_through(tmp_path: Path) -> None:
    mappings, problems = load(
        tmp_path,
        """\
        FunctionTimeout: 60
        Enabled: false
        BatchSize: 500
        MaximumBatchingWindowInSeconds: 5
        FunctionResponseTypes: [ReportBatchItemFailures]
        ScalingConfig: {MaximumConcurrency: 50}
        """,
    )
    assert problems == []
    [mapping] = mappings
    assert (
        mapping.function_timeout_seconds,
        mapping.enabled,
        mapping.batch_size,
        mapping.maximum_batching_window_seconds,
        mapping.report_batch_item_failures,
        mapping.maximum_concurrency,
    ) == (60, False, 500, 5, True, 50)


def test_fifo_queue_is_recognised_from_its_name(tmp_path: Path) -> None:
    head = HEAD.replace(":orders\n", ":orders.fifo\n")
    [mapping], problems = load(tmp_path, head=head)
    assert problems == []
    assert (mapping.queue_name, mapping.fifo) == ("orders.fifo", True)


def test_provisioned_mode_defaults(tmp_path: Path) -> None:
    """spec §1.3: ProvisionedPollerConfig Min 2–200 (default 2), Max 2–2000 (default 200)."""
    [mapping], problems = load(tmp_path, "ProvisionedPollerConfig: {}\n")
    assert problems == []
    assert (mapping.minimum_pollers, mapping.maximum_pollers) == (2, 200)


def test_batch_size_above_standard_maximum(tmp_path: Path) -> None:
    """spec §1.3: standard queues allow BatchSize up to 10,000; AWS's constraint message."""
    text = only_problem(tmp_path, "BatchSize: 10001\nMaximumBatchingWindowInSeconds: 1\n")
    assert text == (
        f"{tmp_path / 'orders.yaml'}:4: Mapping 'orders': BatchSize: 1 validation error detected: "
        "Value '10001' at 'batchSize' failed to satisfy constraint: "
        "Member must have value less than or equal to 10000"
    )


def test_batch_size_below_minimum(tmp_path: Path) -> None:
    """spec §1.3: BatchSize min 1."""
    text = only_problem(tmp_path, "BatchSize: 0\n")
    assert text.endswith(
        "BatchSize: 1 validation error detected: Value '0' at 'batchSize' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1"
    )


def test_fifo_batch_size_maximum_is_ten(tmp_path: Path) -> None:
    """spec §1.3: FIFO queues allow BatchSize up to 10."""
    head = HEAD.replace(":orders\n", ":orders.fifo\n")
    text = only_problem(tmp_path, "BatchSize: 11\nMaximumBatchingWindowInSeconds: 1\n", head=head)
    assert text.endswith(
        "BatchSize: 1 validation error detected: Value '11' at 'batchSize' failed to satisfy "
        "constraint: Member must have value less than or equal to 10"
    )


@pytest.mark.parametrize("window", ["", "MaximumBatchingWindowInSeconds: 0\n"])
def test_batch_size_over_ten_needs_a_window(tmp_path: Path, window: str) -> None:
    """spec §1.6: SQS BatchSize > 10 with window 0 (or unset) is refused with AWS's message."""
    text = only_problem(tmp_path, "BatchSize: 11\n" + window)
    assert text == (
        f"{tmp_path / 'orders.yaml'}:4: Mapping 'orders': BatchSize: Maximum batch window in seconds "
        "must be greater than 0 if maximum batch size is greater than 10"
    )


NOT_FOR_SQS = [
    ("StartingPosition", "LATEST"),
    ("StartingPositionTimestamp", "1700000000"),
    ("ParallelizationFactor", "2"),
    ("BisectBatchOnFunctionError", "true"),
    ("MaximumRetryAttempts", "3"),
    ("MaximumRecordAgeInSeconds", "60"),
    ("TumblingWindowInSeconds", "30"),
    ("Topics", "[orders]"),
    ("SelfManagedEventSource", "{Endpoints: {KAFKA_BOOTSTRAP_SERVERS: ['b:9092']}}"),
    ("SelfManagedKafkaEventSourceConfig", "{ConsumerGroupId: g}"),
    ("AmazonManagedKafkaEventSourceConfig", "{ConsumerGroupId: g}"),
    ("SourceAccessConfigurations", "[{Type: BASIC_AUTH, URI: 'arn:aws:secretsmanager:x'}]"),
]


@pytest.mark.parametrize(("key", "value"), NOT_FOR_SQS)
def test_stream_and_kafka_keys_are_not_valid_for_sqs(tmp_path: Path, key: str, value: str) -> None:
    """spec §1.3: these parameters are n/a for SQS sources."""
    text = only_problem(tmp_path, f"{key}: {value}\n")
    assert (
        text
        == f"{tmp_path / 'orders.yaml'}:4: Mapping 'orders': {key}: {key} is not valid for SQS event sources."
    )


def test_on_failure_destination_is_refused_for_sqs(tmp_path: Path) -> None:
    """spec §1.3/§6.1: an SQS source has no on-failure destination; its DLQ is the redrive policy."""
    text = only_problem(
        tmp_path,
        """\
        DestinationConfig:
          OnFailure:
            Destination: arn:aws:sqs:us-east-1:123456789012:dlq
        """,
    )
    assert text == (
        f"{tmp_path / 'orders.yaml'}:5: Mapping 'orders': DestinationConfig.OnFailure: "
        "Unsupported DestinationConfig parameter for given event source mapping type."
    )


def test_empty_destination_means_none(tmp_path: Path) -> None:
    """spec §1.4: `Destination: ""` is how AWS removes a destination, so it is accepted."""
    mappings, problems = load(tmp_path, "DestinationConfig: {OnFailure: {Destination: ''}}\n")
    assert (len(mappings), problems) == (1, [])


def test_on_success_destination_is_refused(tmp_path: Path) -> None:
    """spec §1.6: OnSuccess is rejected for event source mappings."""
    text = only_problem(
        tmp_path, "DestinationConfig:\n  OnSuccess: {Destination: 'arn:aws:sns:us-east-1:123456789012:t'}\n"
    )
    assert text.endswith(
        ":5: Mapping 'orders': DestinationConfig.OnSuccess: "
        "Unsupported DestinationConfig parameter for given event source mapping type."
    )


def test_scaling_and_provisioned_pollers_are_exclusive(tmp_path: Path) -> None:
    """spec §1.4: ScalingConfig.MaximumConcurrency is mutually exclusive with provisioned mode."""
    text = only_problem(tmp_path, "ScalingConfig: {MaximumConcurrency: 5}\nProvisionedPollerConfig: {}\n")
    assert text.endswith(
        ":4: Mapping 'orders': ScalingConfig: ScalingConfig and ProvisionedPollerConfig cannot be specified together."
    )


def test_empty_scaling_config_does_not_conflict(tmp_path: Path) -> None:
    """spec §1.4: `ScalingConfig: {}` removes the setting."""
    [mapping], problems = load(tmp_path, "ScalingConfig: {}\nProvisionedPollerConfig: {MinimumPollers: 3}\n")
    assert problems == []
    assert (mapping.maximum_concurrency, mapping.minimum_pollers) == (None, 3)


def test_minimum_pollers_above_maximum(tmp_path: Path) -> None:
    text = only_problem(
        tmp_path,
        """\
        ProvisionedPollerConfig:
          MinimumPollers: 10
          MaximumPollers: 5
        """,
    )
    assert text.endswith(
        ":5: Mapping 'orders': ProvisionedPollerConfig.MinimumPollers: "
        "MinimumPollers (10) must not be greater than MaximumPollers (5)."
    )


def test_valid_filters_are_kept_in_order(tmp_path: Path) -> None:
    """spec §7.1: FilterCriteria.Filters[*].Pattern are JSON strings; several are OR-ed."""
    [mapping], problems = load(
        tmp_path,
        """FilterCriteria: {Filters: [{Pattern: '{"body": {"a": [1]}}'}, {Pattern: '{"body": {"b": [2]}}'}]}\n""",
    )
    assert problems == []
    assert mapping.filter_patterns == ('{"body": {"a": [1]}}', '{"body": {"b": [2]}}')


@pytest.mark.parametrize("pattern", ["'not json'", "'null'", "'{\"body\": 1}'", "'{\"body\": []}'"])
def test_invalid_filter_pattern_is_refused_with_aws_message(tmp_path: Path, pattern: str) -> None:
    """spec §1.6, §7.6: AWS's `Invalid filter pattern definition.`, on the pattern's own line."""
    text = only_problem(tmp_path, f"FilterCriteria:\n  Filters:\n    - Pattern: {pattern}\n")
    assert text.endswith(
        ":6: Mapping 'orders': FilterCriteria.Filters[0].Pattern: Invalid filter pattern definition."
    )


@pytest.mark.parametrize("criteria", ["{}", "{Filters: []}"])
def test_empty_filter_criteria_are_fine(tmp_path: Path, criteria: str) -> None:
    """spec §1.4: `{}` / `{"Filters": []}` is how AWS removes filters."""
    mappings, problems = load(tmp_path, f"FilterCriteria: {criteria}\n")
    assert (len(mappings), problems) == (1, [])


def test_function_timeout_at_most_900(tmp_path: Path) -> None:
    """DESIGN §1.4: FunctionTimeout max 900, as a Lambda function's timeout."""
    text = only_problem(tmp_path, "FunctionTimeout: 901\n")
    assert text.endswith(":4: Mapping 'orders': FunctionTimeout: Input should be less than or equal to 900")
    [mapping], problems = load(tmp_path, "FunctionTimeout: 900\n")
    assert (mapping.function_timeout_seconds, problems) == (900, [])


def test_record_age_between_0_and_59_is_refused(tmp_path: Path) -> None:
    """spec §1.4: MaximumRecordAgeInSeconds 0–59 is rejected though the API range is -1…604800."""
    text = only_problem(tmp_path, "MaximumRecordAgeInSeconds: 59\n")
    assert text.endswith(
        ":4: Mapping 'orders': MaximumRecordAgeInSeconds: Input should be -1 or between 60 and 604800"
    )


def test_invalid_starting_position_gets_aws_enum_message(tmp_path: Path) -> None:
    """spec §1.6: AWS's ValidationException text for an unknown StartingPosition."""
    text = only_problem(tmp_path, "StartingPosition: invalid\n")
    assert text.endswith(
        "StartingPosition: 1 validation error detected: Value 'invalid' at 'startingPosition' failed to "
        "satisfy constraint: Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sqs:us-east-1:123456789012:",  # no queue name
        "arn:aws:sqs:us-east-1:123456789012:bad/name",
        "arn:aws:sqs:us-east-1:123456789012:" + "q" * 81,
    ],
)
def test_malformed_queue_arn(tmp_path: Path, arn: str) -> None:
    text = only_problem(tmp_path, head=HEAD.replace(ARN, f"'{arn}'"))
    assert text == (
        f"{tmp_path / 'orders.yaml'}:2: Mapping 'orders': EventSourceArn: Invalid EventSourceArn: {arn} "
        "(expected arn:aws:sqs:<region>:<12-digit account id>:<queue name>)"
    )


@pytest.mark.parametrize(
    ("arn", "region"),
    [
        ("arn:aws-cn:sqs:cn-north-1:123456789012:q", "cn-north-1"),
        ("arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q", "us-gov-west-1"),
    ],
)
def test_other_partitions_are_accepted(tmp_path: Path, arn: str, region: str) -> None:
    [mapping], problems = load(tmp_path, head=HEAD.replace(ARN, arn))
    assert (mapping.region, mapping.queue_name, problems) == (region, "q", [])


def test_duplicate_queue_and_function(tmp_path: Path) -> None:
    """spec §1.6: one mapping per queue and function; AWS's ResourceConflictException text."""
    (tmp_path / "a.yaml").write_text(HEAD)
    (tmp_path / "b.yaml").write_text(HEAD.replace("Name: orders", "Name: orders-again"))
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert [m.name for m in mappings] == ["orders"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'b.yaml'}:2: Mapping 'orders-again': EventSourceArn: An event source mapping with "
        f'SQS arn (" {ARN} ") and function (" handle-orders ") already exists. Please update or '
        "delete the existing mapping with UUID orders"
    ]


def test_same_queue_different_functions_is_fine(tmp_path: Path) -> None:
    """spec §1.6: duplicates are allowed across different functions."""
    (tmp_path / "a.yaml").write_text(HEAD)
    (tmp_path / "b.yaml").write_text(HEAD.replace("orders\n", "audit\n").replace("handle-orders", "audit"))
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert ([m.name for m in mappings], problems) == (["orders", "audit"], [])


def _resolve(fields: dict[str, object]) -> SqsMapping | list[Problem]:
    raw = RawMapping.model_validate({"Name": "m", "EventSourceArn": ARN, "FunctionName": "f", **fields})
    return resolve_entry(RawEntry(raw, MappingContext("m", None, LineMap({}))))


@given(
    batch_size=st.integers(min_value=-3, max_value=10_010),
    window=st.none() | st.integers(min_value=0, max_value=300),
    fifo=st.booleans(),
)
def test_batch_size_rules_as_a_property(batch_size: int, window: int | None, fifo: bool) -> None:
    """spec §1.3/§1.6: valid iff 1 ≤ BatchSize ≤ (10 FIFO | 10,000) and (BatchSize ≤ 10 or window > 0)."""
    arn = ARN + ".fifo" if fifo else ARN
    fields: dict[str, object] = {"EventSourceArn": arn, "BatchSize": batch_size}
    if window is not None:
        fields["MaximumBatchingWindowInSeconds"] = window
    result = _resolve(fields)
    limit = 10 if fifo else 10_000
    valid = 1 <= batch_size <= limit and (batch_size <= 10 or (window or 0) > 0)
    assert isinstance(result, SqsMapping) == valid
    if isinstance(result, SqsMapping):
        assert (result.batch_size, result.maximum_batching_window_seconds) == (batch_size, window or 0)
    else:
        assert len(result) == 1
        assert result[0].field == "BatchSize"
