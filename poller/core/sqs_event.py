"""The SQS event exactly as Lambda delivers it (spec §3.1), built from ReceiveMessage replies.

Each record is serialised once, when it is received: the batcher needs its size for the 6 MB cap
anyway, and the event is then the concatenation of ready-made record bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from poller.core.stream_event import compact

EVENT_PREFIX = b'{"Records":['
EVENT_SUFFIX = b"]}"
EVENT_OVERHEAD = len(EVENT_PREFIX) + len(EVENT_SUFFIX)


@dataclass(frozen=True, slots=True)
class SqsMessage:
    """A received message: what is needed to acknowledge it, order it and deliver it."""

    message_id: str
    receipt_handle: str
    group_id: str | None
    record: bytes
    """The record's JSON, exactly as it appears in the event's `Records` list."""
    receive_count: int = 1
    """ApproximateReceiveCount: above 1, this delivery retries an earlier failed one."""

    @property
    def size(self) -> int:
        return len(self.record) + 1  # the comma that joins it to its neighbour


def _attribute_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """One message attribute in Lambda's lower-camel form."""
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    out["stringListValues"] = list(value.get("StringListValues", []))
    out["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
    ]
    out["dataType"] = value["DataType"]
    return out


def build_record(
    message: Mapping[str, Any], *, queue_arn: str, region: str, batching_window_seconds: int
) -> dict[str, Any]:
    """The event record for one ReceiveMessage message.

    Spec §11 Q1: for a message without attributes, AWS sends `"md5OfMessageAttributes": null`
    when the mapping has a batching window and omits the key when it has none.
    """
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _attribute_value(value) for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    md5_attributes = message.get("MD5OfMessageAttributes")
    if md5_attributes is not None:
        record["md5OfMessageAttributes"] = md5_attributes
    elif batching_window_seconds > 0:
        record["md5OfMessageAttributes"] = None
    record["md5OfBody"] = message.get("MD5OfBody", "")
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = region
    return record


def to_message(
    message: Mapping[str, Any], *, queue_arn: str, region: str, batching_window_seconds: int
) -> SqsMessage:
    record = build_record(
        message, queue_arn=queue_arn, region=region, batching_window_seconds=batching_window_seconds
    )
    return from_record(record)


def from_record(record: Mapping[str, Any]) -> SqsMessage:
    """The in-hand message for an event record built by `build_record`."""
    return SqsMessage(
        message_id=record["messageId"],
        receipt_handle=record["receiptHandle"],
        group_id=record["attributes"].get("MessageGroupId"),
        record=compact(orjson.dumps(record)),
        receive_count=_receive_count(record["attributes"].get("ApproximateReceiveCount")),
    )


def _receive_count(value: object) -> int:
    try:
        return max(int(str(value)), 1)
    except ValueError:
        return 1


def encode_event(messages: Sequence[SqsMessage]) -> bytes:
    """The event payload for a batch: `{"Records": [...]}` from the pre-serialised records."""
    return EVENT_PREFIX + b",".join(m.record for m in messages) + EVENT_SUFFIX
