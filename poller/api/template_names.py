"""Names and attributes of a template's resources as poller knows them without asking AWS.

A resource with no name property gets `<stack name>-<LogicalId>` (CloudFormation adds a random
suffix too; poller leaves it out so a template keeps reading the same queue from run to run). The
offline attributes are those CloudFormation would return, computed from the region, account and
name; only a DynamoDB table's `StreamArn` cannot be known (its label is the stream's creation time),
so it gets `PLACEHOLDER_STREAM_LABEL` until running the template looks up the real one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from poller.api.template_intrinsics import partition_of
from poller.api.template_sources import SourceResource

PLACEHOLDER_STREAM_LABEL = "1970-01-01T00:00:00.000"
"""The stream label of a DynamoDB table's offline `StreamArn` (a real label is a creation time)."""

NAME_PROPERTY = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::S3::Bucket": "BucketName",
}
_MAX_LENGTH = {"AWS::SQS::Queue": 80, "AWS::Kinesis::Stream": 128, "AWS::DynamoDB::Table": 255}


def generated_name(
    stack_name: str, logical_id: str, resource_type: str, properties: Mapping[str, Any]
) -> str:
    """The name of a resource whose template gives none."""
    fifo = resource_type == "AWS::SQS::Queue" and str(properties.get("FifoQueue")).lower() == "true"
    suffix = ".fifo" if fifo else ""
    limit = _MAX_LENGTH.get(resource_type, 64) - len(suffix)
    name = f"{stack_name}-{logical_id}"[:limit]
    if resource_type == "AWS::S3::Bucket":
        name = name.lower()
    return name + suffix


def default_stack_name(template_dir_name: str) -> str:
    """The directory holding the template (the project's, for a `sam build` output), as a stack name."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", template_dir_name).strip("-")
    if not name or not name[0].isalpha():
        name = f"poller-{name}".rstrip("-")
    return name[:128]


def source_attributes(source: SourceResource, region: str, account_id: str) -> dict[str, str]:
    """`Ref` and `Fn::GetAtt` values of a queue, stream or table, as CloudFormation returns them."""
    name, partition = source.physical_name, partition_of(region)
    if source.type == "AWS::SQS::Queue":
        url = f"https://sqs.{region}.amazonaws.com/{account_id}/{name}"
        arn = f"arn:{partition}:sqs:{region}:{account_id}:{name}"
        return {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": name}
    if source.type == "AWS::Kinesis::Stream":
        return {"Ref": name, "Arn": f"arn:{partition}:kinesis:{region}:{account_id}:stream/{name}"}
    arn = f"arn:{partition}:dynamodb:{region}:{account_id}:table/{name}"
    attributes = {"Ref": name, "Arn": arn}
    if source.properties.get("StreamSpecification"):
        attributes["StreamArn"] = f"{arn}/stream/{PLACEHOLDER_STREAM_LABEL}"
    return attributes


def function_attributes(name: str, region: str, account_id: str) -> dict[str, str]:
    arn = f"arn:{partition_of(region)}:lambda:{region}:{account_id}:function:{name}"
    return {"Ref": name, "Arn": arn}


def other_attributes(resource_type: str, name: str, region: str, account_id: str) -> dict[str, str]:
    """SNS topics and S3 buckets, which on-failure destinations name (poller does not create them)."""
    partition = partition_of(region)
    if resource_type == "AWS::SNS::Topic":
        arn = f"arn:{partition}:sns:{region}:{account_id}:{name}"
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}
    if resource_type == "AWS::S3::Bucket":
        return {"Ref": name, "Arn": f"arn:{partition}:s3:::{name}"}
    return {}
