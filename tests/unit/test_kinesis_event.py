"""spec §3.2: the Kinesis record built from a GetRecords reply; and the shared `{"Records"}` envelope."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from poller.core.kinesis_event import KinesisRecordContext, arrival_epoch, kinesis_record
from poller.core.stream_event import (
    STREAM_EVENT_OVERHEAD,
    encode_stream_event,
    record_size,
    serialise_record,
)

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry"
ROLE_ARN = "arn:aws:iam::123456789012:role/my-function-role"
SEQ = "49590338271490256608559692538361571095921575989136588898"
CTX = KinesisRecordContext(
    shard_id="shardId-000000000000", stream_arn=STREAM_ARN, region="us-east-1", invoke_identity_arn=ROLE_ARN
)
# 2024-11-22T10:06:40.456Z, given as botocore gives it: tz-aware, in the host's zone.
ARRIVAL = datetime(2024, 11, 22, 10, 6, 40, 456000, tzinfo=UTC).astimezone()
RAW = {
    "SequenceNumber": SEQ,
    "ApproximateArrivalTimestamp": ARRIVAL,
    "Data": b'{"temp": 21.5}',
    "PartitionKey": "device-17",
}


def test_record_is_the_spec_example_field_by_field_and_in_order() -> None:
    """spec §3.2: the documented example, reproduced from the raw GetRecords record."""
    record = kinesis_record(RAW, CTX)
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "device-17",
            "sequenceNumber": SEQ,
            "data": "eyJ0ZW1wIjogMjEuNX0=",
            "approximateArrivalTimestamp": 1732270000.456,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{SEQ}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": ROLE_ARN,
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
    }
    assert list(record) == [
        "kinesis",
        "eventSource",
        "eventVersion",
        "eventID",
        "eventName",
        "invokeIdentityArn",
        "awsRegion",
        "eventSourceARN",
    ]
    assert list(record["kinesis"]) == [
        "kinesisSchemaVersion",
        "partitionKey",
        "sequenceNumber",
        "data",
        "approximateArrivalTimestamp",
    ]


def test_serialised_bytes_are_golden() -> None:
    """spec §3.2: epoch seconds as a JSON number with the millisecond fraction, compact JSON."""
    assert serialise_record(kinesis_record(RAW, CTX)) == (
        b'{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"device-17",'
        b'"sequenceNumber":"' + SEQ.encode() + b'","data":"eyJ0ZW1wIjogMjEuNX0=",'
        b'"approximateArrivalTimestamp":1732270000.456},"eventSource":"aws:kinesis",'
        b'"eventVersion":"1.0","eventID":"shardId-000000000000:' + SEQ.encode() + b'",'
        b'"eventName":"aws:kinesis:record","invokeIdentityArn":"' + ROLE_ARN.encode() + b'",'
        b'"awsRegion":"us-east-1","eventSourceARN":"' + STREAM_ARN.encode() + b'"}'
    )


def test_event_id_is_shard_and_sequence_number() -> None:
    """spec §3.2: eventID = "<shardId>:<sequenceNumber>"."""
    ctx = KinesisRecordContext(
        shard_id="shardId-000000000007", stream_arn=STREAM_ARN, region="eu-west-1", invoke_identity_arn="r"
    )
    record = kinesis_record({**RAW, "SequenceNumber": "42"}, ctx)
    assert record["eventID"] == "shardId-000000000007:42"
    assert record["kinesis"]["sequenceNumber"] == "42"
    assert record["awsRegion"] == "eu-west-1"


def test_non_utf8_data_is_base64_of_the_exact_bytes() -> None:
    """spec §3.2: data is base64 of the record bytes, whatever they are."""
    data = bytes(range(256)) + b"\xff\xfe\x00"
    record = kinesis_record({**RAW, "Data": data}, CTX)
    assert base64.b64decode(record["kinesis"]["data"], validate=True) == data
    assert kinesis_record({**RAW, "Data": b""}, CTX)["kinesis"]["data"] == ""


@pytest.mark.parametrize(
    "arrival",
    [
        datetime(2024, 11, 22, 5, 6, 40, 456000, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2024, 11, 22, 19, 36, 40, 456000, tzinfo=timezone(timedelta(hours=9, minutes=30))),
        datetime(2024, 11, 22, 10, 6, 40, 456000, tzinfo=UTC),
        datetime(2024, 11, 22, 10, 6, 40, 456000),  # naive: read as UTC, never as host-local
        ARRIVAL,
    ],
)
def test_arrival_epoch_is_independent_of_the_timezone(arrival: datetime) -> None:
    """spec §3.2: approximateArrivalTimestamp is epoch seconds; the datetime's zone must not matter."""
    assert arrival_epoch({**RAW, "ApproximateArrivalTimestamp": arrival}) == 1732270000.456


@pytest.mark.parametrize(
    ("microsecond", "expected"),
    [(455999, 1732270000.456), (456000, 1732270000.456), (456499, 1732270000.456), (0, 1732270000.0)],
)
def test_arrival_epoch_rounds_to_the_millisecond(microsecond: int, expected: float) -> None:
    """spec §3.2: "epoch seconds with ms fraction"; float→datetime conversion noise is rounded away."""
    arrival = datetime(2024, 11, 22, 10, 6, 40, microsecond, tzinfo=UTC)
    assert arrival_epoch({**RAW, "ApproximateArrivalTimestamp": arrival}) == expected


def test_encryption_type_only_on_kms_records() -> None:
    """Beyond spec §3.2: AWS's event models carry `kinesis.encryptionType` only for KMS records."""
    assert "encryptionType" not in kinesis_record(RAW, CTX)["kinesis"]
    assert "encryptionType" not in kinesis_record({**RAW, "EncryptionType": "NONE"}, CTX)["kinesis"]
    kms = kinesis_record({**RAW, "EncryptionType": "KMS"}, CTX)["kinesis"]
    assert kms["encryptionType"] == "KMS"
    assert list(kms)[-1] == "encryptionType"


def test_input_is_not_modified() -> None:
    raw = dict(RAW)
    kinesis_record(raw, CTX)
    assert raw == RAW


# --- the envelope (spec §3, §2's 6 MB cap) -----------------------------------------------------


def test_envelope_round_trips_and_its_length_is_known_in_advance() -> None:
    """spec §3: `{"Records": [...]}`; size = overhead + records + commas (spec §2: envelope counts)."""
    records = [kinesis_record({**RAW, "SequenceNumber": str(n), "Data": bytes([n])}, CTX) for n in range(3)]
    serialised = [serialise_record(r) for r in records]
    event = encode_stream_event(serialised)
    assert orjson.loads(event) == {"Records": records}
    assert len(event) == STREAM_EVENT_OVERHEAD + sum(len(s) for s in serialised) + len(serialised) - 1
    assert len(event) <= STREAM_EVENT_OVERHEAD + sum(record_size(s) for s in serialised)


def test_envelope_of_one_and_of_none() -> None:
    one = serialise_record(kinesis_record(RAW, CTX))
    assert len(encode_stream_event([one])) == STREAM_EVENT_OVERHEAD + len(one)
    assert encode_stream_event([]) == b'{"Records":[]}'
    assert len(b'{"Records":[]}') == STREAM_EVENT_OVERHEAD
