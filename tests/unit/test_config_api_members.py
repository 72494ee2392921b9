"""Lambda's own words and order for model violations, and every member of
`CreateEventSourceMappingRequest` resolving on a source that takes it, as a user would write it
(issue 18 item 3; DESIGN §1.4, §1.9; spec §1.3, §1.6). The generated bound cases are in
test_config_api_parity.py."""

from __future__ import annotations

from typing import Any

import pytest

from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext
from poller.config.resolve import RawEntry, resolve_mapping
from poller.config.resolved import UnstartableMapping
from poller.config.yaml_lines import LineMap
from tests.unit.test_config_api_parity import REQUEST, SECRET, document, problems_of


def test_a_model_violation_uses_lambdas_message() -> None:
    """spec §1.6: AWS's model-validation wording, with the member path in lowerCamelCase."""
    doc = document("kafka", SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": "u" * 201}])
    [problem] = problems_of(doc)
    assert (problem.field, problem.message) == (
        "SourceAccessConfigurations[0].URI",
        f"1 validation error detected: Value '{'u' * 201}' at 'sourceAccessConfigurations.1.member.uRI' "
        "failed to satisfy constraint: Member must have length less than or equal to 200",
    )


def test_two_violations_of_one_value_are_one_message() -> None:
    doc = document("sqs", KMSKeyArn="k" * 10_001)
    [problem] = problems_of(doc)
    assert problem.message.startswith("2 validation errors detected: Value '")
    assert "Member must have length less than or equal to 10000; Value '" in problem.message


def test_the_model_is_checked_before_the_sources_rules() -> None:
    """As Lambda: a request that breaks the model is refused with that alone (no SQS window rule)."""
    doc = document("sqs", BatchSize=20, MetricsConfig={"Metrics": ["EventCount"] * 4})
    assert [p.field for p in problems_of(doc)] == ["MetricsConfig.Metrics"]


@pytest.mark.parametrize(
    "name",
    ["python:handlers.orders.handle", "http://localhost:9000/fn", "https://fn.example.com/" + "p" * 300],
)
def test_poller_function_forms_are_not_judged_as_lambda_names(name: str) -> None:
    """DESIGN §1.5: `python:` and URL targets are poller's own FunctionName forms."""
    assert problems_of(document("sqs", FunctionName=name)) == []


def test_a_short_account_id_breaks_the_arn_pattern() -> None:
    [problem] = problems_of(document("sqs", EventSourceArn="arn:aws:sqs:us-east-1:12345678901:orders"))
    assert problem.field == "EventSourceArn"
    assert "at 'eventSourceArn' failed to satisfy constraint: Member must satisfy regular expression" in (
        problem.message
    )


# Each member on a source that takes it, as a user would write it: it resolves with no error (it is
# honoured, or accepted as AWS accepts it and documented as having no effect in poller).
RESOLVING: dict[str, tuple[str, dict[str, Any]]] = {
    "EventSourceArn": ("sqs", {}),
    "FunctionName": ("sqs", {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f:live"}),
    "Enabled": ("sqs", {"Enabled": False}),
    "BatchSize": ("sqs", {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 1}),
    "FilterCriteria": ("sqs", {"FilterCriteria": {"Filters": [{"Pattern": '{"body": {"a": ["b"]}}'}]}}),
    "KMSKeyArn": ("sqs", {"KMSKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k"}),
    "MetricsConfig": ("sqs", {"MetricsConfig": {"Metrics": ["EventCount", "ErrorCount"]}}),
    "LoggingConfig": ("kafka", {"LoggingConfig": {"SystemLogLevel": "WARN"}}),
    "ScalingConfig": ("sqs", {"ScalingConfig": {"MaximumConcurrency": 5}}),
    "MaximumBatchingWindowInSeconds": ("sqs", {"MaximumBatchingWindowInSeconds": 300}),
    "ParallelizationFactor": ("kinesis", {"ParallelizationFactor": 10}),
    "StartingPosition": ("kinesis", {"StartingPosition": "TRIM_HORIZON"}),
    "StartingPositionTimestamp": (
        "kinesis",
        {"StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 1_700_000_000},
    ),
    "DestinationConfig": (
        "kinesis",
        {"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:dlq"}}},
    ),
    "MaximumRecordAgeInSeconds": ("kinesis", {"MaximumRecordAgeInSeconds": 60}),
    "BisectBatchOnFunctionError": ("kinesis", {"BisectBatchOnFunctionError": True}),
    "MaximumRetryAttempts": ("kinesis", {"MaximumRetryAttempts": 3}),
    "Tags": ("sqs", {"Tags": {"team": "web", "Name": "orders"}}),
    "TumblingWindowInSeconds": ("kinesis", {"TumblingWindowInSeconds": 0}),
    "Topics": ("kafka", {}),
    "Queues": ("mq", {}),
    "SourceAccessConfigurations": (
        "kafka",
        {
            "SourceAccessConfigurations": [
                {"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET},
                {"Type": "VPC_SUBNET", "URI": "subnet:subnet-0123"},
                {"Type": "VPC_SECURITY_GROUP", "URI": "security_group:sg-0123"},
            ]
        },
    ),
    "SelfManagedEventSource": ("kafka", {}),
    "FunctionResponseTypes": ("sqs", {"FunctionResponseTypes": ["ReportBatchItemFailures"]}),
    "AmazonManagedKafkaEventSourceConfig": (
        "msk",
        {"AmazonManagedKafkaEventSourceConfig": {"ConsumerGroupId": "g"}},
    ),
    "SelfManagedKafkaEventSourceConfig": (
        "kafka",
        {"SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "g"}},
    ),
    "DocumentDBEventSourceConfig": (
        "documentdb",
        {
            "DocumentDBEventSourceConfig": {
                "DatabaseName": "db",
                "CollectionName": "items",
                "FullDocument": "UpdateLookup",
            }
        },
    ),
    "ProvisionedPollerConfig": (
        "kafka",
        {"ProvisionedPollerConfig": {"MinimumPollers": 1, "MaximumPollers": 10, "PollerGroupName": "g1"}},
    ),
}


def test_every_member_has_a_resolving_example() -> None:
    assert sorted(RESOLVING) == sorted(REQUEST.members)


@pytest.mark.parametrize("member", sorted(RESOLVING))
def test_every_member_resolves_on_a_source_that_takes_it(member: str) -> None:
    kind, members = RESOLVING[member]
    ctx = MappingContext("m", None, LineMap({}))
    resolved, problems = resolve_mapping(RawEntry(RawMapping.model_validate(document(kind, **members)), ctx))
    assert [p for p in problems if p.severity == "error"] == []
    assert resolved is not None
    assert isinstance(resolved, UnstartableMapping) == (kind in ("mq", "documentdb", "msk"))
