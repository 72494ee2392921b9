"""spec §3.3: the DynamoDB Streams record built from a GetRecords reply, field by field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from poller.core.dynamodb_event import creation_epoch, dynamodb_record, item_key
from poller.core.stream_event import serialise_record

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Items/stream/2024-06-10T19:26:16.525"
# 2024-11-22T10:06:41Z, given as botocore gives it: tz-aware, in the host's zone.
CREATED = datetime(2024, 11, 22, 10, 6, 41, tzinfo=UTC).astimezone()
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def raw_record(
    event_name: str,
    view_type: str,
    *,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    keys: dict[str, Any] | None = None,
    version: str = "1.1",
) -> dict[str, Any]:
    """A GetRecords record as botocore returns it, with the images that `view_type` carries."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": CREATED,
        "Keys": keys if keys is not None else {"Id": {"N": "101"}},
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    dynamodb |= {"SequenceNumber": "800000000003126276362", "SizeBytes": 59, "StreamViewType": view_type}
    return {
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": event_name,
        "eventVersion": version,
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    }


NEW = {"Id": {"N": "101"}, "Message": {"S": "changed"}}
OLD = {"Id": {"N": "101"}, "Message": {"S": "new"}}


def test_modify_is_the_spec_example_field_by_field_and_in_order() -> None:
    """spec §3.3: the documented MODIFY example, reproduced from the raw GetRecords record."""
    record = dynamodb_record(
        raw_record("MODIFY", "NEW_AND_OLD_IMAGES", new=NEW, old=OLD), stream_arn=STREAM_ARN
    )
    assert record == {
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1732270001.0,
            "Keys": {"Id": {"N": "101"}},
            "NewImage": {"Id": {"N": "101"}, "Message": {"S": "changed"}},
            "OldImage": {"Id": {"N": "101"}, "Message": {"S": "new"}},
            "SequenceNumber": "800000000003126276362",
            "SizeBytes": 59,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": STREAM_ARN,
    }
    assert list(record) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]
    assert list(record["dynamodb"]) == [
        "ApproximateCreationDateTime",
        "Keys",
        "NewImage",
        "OldImage",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    ]


def test_serialised_bytes_are_golden() -> None:
    """spec §3.3 / §11 Q10: ApproximateCreationDateTime is a JSON number (float epoch seconds)."""
    record = dynamodb_record(raw_record("INSERT", "KEYS_ONLY"), stream_arn=STREAM_ARN)
    assert serialise_record(record) == (
        b'{"eventID":"c81e728d9d4c2f636f067f89cc14862c","eventName":"INSERT","eventVersion":"1.1",'
        b'"eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{'
        b'"ApproximateCreationDateTime":1732270001.0,"Keys":{"Id":{"N":"101"}},'
        b'"SequenceNumber":"800000000003126276362","SizeBytes":59,"StreamViewType":"KEYS_ONLY"},'
        b'"eventSourceARN":"' + STREAM_ARN.encode() + b'"}'
    )


# Which images each (event, view type) carries on a real stream.
VIEW_CASES = [
    ("INSERT", "KEYS_ONLY", None, None),
    ("INSERT", "NEW_IMAGE", NEW, None),
    ("INSERT", "OLD_IMAGE", None, None),
    ("INSERT", "NEW_AND_OLD_IMAGES", NEW, None),
    ("MODIFY", "KEYS_ONLY", None, None),
    ("MODIFY", "NEW_IMAGE", NEW, None),
    ("MODIFY", "OLD_IMAGE", None, OLD),
    ("MODIFY", "NEW_AND_OLD_IMAGES", NEW, OLD),
    ("REMOVE", "KEYS_ONLY", None, None),
    ("REMOVE", "NEW_IMAGE", None, None),
    ("REMOVE", "OLD_IMAGE", None, OLD),
    ("REMOVE", "NEW_AND_OLD_IMAGES", None, OLD),
]


