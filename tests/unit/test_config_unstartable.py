"""Sources Lambda reads and poller cannot read yet (Amazon MQ, DocumentDB, MSK by cluster ARN, a Kafka
schema registry) load as AWS accepts them and resolve to a mapping that never starts (issue 18 item 3;
spec §1.3, §1.4, §1.5, §1.6); Kafka filters name `value` only (spec §7.3, §7.6); Kafka's
MinimumPollers defaults to 1 (spec §1.3)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from poller.config import KafkaMapping, Location, Problem, ResolvedMapping, load_mappings
from poller.config.resolved import UnstartableMapping

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:broker"
MQ_ARN = "arn:aws:mq:us-east-1:123456789012:broker:orders:b-0b4c8e9a-1"
DOCDB_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:docs"
MSK_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/orders/0b4c8e9a-1"
MQ = f"""\
Name: orders
EventSourceArn: {MQ_ARN}
FunctionName: f
Queues: [orders]
SourceAccessConfigurations: [{{Type: BASIC_AUTH, URI: '{SECRET}'}}]
"""
DOCDB = f"""\
Name: orders
EventSourceArn: {DOCDB_ARN}
FunctionName: f
DocumentDBEventSourceConfig: {{DatabaseName: db, CollectionName: items, FullDocument: UpdateLookup}}
StartingPosition: LATEST
SourceAccessConfigurations: [{{Type: BASIC_AUTH, URI: '{SECRET}'}}]
"""
MSK = f"""\
Name: orders
EventSourceArn: {MSK_ARN}
FunctionName: f
Topics: [orders]
StartingPosition: TRIM_HORIZON
"""
KAFKA = """\
Name: orders
SelfManagedEventSource: {Endpoints: {KAFKA_BOOTSTRAP_SERVERS: ['b1:9092']}}
Topics: [orders]
FunctionName: f
"""
NO_POSITION = (
    "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
    "Member must not be null."
)


def load(tmp_path: Path, text: str) -> tuple[list[ResolvedMapping], list[Problem]]:
    file = tmp_path / "orders.yaml"
    file.write_text(dedent(text))
    return load_mappings([file], tmp_path)


def problems_of(tmp_path: Path, text: str) -> list[tuple[str | None, str]]:
    mappings, problems = load(tmp_path, text)
    assert mappings == []
    return [(p.field, p.message) for p in problems]


@pytest.mark.parametrize(
    ("text", "kind", "arn", "why"),
    [
        (MQ, "mq", MQ_ARN, "poller does not read Amazon MQ brokers yet"),
        (DOCDB, "documentdb", DOCDB_ARN, "poller does not read Amazon DocumentDB change streams yet"),
        (MSK, "msk", MSK_ARN, "poller cannot look up an Amazon MSK cluster's brokers from its ARN"),
    ],
)
def test_sources_poller_cannot_read_are_accepted_and_not_started(
    tmp_path: Path, text: str, kind: str, arn: str, why: str
) -> None:
    """spec §1.5: the reason carries Lambda's code for a consumer stopped on its configuration."""
    mappings, problems = load(tmp_path, text)
    [mapping] = mappings
    assert isinstance(mapping, UnstartableMapping)
    assert (mapping.name, mapping.source_kind, mapping.event_source_arn, mapping.location) == (
        "orders",
        kind,
        arn,
        Location(tmp_path / "orders.yaml", 1),
    )
    assert mapping.reason.startswith(f"ESM_CONFIG_NOT_VALID: {why[:1].upper()}{why[1:]}")
    [warning] = problems
    assert (warning.severity, warning.field, warning.line) == ("warning", "EventSourceArn", 2)
    assert warning.message.startswith(f"Accepted, but this mapping will not run: {why}")


def test_an_unstartable_mapping_keeps_enabled_and_its_function(tmp_path: Path) -> None:
    [mapping], _ = load(tmp_path, MQ + "Enabled: false\nFunctionTimeout: 30\n")
    assert isinstance(mapping, UnstartableMapping)
    assert (mapping.enabled, mapping.function_name, mapping.function_timeout_seconds) == (False, "f", 30)


