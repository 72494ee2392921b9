"""A template's queues, streams and tables made to exist at moto through aiobotocore (DESIGN §1.10;
issue 16 §2): what the requests built from CloudFormation properties really create, the attributes
read back, existing sources looked up and left alone, and — on the same server, with creating
turned off as it is against real AWS — every missing source reported by logical id and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from poller.api.template_resources import SourceClients, ensure_sources, ensure_with
from poller.api.template_sources import SourceResource
from tests.integration.conftest import REGION

pytestmark = pytest.mark.integration

TEMPLATE = Path("/srv/app/template.yaml")


def sources(prefix: str) -> list[SourceResource]:
    return [
        SourceResource(
            "Jobs",
            "AWS::SQS::Queue",
            f"{prefix}-Jobs.fifo",  # the reader's made-up name for a FIFO queue without QueueName
            {
                "FifoQueue": True,
                "ContentBasedDeduplication": True,
                "VisibilityTimeout": 45,
                "RedrivePolicy": {
                    "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:000000000000:{prefix}-dead.fifo",
                    "maxReceiveCount": "4",
                },
                "KmsMasterKeyId": "alias/aws/sqs",
                "Tags": [{"Key": "team", "Value": "jobs"}],
            },
            line=5,
        ),
        SourceResource(
            "Dead",
            "AWS::SQS::Queue",
            f"{prefix}-dead.fifo",
            {"QueueName": f"{prefix}-dead.fifo", "FifoQueue": "true"},
            20,
        ),
        SourceResource(
            "Clicks",
            "AWS::Kinesis::Stream",
            f"{prefix}-clicks",
            {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}},
            30,
        ),
        SourceResource(
            "Users",
            "AWS::DynamoDB::Table",
            f"{prefix}-users",
            {
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [
                    {"AttributeName": "id", "AttributeType": "S"},
                    {"AttributeName": "email", "AttributeType": "S"},
                ],
                "ProvisionedThroughput": {"ReadCapacityUnits": "2", "WriteCapacityUnits": 2},
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "by-email",
                        "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                        "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                    }
                ],
                "StreamSpecification": {"StreamViewType": "KEYS_ONLY"},
            },
            40,
        ),
    ]


async def test_sources_are_created_as_the_template_says_and_found_again_unchanged(
    moto_endpoint: str, aws: dict[str, Any]
) -> None:
    wanted = sources("made")
    attributes, problems = await ensure_sources(
        wanted, session=get_session(), region=REGION, endpoint_url=moto_endpoint, template=TEMPLATE
    )
    assert problems == []
    sqs, kinesis, dynamodb = aws["sqs"], aws["kinesis"], aws["dynamodb"]

    jobs = sqs.get_queue_attributes(QueueUrl=attributes["Jobs"]["QueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert jobs["FifoQueue"] == "true"
    assert jobs["ContentBasedDeduplication"] == "true"
    assert jobs["VisibilityTimeout"] == "45"
    assert "KmsMasterKeyId" not in jobs
    assert json.loads(jobs["RedrivePolicy"]) == {
        "deadLetterTargetArn": attributes["Dead"]["Arn"],
        "maxReceiveCount": 4,  # SQS reads the template's "4" as the number it is
    }
    assert (
        attributes["Dead"]["Arn"] == f"arn:aws:sqs:{REGION}:123456789012:made-dead.fifo"
    )  # moto's account, not the guess
    assert sqs.list_queue_tags(QueueUrl=attributes["Jobs"]["QueueUrl"])["Tags"] == {"team": "jobs"}
    assert attributes["Jobs"]["Ref"] == attributes["Jobs"]["QueueUrl"]
    assert attributes["Jobs"]["QueueName"] == "made-Jobs.fifo"

    summary = kinesis.describe_stream_summary(StreamName="made-clicks")["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert attributes["Clicks"] == {"Ref": "made-clicks", "Arn": summary["StreamARN"]}

    table = dynamodb.describe_table(TableName="made-users")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["by-email"]
    assert attributes["Users"] == {
        "Ref": "made-users",
        "Arn": table["TableArn"],
        "StreamArn": table["LatestStreamArn"],
    }

    # A second run finds them all and changes nothing, even where the template now says otherwise.
    changed = [
        s
        if s.logical_id != "Jobs"
        else SourceResource(
            s.logical_id, s.type, s.physical_name, {**s.properties, "VisibilityTimeout": 5}, s.line
        )
        for s in wanted
    ]
    again, problems = await ensure_sources(
        changed, session=get_session(), region=REGION, endpoint_url=moto_endpoint
    )
    assert problems == []
    assert again == attributes
    kept = sqs.get_queue_attributes(
        QueueUrl=attributes["Jobs"]["QueueUrl"], AttributeNames=["VisibilityTimeout"]
    )
    assert kept["Attributes"]["VisibilityTimeout"] == "45"


async def test_without_creating_the_missing_sources_are_reported_and_the_existing_ones_used(
    moto_endpoint: str, aws: dict[str, Any]
) -> None:
    """As against real AWS: the same lookups, nothing created."""
    aws["sqs"].create_queue(QueueName="looked-dead.fifo", Attributes={"FifoQueue": "true"})
    session = get_session()
    async with (
        session.create_client("sqs", region_name=REGION, endpoint_url=moto_endpoint) as sqs,
        session.create_client("kinesis", region_name=REGION, endpoint_url=moto_endpoint) as kinesis,
        session.create_client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint) as dynamodb,
    ):
        attributes, problems = await ensure_with(
            SourceClients(sqs, kinesis, dynamodb),
            sources("looked"),
            create=False,
            template=TEMPLATE,
            where="AWS us-east-1",
        )
    assert set(attributes) == {"Dead"}
    assert [(p.field, p.line, p.severity) for p in problems] == [
        ("Jobs", 5, "error"),
        ("Clicks", 30, "error"),
        ("Users", 40, "error"),
    ]
    assert str(problems[1]).startswith(
        "/srv/app/template.yaml:30: Clicks: The stream 'looked-clicks' (AWS::Kinesis::Stream) does not exist in AWS us-east-1."
    )
    assert "looked-clicks" not in aws["kinesis"].list_streams()["StreamNames"]
    assert "looked-users" not in aws["dynamodb"].list_tables()["TableNames"]
