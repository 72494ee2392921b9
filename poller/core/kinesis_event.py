"""The Kinesis Data Streams event record exactly as Lambda delivers it (spec §3.2).

Input is one record of a GetRecords reply as botocore parsed it: `Data` is the raw bytes and
`ApproximateArrivalTimestamp` a tz-aware datetime. Serialise the result once with
`poller.core.stream_event.serialise_record`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from poller.core.stream_event import epoch_microseconds


@dataclass(frozen=True, slots=True)
class KinesisRecordContext:
    """What a record's event entry needs beyond the record itself; constant per shard."""

    shard_id: str
    stream_arn: str
    """The stream's ARN, also when reading through a consumer (spec §3.2)."""
    region: str
    invoke_identity_arn: str
    """The function's execution role ARN."""


def arrival_epoch(raw: Mapping[str, Any]) -> float:
    """`ApproximateArrivalTimestamp` as epoch seconds with millisecond precision.

    Kinesis records arrival in milliseconds; botocore's float-to-datetime conversion can land a
    microsecond either side of the millisecond (…455999), so round to the nearest millisecond
    rather than truncate, in integers, and divide once so the float prints as e.g. 1732270000.456.
    """
    micros = epoch_microseconds(raw["ApproximateArrivalTimestamp"])
    millis = (micros + 500) // 1000
    return millis / 1000


def kinesis_record(raw: Mapping[str, Any], ctx: KinesisRecordContext) -> dict[str, Any]:
    """The event record for one GetRecords record; keys in the order Lambda sends them."""
    sequence_number: str = raw["SequenceNumber"]
    kinesis: dict[str, Any] = {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": raw["PartitionKey"],
        "sequenceNumber": sequence_number,
        "data": base64.b64encode(raw["Data"]).decode("ascii"),
        "approximateArrivalTimestamp": arrival_epoch(raw),
    }
    # Not in spec §3.2's table: AWS's own event models (aws-lambda-go `encryptionType,omitempty`,
    # the Rust runtime's encrypted-stream fixture) show the key only on KMS-encrypted records.
    encryption = raw.get("EncryptionType")
    if encryption is not None and encryption != "NONE":
        kinesis["encryptionType"] = encryption
    return {
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{ctx.shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": ctx.invoke_identity_arn,
        "awsRegion": ctx.region,
        "eventSourceARN": ctx.stream_arn,
    }