@pytest.mark.parametrize(("event_name", "view_type", "new", "old"), VIEW_CASES)
def test_every_event_name_and_view_type_passes_images_through(
    event_name: str, view_type: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> None:
    """spec §3.3: images present according to StreamViewType, exactly as the stream gave them."""
    record = dynamodb_record(raw_record(event_name, view_type, new=new, old=old), stream_arn=STREAM_ARN)
    assert record["eventName"] == event_name
    data = record["dynamodb"]
    assert data["StreamViewType"] == view_type
    expected_keys = ["ApproximateCreationDateTime", "Keys"]
    expected_keys += ["NewImage"] if new is not None else []
    expected_keys += ["OldImage"] if old is not None else []
    expected_keys += ["SequenceNumber", "SizeBytes", "StreamViewType"]
    assert list(data) == expected_keys
    assert data.get("NewImage") == new
    assert data.get("OldImage") == old
    assert "userIdentity" not in record


def test_binary_values_become_base64_at_any_depth() -> None:
    """spec §3.3: `{"B": <base64>}`, `BS` too, inside `M` and `L` as well as at the top."""
    image = {
        "pk": {"B": b"\x00\xff"},
        "set": {"BS": [b"\x01", b"\xfe\xff"]},
        "map": {"M": {"inner": {"B": b"\x02"}, "deeper": {"M": {"bs": {"BS": [b"\x03"]}}}}},
        "list": {"L": [{"B": b"\x04"}, {"M": {"x": {"B": b"\x05"}}}, {"L": [{"BS": [b"\x06"]}]}]},
        "plain": {"L": [{"S": "s"}, {"N": "1.5"}, {"BOOL": False}, {"NULL": True}]},
        "sets": {"SS": ["a", "b"]},
        "nums": {"NS": ["1", "2.5"]},
        "empty": {"M": {}},
    }
    raw = raw_record("INSERT", "NEW_IMAGE", keys={"pk": {"B": b"\x00\xff"}}, new=image)
    data = dynamodb_record(raw, stream_arn=STREAM_ARN)["dynamodb"]
    assert data["Keys"] == {"pk": {"B": "AP8="}}
    assert data["NewImage"] == {
        "pk": {"B": "AP8="},
        "set": {"BS": ["AQ==", "/v8="]},
        "map": {"M": {"inner": {"B": "Ag=="}, "deeper": {"M": {"bs": {"BS": ["Aw=="]}}}}},
        "list": {"L": [{"B": "BA=="}, {"M": {"x": {"B": "BQ=="}}}, {"L": [{"BS": ["Bg=="]}]}]},
        "plain": {"L": [{"S": "s"}, {"N": "1.5"}, {"BOOL": False}, {"NULL": True}]},
        "sets": {"SS": ["a", "b"]},
        "nums": {"NS": ["1", "2.5"]},
        "empty": {"M": {}},
    }
    # and the whole record is JSON-serialisable (no bytes left anywhere)
    assert orjson.loads(serialise_record(dynamodb_record(raw, stream_arn=STREAM_ARN)))["dynamodb"] == data


def test_input_is_not_modified_and_output_shares_nothing_mutable() -> None:
    raw = raw_record(
        "MODIFY",
        "NEW_AND_OLD_IMAGES",
        new={"b": {"B": b"\x01"}, "ss": {"SS": ["a"]}, "l": {"L": [{"S": "x"}]}},
        old={"m": {"M": {"b": {"BS": [b"\x02"]}}}},
    )
    raw["userIdentity"] = dict(TTL_IDENTITY)
    before = copy.deepcopy(raw)
    record = dynamodb_record(raw, stream_arn=STREAM_ARN)
    assert raw == before
    record["dynamodb"]["NewImage"]["ss"]["SS"].append("z")
    record["dynamodb"]["NewImage"]["l"]["L"].append({"S": "y"})
    record["dynamodb"]["Keys"]["Id"]["N"] = "0"
    record["userIdentity"]["type"] = "x"
    assert raw == before


def test_ttl_deletion_carries_user_identity_last() -> None:
    """spec §3.3: `userIdentity` only for TTL deletions, `{"type": "Service", "principalId": ...}`."""
    raw = raw_record("REMOVE", "OLD_IMAGE", old=OLD)
    raw["userIdentity"] = dict(TTL_IDENTITY)
    record = dynamodb_record(raw, stream_arn=STREAM_ARN)
    assert record["userIdentity"] == TTL_IDENTITY
    assert list(record)[-2:] == ["eventSourceARN", "userIdentity"]
    assert record["dynamodb"]["OldImage"] == OLD


def test_event_version_is_passed_through() -> None:
    """spec §3.3 / §11 Q10: AWS says "1.1"; moto says "1.0"; we deliver what the stream says."""
    for version in ("1.0", "1.1"):
        raw = raw_record("INSERT", "KEYS_ONLY", version=version)
        assert dynamodb_record(raw, stream_arn=STREAM_ARN)["eventVersion"] == version


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (datetime(2024, 11, 22, 5, 6, 41, tzinfo=timezone(timedelta(hours=-5))), 1732270001.0),
        (
            datetime(2024, 11, 22, 15, 36, 41, 250000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            1732270001.25,
        ),
        (datetime(2024, 11, 22, 10, 6, 41, 581000, tzinfo=UTC).astimezone(), 1732270001.581),
        (datetime(2024, 11, 22, 10, 6, 41), 1732270001.0),  # naive: read as UTC, never as host-local
    ],
)
def test_creation_time_is_epoch_seconds_whatever_the_timezone(created: datetime, expected: float) -> None:
    """spec §3.3: ApproximateCreationDateTime is a number (epoch seconds); the stream's fraction is kept."""
    raw = raw_record("INSERT", "KEYS_ONLY")
    raw["dynamodb"]["ApproximateCreationDateTime"] = created
    assert creation_epoch(raw) == expected
    record = dynamodb_record(raw, stream_arn=STREAM_ARN)
    assert record["dynamodb"]["ApproximateCreationDateTime"] == expected
    assert creation_epoch(record) == expected  # a built record gives the same answer


def test_item_key_is_stable_under_key_order_and_encoding() -> None:
    """Records of one item share a key (ParallelizationFactor lanes, spec §9.2), however they arrive."""
    keys = {"pk": {"S": "user#1"}, "sk": {"B": b"\x00\x01"}}
    reordered = {"sk": {"B": b"\x00\x01"}, "pk": {"S": "user#1"}}
    a = raw_record("INSERT", "KEYS_ONLY", keys=keys)
    b = raw_record("MODIFY", "NEW_IMAGE", keys=reordered, new={"pk": {"S": "user#1"}})
    assert item_key(a) == item_key(b)
    assert item_key(a) == item_key(dynamodb_record(b, stream_arn=STREAM_ARN))
    assert item_key(a) == '{"pk":{"S":"user#1"},"sk":{"B":"AAE="}}'
    other = raw_record("INSERT", "KEYS_ONLY", keys={"pk": {"S": "user#1"}, "sk": {"B": b"\x00\x02"}})
    assert item_key(other) != item_key(a)
    # a string key and a number key with the same text are different items
    assert item_key(raw_record("INSERT", "KEYS_ONLY", keys={"Id": {"S": "1"}})) != item_key(
        raw_record("INSERT", "KEYS_ONLY", keys={"Id": {"N": "1"}})
    )
