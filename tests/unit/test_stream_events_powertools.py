"""AWS Lambda Powertools' parser models accept our stream events unchanged (spec §3.2, §3.3).

Powertools is what many functions use to read these events; if its models reject ours, functions
that work on AWS would fail here. Every event is parsed from the bytes we would actually send.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel, KinesisDataStreamModel

from poller.core.dynamodb_event import dynamodb_record
from poller.core.kinesis_event import KinesisRecordContext, kinesis_record
from poller.core.stream_event import encode_stream_event, serialise_record

KINESIS_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry"
DDB_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Items/stream/2024-06-10T19:26:16.525"
CTX = KinesisRecordContext(
    shard_id="shardId-000000000003",
    stream_arn=KINESIS_ARN,
    region="us-east-1",
    invoke_identity_arn="arn:aws:iam::123456789012:role/fn",
)


def wire(records: list[dict[str, Any]]) -> Any:
    """The event as the function receives it: our bytes, parsed as JSON."""
    return orjson.loads(encode_stream_event([serialise_record(r) for r in records]))


def test_kinesis_model_accepts_our_event_and_decodes_the_data() -> None:
    """spec §3.2: data is base64 of the original bytes, including non-UTF-8 and empty data."""
    payloads = [b'{"temp": 21.5}', b"\xff\xfe\x00binary", b"", "h\u00e9llo".encode()]
    arrival = datetime(2024, 11, 22, 10, 6, 40, 456000, tzinfo=UTC).astimezone()
    raws = [
        {
            "SequenceNumber": f"4959033827149025660855969253836157109592157598913658889{n}",
            "ApproximateArrivalTimestamp": arrival,
            "Data": data,
            "PartitionKey": f"device-{n}",
            **({"EncryptionType": "KMS"} if n % 2 else {}),
        }
        for n, data in enumerate(payloads)
    ]
    parsed = KinesisDataStreamModel.model_validate(wire([kinesis_record(raw, CTX) for raw in raws]))
    assert [r.kinesis.data for r in parsed.Records] == payloads
    first = parsed.Records[0]
    assert first.eventID == f"shardId-000000000003:{raws[0]['SequenceNumber']}"
    assert first.kinesis.sequenceNumber == raws[0]["SequenceNumber"]
    assert first.kinesis.partitionKey == "device-0"
    assert first.kinesis.approximateArrivalTimestamp == 1732270000.456
    assert first.eventSourceARN == KINESIS_ARN
    assert first.invokeIdentityArn == CTX.invoke_identity_arn


def _raw_ddb(
    n: int, event_name: str, view_type: str, *, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": datetime(2024, 11, 22, 10, 6, 41, 250000, tzinfo=UTC),
        "Keys": {"pk": {"B": b"\x00\xff"}, "n": {"N": str(n)}},
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    dynamodb |= {"SequenceNumber": f"80000000000312627636{n}", "SizeBytes": 59, "StreamViewType": view_type}
    return {
        "eventID": f"id-{n}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    }


IMAGE = {
    "pk": {"B": b"\x00\xff"},
    "count": {"N": "42"},
    "name": {"S": "widget"},
    "tags": {"SS": ["a", "b"]},
    "blobs": {"BS": [b"\x01", b"\x02"]},
    "nested": {"M": {"bin": {"B": b"\xfe"}, "list": {"L": [{"N": "1.5"}, {"BOOL": True}, {"NULL": True}]}}},
}
OLD_IMAGE = {"pk": {"B": b"\x00\xff"}, "count": {"N": "41"}}


def test_dynamodb_model_accepts_every_event_name_and_view_type() -> None:
    """spec §3.3: INSERT/MODIFY/REMOVE × the four view types, binary values, and a TTL deletion."""
    cases = [
        ("INSERT", "KEYS_ONLY", None, None),
        ("INSERT", "NEW_IMAGE", IMAGE, None),
        ("INSERT", "NEW_AND_OLD_IMAGES", IMAGE, None),
        ("MODIFY", "OLD_IMAGE", None, OLD_IMAGE),
        ("MODIFY", "NEW_AND_OLD_IMAGES", IMAGE, OLD_IMAGE),
        ("REMOVE", "OLD_IMAGE", None, OLD_IMAGE),
        ("REMOVE", "NEW_IMAGE", None, None),
    ]
    raws = [_raw_ddb(n, *case[:2], new=case[2], old=case[3]) for n, case in enumerate(cases)]
    raws[-1]["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    parsed = DynamoDBStreamModel.model_validate(wire([dynamodb_record(r, stream_arn=DDB_ARN) for r in raws]))

    assert [(r.eventName, r.dynamodb.StreamViewType) for r in parsed.Records] == [c[:2] for c in cases]
    for record in parsed.Records:
        assert record.eventSourceARN == DDB_ARN
        assert record.eventVersion == 1.1
        assert record.dynamodb.ApproximateCreationDateTime == datetime(
            2024, 11, 22, 10, 6, 41, 250000, tzinfo=UTC
        )
        assert record.dynamodb.Keys["pk"] == "AP8="  # Powertools leaves B as the base64 text it got
    assert parsed.Records[0].dynamodb.NewImage is None
    assert parsed.Records[0].dynamodb.OldImage is None

    new = parsed.Records[4].dynamodb.NewImage
    assert new == {
        "pk": "AP8=",
        "count": Decimal(42),
        "name": "widget",
        "tags": {"a", "b"},
        "blobs": {"AQ==", "Ag=="},
        "nested": {"bin": "/g==", "list": [Decimal("1.5"), True, None]},
    }
    assert parsed.Records[4].dynamodb.OldImage == {"pk": "AP8=", "count": Decimal(41)}

    assert parsed.Records[-1].userIdentity is not None
    assert parsed.Records[-1].userIdentity.principalId == "dynamodb.amazonaws.com"
    assert all(r.userIdentity is None for r in parsed.Records[:-1])
