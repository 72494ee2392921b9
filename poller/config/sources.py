"""Which kind of event source a mapping reads, decided the way Lambda decides it.

Lambda picks the source from `EventSourceArn`'s service (and, for self-managed Kafka, from
`SelfManagedEventSource`); everything else about a mapping (defaults, ranges, allowed keys) follows
from that kind (spec §1.3, §1.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from poller.config.mapping import RawMapping

SourceKind = Literal["sqs", "kinesis", "dynamodb", "kafka"]

KIND_TITLES: dict[SourceKind, str] = {
    "sqs": "SQS",
    "kinesis": "Kinesis",
    "dynamodb": "DynamoDB",
    "kafka": "Kafka",
}

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")

UNRECOGNIZED = "Unrecognized event source."
"""spec §1.6: AWS's message when a mapping names no source it knows."""


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    service: str
    region: str
    account_id: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Arn | None:
        """The six colon-separated parts of an ARN, or None when `text` is not shaped like one."""
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or parts[1] not in PARTITIONS or not parts[2]:
            return None
        return cls(parts[1], parts[2], parts[3], parts[4], parts[5])


_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_SQS_ARN = re.compile(
    rf"^arn:(?:{'|'.join(PARTITIONS)}):sqs:(?P<region>{_REGION}):(?P<account>\d{{12}}):"
    r"(?P<queue>[A-Za-z0-9_-]{1,80}(?:\.fifo)?)$"
)
_SQS_QUEUE_NAME_MAX = 80  # including the ".fifo" suffix


@dataclass(frozen=True, slots=True)
class SqsQueueArn:
    region: str
    account_id: str
    queue_name: str

    @property
    def fifo(self) -> bool:
        return self.queue_name.endswith(".fifo")

    @classmethod
    def parse(cls, text: str) -> SqsQueueArn | None:
        match = _SQS_ARN.match(text)
        if match is None or len(match["queue"]) > _SQS_QUEUE_NAME_MAX:
            return None
        return cls(match["region"], match["account"], match["queue"])


@dataclass(frozen=True, slots=True)
class Detected:
    """The source kind, or why there is none: a message for the key it concerns."""

    kind: SourceKind | None
    field: str = "EventSourceArn"
    message: str = ""


def detect_kind(raw: RawMapping) -> Detected:
    """Classify a mapping by its source keys (spec §1.4, §1.6)."""
    arn_text = raw.event_source_arn
    if arn_text is None and raw.self_managed_event_source is None:
        return Detected(None, message=UNRECOGNIZED)
    arn = Arn.parse(arn_text) if arn_text is not None else None
    if arn is not None:
        if arn.service == "sqs":
            return Detected("sqs")
        if arn.service == "kinesis":
            return Detected("kinesis")
        if arn.service == "dynamodb" and "/stream/" in arn.resource:
            return Detected("dynamodb")
    if raw.topics is not None or raw.self_managed_event_source is not None:
        return Detected("kafka", field="Topics" if raw.topics is not None else "SelfManagedEventSource")
    if arn is not None and arn.service == "kafka":  # an MSK cluster ARN
        return Detected("kafka")
    if arn is None:
        return Detected(None, message=f"Invalid EventSourceArn: {arn_text}")
    return Detected(None, message=UNRECOGNIZED)
