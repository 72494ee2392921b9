"""The queues, streams and tables a template creates, as the template says them (DESIGN §1.10).

Reading a template (`poller.api.template_*`) finds them with their properties resolved; running a
template makes sure they exist at `aws.endpoint_url` and learns the attributes only the service knows
(a queue's URL, a table's stream ARN), which the template's `Ref` and `Fn::GetAtt` then resolve to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SourceType = Literal["AWS::SQS::Queue", "AWS::Kinesis::Stream", "AWS::DynamoDB::Table"]
SOURCE_TYPES: tuple[SourceType, ...] = ("AWS::SQS::Queue", "AWS::Kinesis::Stream", "AWS::DynamoDB::Table")


@dataclass(frozen=True, slots=True)
class SourceResource:
    """One queue, stream or table resource of a template, intrinsics in its properties resolved."""

    logical_id: str
    type: SourceType
    physical_name: str
    """`QueueName` / `Name` / `TableName` when given, else the name poller makes up for it."""
    properties: Mapping[str, Any] = field(default_factory=dict)
    line: int | None = None
    """The template line of the logical id, for problems."""


Attributes = Mapping[str, Mapping[str, str]]
"""By logical id, the resource's `Ref` value (key "Ref") and its `Fn::GetAtt` attributes
(`Arn`, `QueueUrl`, `QueueName`, `StreamArn`, …)."""