def test_mq_needs_its_queue_and_a_basic_auth_secret(tmp_path: Path) -> None:
    """spec §1.4, §1.6: Queues (exactly one) and the broker's BASIC_AUTH secret."""
    text = f"Name: orders\nEventSourceArn: {MQ_ARN}\nFunctionName: f\n"
    assert problems_of(tmp_path, text) == [
        ("Queues", "Required 'Queues' parameter is missing."),
        ("SourceAccessConfigurations", "Required 'sourceAccessConfigurations' parameter is missing."),
    ]


def test_mq_queues_hold_exactly_one_queue(tmp_path: Path) -> None:
    """botocore's model: Queues has 1 item at most."""
    [(field, message)] = problems_of(tmp_path, MQ.replace("Queues: [orders]", "Queues: [a, b]"))
    assert (field, message) == (
        "Queues",
        "1 validation error detected: Value '[a, b]' at 'queues' failed to satisfy constraint: "
        "Member must have length less than or equal to 1",
    )


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("StartingPosition: LATEST\n", "StartingPosition"),
        ("ParallelizationFactor: 2\n", "ParallelizationFactor"),
        ("Topics: [orders]\n", "Topics"),
        (
            "DestinationConfig: {OnFailure: {Destination: 'arn:aws:sqs:us-east-1:123456789012:d'}}\n",
            "DestinationConfig",
        ),
        ("ScalingConfig: {MaximumConcurrency: 5}\n", "ScalingConfig"),
    ],
)
def test_keys_not_valid_for_mq(tmp_path: Path, extra: str, key: str) -> None:
    """spec §1.3: the stream, Kafka and SQS parameters are n/a for Amazon MQ."""
    assert problems_of(tmp_path, MQ + extra) == [(key, f"{key} is not valid for Amazon MQ event sources.")]


def test_documentdb_needs_its_database_a_position_and_a_secret(tmp_path: Path) -> None:
    text = f"Name: orders\nEventSourceArn: {DOCDB_ARN}\nFunctionName: f\n"
    assert problems_of(tmp_path, text) == [
        (
            "DocumentDBEventSourceConfig",
            "Required 'DocumentDBEventSourceConfig.DatabaseName' parameter is missing.",
        ),
        ("SourceAccessConfigurations", "Required 'sourceAccessConfigurations' parameter is missing."),
        ("StartingPosition", NO_POSITION),
    ]


def test_documentdb_collection_name_follows_the_model(tmp_path: Path) -> None:
    """botocore's model: a collection name does not start with `system.`."""
    [(field, message)] = problems_of(
        tmp_path, DOCDB.replace("CollectionName: items", "CollectionName: system.x")
    )
    assert field == "DocumentDBEventSourceConfig.CollectionName"
    assert message.startswith(
        "1 validation error detected: Value 'system.x' at 'documentDBEventSourceConfig.collectionName' "
        "failed to satisfy constraint: Member must satisfy regular expression pattern: "
    )


def test_documentdb_at_timestamp_needs_its_timestamp(tmp_path: Path) -> None:
    text = DOCDB.replace("StartingPosition: LATEST", "StartingPosition: AT_TIMESTAMP")
    assert problems_of(tmp_path, text) == [("StartingPositionTimestamp", "Need to specify a timestamp")]


def test_msk_needs_topics_and_a_starting_position(tmp_path: Path) -> None:
    text = f"Name: orders\nEventSourceArn: {MSK_ARN}\nFunctionName: f\n"
    assert problems_of(tmp_path, text) == [
        ("Topics", "Required 'Topics' parameter is missing."),
        ("StartingPosition", NO_POSITION),
    ]


def test_msk_takes_its_own_consumer_config_and_not_the_self_managed_one(tmp_path: Path) -> None:
    [mapping], _ = load(tmp_path, MSK + "AmazonManagedKafkaEventSourceConfig: {ConsumerGroupId: g}\n")
    assert isinstance(mapping, UnstartableMapping)
    assert problems_of(tmp_path, MSK + "SelfManagedKafkaEventSourceConfig: {ConsumerGroupId: g}\n") == [
        (
            "SelfManagedKafkaEventSourceConfig",
            "SelfManagedKafkaEventSourceConfig is not valid for Amazon MSK event sources.",
        )
    ]


