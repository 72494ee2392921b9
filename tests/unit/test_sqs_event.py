"""spec §3.1: the SQS record built from a ReceiveMessage reply, field by field."""

from __future__ import annotations

import orjson

from poller.core.sqs_event import build_record, encode_event, to_message

ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
RAW = {
    "MessageId": "6f1c2a9e",
    "ReceiptHandle": "AQEB",
    "MD5OfBody": "7f2c",
    "Body": '{"orderId": 42}',
    "Attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1732270000123",
        "SenderId": "AIDA",
        "ApproximateFirstReceiveTimestamp": "1732270000130",
    },
    "MD5OfMessageAttributes": "d25a",
    "MessageAttributes": {
        "Author": {"StringValue": "Jane", "DataType": "String"},
        "Raw": {"BinaryValue": b"\x01\x02", "DataType": "Binary"},
    },
}


def test_record_matches_the_documented_example_shape() -> None:
    record = build_record(RAW, queue_arn=ARN, region="us-east-1", batching_window_seconds=0)
    assert record == {
        "messageId": "6f1c2a9e",
        "receiptHandle": "AQEB",
        "body": '{"orderId": 42}',
        "attributes": RAW["Attributes"],
        "messageAttributes": {
            "Author": {
                "stringValue": "Jane",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "Raw": {
                "binaryValue": "AQI=",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfMessageAttributes": "d25a",
        "md5OfBody": "7f2c",
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "us-east-1",
    }


def test_md5_of_attributes_absent_with_window_zero_and_null_with_a_window() -> None:
    """spec §11 Q1."""
    bare = {k: v for k, v in RAW.items() if k not in ("MD5OfMessageAttributes", "MessageAttributes")}
    assert "md5OfMessageAttributes" not in build_record(
        bare, queue_arn=ARN, region="r", batching_window_seconds=0
    )
    assert (
        build_record(bare, queue_arn=ARN, region="r", batching_window_seconds=1)["md5OfMessageAttributes"]
        is None
    )


def test_fifo_group_comes_from_attributes_and_event_is_valid_json() -> None:
    fifo = {**RAW, "Attributes": {**RAW["Attributes"], "MessageGroupId": "g1"}}
    message = to_message(fifo, queue_arn=ARN, region="us-east-1", batching_window_seconds=0)
    assert message.group_id == "g1"
    other = to_message(
        {**RAW, "MessageId": "b"}, queue_arn=ARN, region="us-east-1", batching_window_seconds=0
    )
    event = orjson.loads(encode_event([message, other]))
    assert [r["messageId"] for r in event["Records"]] == ["6f1c2a9e", "b"]
    assert len(encode_event([message, other])) == 12 + 2 + message.size + other.size - 1
