"""Per-source record views and the format-compatibility rules (spec §3, §7.3, §7.4, §11)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from poller.core.filtering import (
    UNDECODABLE,
    SourceKind,
    compile_filters,
    dynamodb_view,
    kafka_view,
    kinesis_view,
    record_view,
    sqs_view,
)


def keeps(source: SourceKind, pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    return compile_filters([json.dumps(pattern)], source=source).matches(record_view(source, record))


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


# --- SQS -----------------------------------------------------------------------------------------


def sqs_record(body: str) -> dict[str, Any]:
    return {
        "messageId": "6f1c2a9e-0c4b-4f4e-9a51-3c2d7f0e8b11",
        "receiptHandle": "AQEB...",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1732270000123"},
        "messageAttributes": {
            "Author": {
                "stringValue": "Jane",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": "7f2c9d1b0e6a4d3c8b5a2e1f0d9c8b7a",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders",
        "awsRegion": "us-east-1",
    }


JSON_BODY = json.dumps({"RecordNumber": 1234, "RequestCode": "BBBB", "items": [{"sku": "A"}]})


def test_sqs_view_parses_a_json_body_and_keeps_the_record() -> None:
    """§7.3: an SQS body that parses as JSON is matched as JSON; the other fields stay as delivered."""
    record = sqs_record(JSON_BODY)
    view = sqs_view(record)
    assert view["body"] == {"RecordNumber": 1234, "RequestCode": "BBBB", "items": [{"sku": "A"}]}
    assert view["messageId"] == record["messageId"]
    assert record["body"] == JSON_BODY  # the delivered record is untouched


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"body": {"RequestCode": ["BBBB"]}}, True),
        ({"body": {"RequestCode": ["AAAA"]}}, False),
        ({"body": {"RecordNumber": [{"numeric": [">", 1000]}]}}, True),
        ({"body": {"items": {"sku": ["A"]}}}, True),
        ({"body": {"missing": [{"exists": False}]}}, True),
        ({"body": [JSON_BODY]}, False),  # JSON body, plain-string pattern: dropped
        ({"body": [{"exists": True}]}, False),
        ({"body": [{"exists": False}]}, False),
        ({"messageAttributes": {"Author": {"stringValue": ["Jane"]}}}, True),  # metadata only
        ({"attributes": {"ApproximateReceiveCount": ["1"]}}, True),
        ({"attributes": {"ApproximateReceiveCount": [{"numeric": ["=", 1]}]}}, False),  # strings
    ],
)
def test_sqs_json_body(pattern: dict[str, Any], expected: bool) -> None:
    """§7.4 SQS: JSON body + JSON pattern filters normally, + plain pattern drops, + none = metadata."""
    assert keeps("sqs", pattern, sqs_record(JSON_BODY)) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"body": ["hello world"]}, True),
        ({"body": ["hello"]}, False),
        ({"body": [{"prefix": "hello"}]}, True),
        ({"body": [{"equals-ignore-case": "HELLO WORLD"}]}, True),
        ({"body": [{"anything-but": "bye"}]}, True),
        ({"body": {"RequestCode": ["BBBB"]}}, False),  # Q5: a JSON filter never matches a plain body
        ({"body": {"RequestCode": [{"exists": False}]}}, False),
        ({"messageId": [{"prefix": "6f1c"}]}, True),  # metadata only
    ],
)
def test_sqs_plain_string_body(pattern: dict[str, Any], expected: bool) -> None:
    """§7.4 SQS and §11 Q5: plain body + plain pattern filters normally; + JSON pattern is dropped."""
    assert keeps("sqs", pattern, sqs_record("hello world")) is expected


def test_sqs_json_scalar_bodies_are_json() -> None:
    """§7.3: "if the body parses as JSON it is matched as JSON" — scalars included."""
    assert sqs_view(sqs_record("42"))["body"] == 42
    assert keeps("sqs", {"body": [{"numeric": [">", 40]}]}, sqs_record("42"))
    assert not keeps("sqs", {"body": ["42"]}, sqs_record("42"))
    assert keeps("sqs", {"body": ["quoted"]}, sqs_record('"quoted"'))
    assert keeps("sqs", {"body": [True]}, sqs_record("true"))
    assert keeps("sqs", {"body": [2]}, sqs_record("[1, 2, 3]"))  # array bodies: any element


@pytest.mark.parametrize("body", ["", "   ", "NaN", "Infinity", "{not json", "{'a': 1}", "hello"])
def test_sqs_non_json_bodies_stay_plain(body: str) -> None:
    """§7.3: a body that is not strict JSON stays the plain string."""
    assert sqs_view(sqs_record(body))["body"] == body


def test_sqs_body_with_big_integer_is_json() -> None:
    """§7.3: integers beyond 64 bits are still JSON, and still exact."""
    record = sqs_record('{"id": 123456789012345678901234567890}')
    assert sqs_view(record)["body"] == {"id": 123456789012345678901234567890}
    assert keeps("sqs", {"body": {"id": [123456789012345678901234567890]}}, record)


def test_without_a_source_plain_eventbridge_rules_apply() -> None:
    """§7.2 vs §7.4: compiled without a source, a nested `exists: false` sees a missing leaf.

    The §7.4 drop applies only when the mapping's source is compiled in; the mapping runtime
    always passes it.
    """
    pattern = [json.dumps({"body": {"RequestCode": [{"exists": False}]}})]
    view = sqs_view(sqs_record("hello world"))
    assert compile_filters(pattern).matches(view)
    assert not compile_filters(pattern, source="sqs").matches(view)


# --- Kinesis -------------------------------------------------------------------------------------


def kinesis_record(data: str, partition_key: str = "device-17") -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": data,
            "approximateArrivalTimestamp": 1732270000.456,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000000:49590338271490256608559692538361571095921575989136588898",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/my-function-role",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry",
    }


def test_kinesis_view_is_flattened_with_decoded_data() -> None:
    """§7.3: the filter sees the `kinesis` fields at the top level and `data` decoded."""
    record = kinesis_record("eyJ0ZW1wIjogMjEuNX0=")  # {"temp": 21.5}
    view = kinesis_view(record)
    assert view["data"] == {"temp": 21.5}
    assert view["partitionKey"] == "device-17"
    assert view["sequenceNumber"] == record["kinesis"]["sequenceNumber"]
    assert view["approximateArrivalTimestamp"] == 1732270000.456
    assert view["eventSourceARN"] == record["eventSourceARN"]
    assert "kinesis" not in view
    assert record["kinesis"]["data"] == "eyJ0ZW1wIjogMjEuNX0="  # untouched


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"data": {"temp": [{"numeric": [">", 20]}]}}, True),
        ({"data": {"temp": [{"numeric": [">", 30]}]}}, False),
        ({"partitionKey": ["device-17"], "data": {"temp": [21.5]}}, True),
        ({"partitionKey": ["device-18"], "data": {"temp": [21.5]}}, False),
        ({"partitionKey": [{"prefix": "device-"}]}, True),  # metadata only
        ({"kinesis": {"partitionKey": ["device-17"]}}, False),  # not nested: the view is flat
        ({"eventName": ["aws:kinesis:record"]}, True),
    ],
)
def test_kinesis_json_data(pattern: dict[str, Any], expected: bool) -> None:
    """§7.3/§7.4 Kinesis: JSON data + JSON pattern filters normally; metadata is top-level."""
    assert keeps("kinesis", pattern, kinesis_record(b64('{"temp": 21.5}'))) is expected


def test_kinesis_non_json_data_drops_json_patterns() -> None:
    """§7.4 Kinesis: non-JSON data + JSON pattern drops the record; no data pattern = metadata only."""
    record = kinesis_record(b64("plain text"))
    assert kinesis_view(record)["data"] == "plain text"
    assert not keeps("kinesis", {"data": {"temp": [{"exists": False}]}}, record)
    assert keeps("kinesis", {"partitionKey": ["device-17"]}, record)


@pytest.mark.parametrize("data", [b64(b"\xff\xfe\x00binary"), "not base64!", "QUJ"])
def test_kinesis_undecodable_data(data: str) -> None:
    """§7.4: data that is not UTF-8 (or not base64) is non-JSON: JSON data patterns drop it."""
    record = kinesis_record(data)
    assert kinesis_view(record)["data"] is UNDECODABLE
    assert not keeps("kinesis", {"data": {"a": [{"exists": False}]}}, record)
    assert keeps("kinesis", {"partitionKey": ["device-17"]}, record)


def test_kinesis_two_mappings_each_get_their_record() -> None:
    """§11 Q12: two mappings with different data filters on one stream each keep only their record."""
    hot, cold = kinesis_record(b64('{"temp": 40}')), kinesis_record(b64('{"temp": -5}'))
    warm_only = compile_filters(['{"data": {"temp": [{"numeric": [">", 30]}]}}'], source="kinesis")
    cold_only = compile_filters(['{"data": {"temp": [{"numeric": ["<", 0]}]}}'], source="kinesis")
    assert [warm_only.matches(kinesis_view(r)) for r in (hot, cold)] == [True, False]
    assert [cold_only.matches(kinesis_view(r)) for r in (hot, cold)] == [False, True]


# --- DynamoDB ------------------------------------------------------------------------------------


def ddb_record(event_name: str = "MODIFY", **images: Any) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1732270001.0,
        "Keys": {"Id": {"N": "101"}},
        "SequenceNumber": "800000000003126276362",
        "SizeBytes": 59,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    dynamodb.update(images)
    return {
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Items/stream/2024-06-10T19:26:16.525",
    }


ITEM = {"Id": {"N": "101"}, "Message": {"S": "changed"}, "Tags": {"L": [{"S": "a"}, {"S": "b"}]}}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"dynamodb": {"NewImage": {"Message": {"S": ["changed"]}}}}, True),
        ({"dynamodb": {"NewImage": {"Message": ["changed"]}}}, False),  # the type key is required
        ({"dynamodb": {"NewImage": {"Message": {"S": [{"exists": True}]}}}}, True),
        ({"dynamodb": {"NewImage": {"Message": [{"exists": True}]}}}, False),  # not a leaf
        ({"dynamodb": {"NewImage": {"Absent": [{"exists": False}]}}}, True),
        ({"dynamodb": {"NewImage": {"Message": [{"exists": False}]}}}, True),  # SNAP exists_false_filter
        ({"dynamodb": {"NewImage": {"Id": {"N": [{"numeric": [">", 100]}]}}}}, False),  # §11: N is a string
        ({"dynamodb": {"NewImage": {"Id": {"N": ["101"]}}}}, True),
        ({"dynamodb": {"NewImage": {"Id": {"N": [{"anything-but": "101"}]}}}}, False),
        ({"dynamodb": {"NewImage": {"Id": {"N": [{"numeric": [">", 100]}, {"anything-but": "42"}]}}}}, True),
        ({"dynamodb": {"NewImage": {"Tags": {"L": {"S": ["b"]}}}}}, True),
        ({"dynamodb": {"ApproximateCreationDateTime": [{"numeric": [">", 0]}]}}, True),
        ({"eventName": ["INSERT"]}, False),
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        ({"eventName": ["MODIFY"], "eventSource": ["aws:dynamodb"]}, True),
    ],
)
def test_dynamodb_typed_attributes(pattern: dict[str, Any], expected: bool) -> None:
    """§7.3 DynamoDB [SNAP test_dynamodb_event_filter] and §11: typed values, `N` as strings."""
    assert keeps("dynamodb", pattern, ddb_record(NewImage=ITEM)) is expected


def test_dynamodb_keys_only_record_has_no_image() -> None:
    """§3.3: images follow StreamViewType; an absent image has no leaves to match."""
    record = ddb_record(event_name="REMOVE")
    assert not keeps("dynamodb", {"dynamodb": {"NewImage": {"Message": {"S": [{"exists": True}]}}}}, record)
    assert keeps("dynamodb", {"dynamodb": {"NewImage": {"Message": {"S": [{"exists": False}]}}}}, record)


def test_dynamodb_view_is_the_record() -> None:
    """§7.3: DynamoDB data is presented as in the event; the view is a copy."""
    record = ddb_record(NewImage=ITEM)
    view = dynamodb_view(record)
    assert view == record
    assert view is not record


# --- Kafka ---------------------------------------------------------------------------------------


def kafka_record(value: str | None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "topic": "orders",
        "partition": 0,
        "offset": 15,
        "timestamp": 1732270000123,
        "timestampType": "CREATE_TIME",
        "key": "b3JkZXItNDI=",
        "value": value,
        "headers": [{"traceId": [97, 98, 99]}],
    }
    record.update(extra)
    return record


def test_kafka_view_decodes_value_only() -> None:
    """§7.3 Kafka: `value` is base64-decoded then JSON when it parses; `key`/headers as delivered."""
    view = kafka_view(kafka_record("eyJvcmRlcklkIjogNDJ9"))  # {"orderId": 42}
    assert view["value"] == {"orderId": 42}
    assert view["key"] == "b3JkZXItNDI="
    assert view["headers"] == [{"traceId": [97, 98, 99]}]
    assert kafka_view(kafka_record(b64("Hello, this is a test.")))["value"] == "Hello, this is a test."
    assert kafka_view(kafka_record(None))["value"] is None


JSON_VALUE = b64('{"device_ID": "AB1234", "session": {"duration": 162}}')
PLAIN_VALUE = b64("Hello, this is a test.")


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        (JSON_VALUE, {"value": {"device_ID": [{"prefix": "AB"}]}}, True),
        (JSON_VALUE, {"value": {"device_ID": [{"prefix": "CD"}]}}, False),
        (JSON_VALUE, {"value": {"session": {"duration": [{"numeric": [">", 100]}]}}}, True),
        (PLAIN_VALUE, {"value": ["Hello, this is a test."]}, True),
        (PLAIN_VALUE, {"value": [{"prefix": "Bye"}]}, False),
        # Mismatches apply the metadata filters only: the data condition is not applied.
        (PLAIN_VALUE, {"value": {"device_ID": [{"prefix": "CD"}]}}, True),
        (PLAIN_VALUE, {"value": {"device_ID": ["x"]}, "topic": ["orders"]}, True),
        (PLAIN_VALUE, {"value": {"device_ID": ["x"]}, "topic": ["payments"]}, False),
        (JSON_VALUE, {"value": ["not this"]}, True),
        (JSON_VALUE, {"value": ["not this"], "partition": [1]}, False),
        (b64(b"\xff\xfe binary"), {"value": {"device_ID": ["x"]}}, True),  # non-UTF-8
        (b64(b"\xff\xfe binary"), {"value": ["x"], "offset": [16]}, False),
    ],
)
def test_kafka_format_compatibility(value: str, pattern: dict[str, Any], expected: bool) -> None:
    """§7.4 Kafka: plain/plain and JSON/JSON filter normally; any mismatch or non-UTF-8 data
    means the metadata filters alone decide."""
    assert keeps("kafka", pattern, kafka_record(value)) is expected


def test_record_view_dispatches_per_source() -> None:
    """§7.3: one entry point per source kind."""
    assert record_view("sqs", sqs_record("1"))["body"] == 1
    assert record_view("kinesis", kinesis_record(b64("1")))["data"] == 1
    assert record_view("kafka", kafka_record(b64("1")))["value"] == 1
    assert record_view("dynamodb", ddb_record())["eventName"] == "MODIFY"
