"""spec §1.6 through the Lambda API: each rule the config resolver knows comes back with AWS's
exception type and message, as boto3 raises it (DESIGN §1.9: one validator for files and API)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import REGION, StartPoller
from tests.integration.test_lambda_api import lambda_client

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:validation-queue"
KINESIS = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/validation"
DYNAMODB = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/validation/stream/2026-01-01T00:00:00.000"
FUNCTION = "python:api_handler.handle"

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("no source", {}, "InvalidParameterValueException", "Unrecognized event source."),
    (
        "OnSuccess destination",
        {"EventSourceArn": QUEUE, "DestinationConfig": {"OnSuccess": {"Destination": QUEUE}}},
        "InvalidParameterValueException",
        "Unsupported DestinationConfig parameter for given event source mapping type.",
    ),
    (
        "stream without StartingPosition",
        {"EventSourceArn": KINESIS},
        "InvalidParameterValueException",
        "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
        "Member must not be null.",
    ),
    (
        "StartingPosition not in the enum",
        {"EventSourceArn": KINESIS, "StartingPosition": "invalid"},
        "ValidationException",
        "1 validation error detected: Value 'invalid' at 'startingPosition' failed to satisfy constraint: "
        "Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]",
    ),
    (
        "DynamoDB stream AT_TIMESTAMP",
        {
            "EventSourceArn": DYNAMODB,
            "StartingPosition": "AT_TIMESTAMP",
            "StartingPositionTimestamp": 1700000000,
        },
        "InvalidParameterValueException",
        f"Unsupported starting position for arn type: {DYNAMODB}",
    ),
    (
        "AT_TIMESTAMP without a timestamp",
        {"EventSourceArn": KINESIS, "StartingPosition": "AT_TIMESTAMP"},
        "InvalidParameterValueException",
        "Need to specify a timestamp",
    ),
    (
        "SQS BatchSize over 10 without a window",
        {"EventSourceArn": QUEUE, "BatchSize": 11},
        "InvalidParameterValueException",
        "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10",
    ),
    (
        "filter pattern not JSON",
        {"EventSourceArn": QUEUE, "FilterCriteria": {"Filters": [{"Pattern": "{not json"}]}},
        "InvalidParameterValueException",
        "Invalid filter pattern definition.",
    ),
    (
        "filter pattern with a scalar",
        {"EventSourceArn": QUEUE, "FilterCriteria": {"Filters": [{"Pattern": '{"body": 1}'}]}},
        "InvalidParameterValueException",
        "Invalid filter pattern definition.",
    ),
]


async def test_every_rule_answers_as_aws(start_poller: StartPoller) -> None:
    poller = await start_poller([])
    client = lambda_client(poller)
    outcomes = {}
    for name, request, _, _ in CASES:
        try:
            client.create_event_source_mapping(FunctionName=FUNCTION, **request)
        except client.exceptions.ClientError as exc:
            error = exc.response["Error"]
            outcomes[name] = (error["Code"], error["Message"])
        else:
            outcomes[name] = ("created", "")
    assert outcomes == {name: (code, message) for name, _, code, message in CASES}
    assert client.list_event_source_mappings()["EventSourceMappings"] == []


async def test_duplicates_name_the_existing_uuid(start_poller: StartPoller, make_stream: Any) -> None:
    """spec §1.6: a second mapping of one source and function is a ResourceConflictException naming
    the first one's UUID; another function may read the same source."""
    poller = await start_poller([])
    client = lambda_client(poller)
    stream = make_stream().arn
    first = client.create_event_source_mapping(
        EventSourceArn=stream, FunctionName=FUNCTION, StartingPosition="LATEST", Enabled=False
    )["UUID"]
    with pytest.raises(client.exceptions.ResourceConflictException) as caught:
        client.create_event_source_mapping(
            EventSourceArn=stream, FunctionName=FUNCTION, StartingPosition="LATEST"
        )
    assert caught.value.response["Error"]["Message"] == (
        f'The event source arn (" {stream} ") and function (" {FUNCTION} ") provided mapping already exists. '
        f"Please update or delete the existing mapping with UUID {first}"
    )
    other = client.create_event_source_mapping(
        EventSourceArn=stream, FunctionName="python:other.handle", StartingPosition="LATEST", Enabled=False
    )
    assert other["State"] == "Disabled"