def test_msk_keeps_its_on_failure_destination(tmp_path: Path) -> None:
    extra = "DestinationConfig: {OnFailure: {Destination: 'kafka://orders-failed'}}\n"
    [mapping], _ = load(tmp_path, MSK + extra)
    assert isinstance(mapping, UnstartableMapping)
    assert mapping.on_failure_destination == "kafka://orders-failed"


def test_msk_filters_name_value_only(tmp_path: Path) -> None:
    extra = "FilterCriteria: {Filters: [{Pattern: '{\"partition\": [0]}'}]}\n"
    assert problems_of(tmp_path, MSK + extra) == [
        ("FilterCriteria.Filters[0].Pattern", "Invalid filter pattern definition.")
    ]


def test_unknown_keys_stay_refused_for_unstartable_sources(tmp_path: Path) -> None:
    assert problems_of(tmp_path, MQ + "Queue: [orders]\n") == [("Queue", "Unknown key.")]


# --- Kafka filters: `value` only (spec §7.3, §7.6) ---------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        '{"value": {"kind": ["order"]}}',
        '{"value": [{"prefix": "AB"}]}',
        '{"$or": [{"value": {"a": ["1"]}}, {"value": {"b": ["2"]}}]}',
    ],
)
def test_kafka_filters_on_value_are_accepted(tmp_path: Path, pattern: str) -> None:
    [mapping], problems = load(tmp_path, KAFKA + f"FilterCriteria: {{Filters: [{{Pattern: '{pattern}'}}]}}\n")
    assert problems == []
    assert isinstance(mapping, KafkaMapping)
    assert mapping.filter_patterns == (pattern,)


@pytest.mark.parametrize(
    "pattern",
    [
        '{"key": ["k"]}',
        '{"partition": [0]}',
        '{"topic": ["orders"]}',
        '{"value": {"kind": ["order"]}, "offset": [{"numeric": [">", 5]}]}',
        '{"$or": [{"value": {"a": ["1"]}}, {"headers": [{"exists": true}]}]}',
    ],
)
def test_kafka_filters_on_anything_but_value_are_refused(tmp_path: Path, pattern: str) -> None:
    """AWS: "Amazon MSK and self-managed Apache Kafka event source mappings only support filtering on
    the value key"; refused with its one filter message."""
    text = KAFKA + f"FilterCriteria:\n  Filters:\n    - Pattern: '{pattern}'\n"
    assert problems_of(tmp_path, text) == [
        ("FilterCriteria.Filters[0].Pattern", "Invalid filter pattern definition.")
    ]


# --- ProvisionedPollerConfig defaults (spec §1.3) ----------------------------------------------------------


def test_kafka_minimum_pollers_defaults_to_one(tmp_path: Path) -> None:
    """Kafka's MinimumPollers default is 1, so a maximum of 1 alone is consistent."""
    mappings, problems = load(tmp_path, KAFKA + "ProvisionedPollerConfig: {MaximumPollers: 1}\n")
    assert [type(m) for m in mappings] == [KafkaMapping]
    assert [p.severity for p in problems] == ["warning"]  # provisioned mode has no effect in poller


def test_sqs_minimum_pollers_defaults_to_two(tmp_path: Path) -> None:
    text = (
        "Name: orders\nEventSourceArn: arn:aws:sqs:us-east-1:123456789012:orders\nFunctionName: f\n"
        "ProvisionedPollerConfig: {MaximumPollers: 5}\n"
    )
    [mapping], problems = load(tmp_path, text)
    assert problems == []
    assert (mapping.minimum_pollers, mapping.maximum_pollers) == (2, 5)  # type: ignore[union-attr]
    assert problems_of(
        tmp_path, text.replace("MaximumPollers: 5", "MaximumPollers: 2, MinimumPollers: 3")
    ) == [
        (
            "ProvisionedPollerConfig.MinimumPollers",
            "MinimumPollers (3) must not be greater than MaximumPollers (2).",
        )
    ]


def test_empty_values_of_keys_mq_refuses_mean_none(tmp_path: Path) -> None:
    """A template's `FunctionResponseTypes: []` or `DestinationConfig: {}` says "none", as AWS reads it."""
    [mapping], problems = load(tmp_path, MQ + "FunctionResponseTypes: []\nDestinationConfig: {}\n")
    assert isinstance(mapping, UnstartableMapping)
    assert [p.severity for p in problems] == ["warning"]
