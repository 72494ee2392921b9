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
"""The sources poller reads."""
OtherKind = Literal["mq", "documentdb", "msk"]
"""Sources Lambda reads and poller accepts but cannot read yet (`poller.config.unstartable`)."""

KIND_TITLES: dict[SourceKind | OtherKind, str] = {
    "sqs": "SQS",
    "kinesis": "Kinesis",
    "dynamodb": "DynamoDB",
    "kafka": "Kafka",
    "mq": "Amazon MQ",
    "documentdb": "Amazon DocumentDB",
    "msk": "Amazon MSK",
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

    kind: SourceKind | OtherKind | None
    field: str = "EventSourceArn"
    message: str = ""


def detect_kind(raw: RawMapping) -> Detected:
    """Classify a mapping by its source keys (spec §1.4, §1.6).

    An MSK cluster ARN beside `SelfManagedEventSource` is left to the Kafka resolver, which refuses
    the pair; alone, it is an MSK mapping.
    """
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
        if arn.service == "mq":
            return Detected("mq")
        if arn.service == "rds" and arn.resource.startswith("cluster:"):
            return Detected("documentdb")
        if arn.service == "kafka" and raw.self_managed_event_source is None:
            return Detected("msk")
    if raw.topics is not None or raw.self_managed_event_source is not None:
        return Detected("kafka", field="Topics" if raw.topics is not None else "SelfManagedEventSource")
    if arn is None:
        return Detected(None, message=f"Invalid EventSourceArn: {arn_text}")
    return Detected(None, message=UNRECOGNIZED)


# Kinesis stream names and DynamoDB table names as those services define them; a DynamoDB stream
# label is a creation timestamp (AWS: `2024-01-01T00:00:00.000`, moto: microseconds), so any
# timestamp-like text is accepted.
_KINESIS_STREAM_ARN = re.compile(
    rf"^arn:(?:{'|'.join(PARTITIONS)}):kinesis:(?P<region>{_REGION}):(?P<account>\d{{12}}):"
    r"stream/(?P<stream>[A-Za-z0-9_.-]{1,128})$"
)
_KINESIS_CONSUMER_ARN = re.compile(
    rf"^(?P<stream_arn>arn:(?:{'|'.join(PARTITIONS)}):kinesis:{_REGION}:\d{{12}}:stream/[A-Za-z0-9_.-]{{1,128}})"
    r"/consumer/(?P<consumer>[A-Za-z0-9_.-]{1,128}):(?P<created>\d+)$"
)
_DYNAMODB_STREAM_ARN = re.compile(
    rf"^arn:(?:{'|'.join(PARTITIONS)}):dynamodb:(?P<region>{_REGION}):(?P<account>\d{{12}}):"
    r"table/(?P<table>[A-Za-z0-9_.-]{3,255})/stream/(?P<label>[A-Za-z0-9_.:+-]{1,64})$"
)


@dataclass(frozen=True, slots=True)
class KinesisStreamArn:
    """`arn:<partition>:kinesis:<region>:<account>:stream/<name>` (spec §1.4)."""

    region: str
    account_id: str
    stream_name: str

    @classmethod
    def parse(cls, text: str) -> KinesisStreamArn | None:
        match = _KINESIS_STREAM_ARN.match(text)
        return None if match is None else cls(match["region"], match["account"], match["stream"])


@dataclass(frozen=True, slots=True)
class KinesisConsumerArn:
    """An enhanced fan-out consumer, `<stream arn>/consumer/<name>:<creation timestamp>` (spec §1.4).

    Recognised only to be refused with a pointer to the stream ARN: poller reads shards with
    GetRecords (shared throughput), not SubscribeToShard.
    """

    stream_arn: str
    consumer_name: str

    @classmethod
    def parse(cls, text: str) -> KinesisConsumerArn | None:
        match = _KINESIS_CONSUMER_ARN.match(text)
        return None if match is None else cls(match["stream_arn"], match["consumer"])


@dataclass(frozen=True, slots=True)
class DynamoDbStreamArn:
    """`arn:<partition>:dynamodb:<region>:<account>:table/<table>/stream/<label>` (spec §1.4)."""

    region: str
    account_id: str
    table_name: str
    stream_label: str

    @classmethod
    def parse(cls, text: str) -> DynamoDbStreamArn | None:
        match = _DYNAMODB_STREAM_ARN.match(text)
        if match is None:
            return None
        return cls(match["region"], match["account"], match["table"], match["label"])