async def test_the_source_is_checked_as_aws_checks_it(
    start_poller: StartPoller, make_queue: Any, make_stream: Any, sqs: Any
) -> None:
    """spec §1.6: a missing queue or stream, and a queue whose visibility timeout is shorter than the
    function's timeout (3 s by default), are refused on create; the timeout again on update."""
    poller = await start_poller([])
    client = lambda_client(poller)
    invalid = client.exceptions.InvalidParameterValueException
    missing_stream = make_stream().arn.replace(":stream/", ":stream/missing-")
    expected = {
        QUEUE: (
            "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. "
            "SQS Error Message: The specified queue does not exist."
        ),
        missing_stream: f"Stream not found: {missing_stream}",
        make_queue(
            visibility=2
        ).arn: "Queue visibility timeout: 2 seconds is less than Function timeout: 3 seconds",
    }
    for arn, message in expected.items():
        position = {"StartingPosition": "LATEST"} if ":kinesis:" in arn else {}
        with pytest.raises(invalid) as caught:
            client.create_event_source_mapping(EventSourceArn=arn, FunctionName=FUNCTION, **position)
        assert caught.value.response["Error"]["Message"] == message
    assert client.list_event_source_mappings()["EventSourceMappings"] == []

    queue = make_queue(visibility=5)
    uuid = client.create_event_source_mapping(EventSourceArn=queue.arn, FunctionName=FUNCTION)["UUID"]
    sqs.set_queue_attributes(QueueUrl=queue.url, Attributes={"VisibilityTimeout": "2"})
    with pytest.raises(invalid) as caught:
        client.update_event_source_mapping(UUID=uuid, BatchSize=5)
    assert caught.value.response["Error"]["Message"] == (
        "Queue visibility timeout: 2 seconds is less than Function timeout: 3 seconds"
    )
    assert client.get_event_source_mapping(UUID=uuid)["BatchSize"] == 10


async def test_unknown_uuids_and_unstartable_sources_through_boto3(start_poller: StartPoller) -> None:
    """spec §1.6: an unknown UUID is ResourceNotFoundException on update and delete, with the model's
    `Message` filled; spec §1.5: an Amazon MQ mapping (never polled) is Disabled with the reason from
    its create reply on."""
    poller = await start_poller([])
    client = lambda_client(poller)
    unknown = "5d9a3e0e-1b2c-4d5e-8f90-123456789abc"
    for call in (
        lambda: client.update_event_source_mapping(UUID=unknown, BatchSize=5),
        lambda: client.delete_event_source_mapping(UUID=unknown),
    ):
        with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
            call()
        response = caught.value.response
        assert (response["Message"], response["Type"]) == (
            "The resource you requested does not exist.",
            "User",
        )
    created = client.create_event_source_mapping(
        EventSourceArn=f"arn:aws:mq:{REGION}:{ACCOUNT}:broker:orders:b-0b4c8e9a-1",
        FunctionName=FUNCTION,
        Queues=["orders"],
        SourceAccessConfigurations=[
            {"Type": "BASIC_AUTH", "URI": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:mq"}
        ],
    )
    got = client.get_event_source_mapping(UUID=created["UUID"])
    for reply in (created, got):
        assert reply["State"] == "Disabled"
        assert reply["StateTransitionReason"].startswith("ESM_CONFIG_NOT_VALID: Poller ")
        assert "does not read Amazon MQ brokers yet" in reply["StateTransitionReason"]


async def test_replies_fill_each_source_defaults_as_aws(start_poller: StartPoller, make_stream: Any) -> None:
    """spec §1.2: what Create echoes for a Kinesis stream and for self-managed Kafka."""
    poller = await start_poller([])
    client = lambda_client(poller)
    stream = make_stream().arn
    kinesis = client.create_event_source_mapping(
        EventSourceArn=stream, FunctionName=FUNCTION, StartingPosition="LATEST"
    )
    expected = {
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 0,
        "ParallelizationFactor": 1,
        "BisectBatchOnFunctionError": False,
        "MaximumRetryAttempts": -1,
        "MaximumRecordAgeInSeconds": -1,
        "DestinationConfig": {"OnFailure": {}},
        "TumblingWindowInSeconds": 0,
        "FunctionResponseTypes": [],
        "StartingPosition": "LATEST",
        "StateTransitionReason": "User action",
        "LastProcessingResult": "No records processed",
    }
    assert {key: kinesis.get(key) for key in expected} == expected
    kafka = client.create_event_source_mapping(
        FunctionName=FUNCTION,
        Topics=["orders"],
        SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["127.0.0.1:1"]}},
        SourceAccessConfigurations=[
            {"Type": "BASIC_AUTH", "URI": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:k"}
        ],
        Enabled=False,
        Tags={"Name": "kafka-api"},
    )
    assert (kafka["State"], kafka["BatchSize"], kafka["StartingPosition"], kafka["Topics"]) == (
        "Disabled",
        100,
        "TRIM_HORIZON",
        ["orders"],
    )
    assert kafka["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": kafka["UUID"]}
    assert kafka["SelfManagedEventSource"] == {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["127.0.0.1:1"]}}
    assert "EventSourceArn" not in kafka
