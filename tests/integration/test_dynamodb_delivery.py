"""DynamoDB Streams through the real `poller run`: records as AWS delivers them, per view type."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

from tests.integration.conftest import REGION, FunctionServer, StartPoller, stream_mapping
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

IMAGES = {
    "KEYS_ONLY": (False, False),
    "NEW_IMAGE": (True, False),
    "OLD_IMAGE": (False, True),
    "NEW_AND_OLD_IMAGES": (True, True),
}


@pytest.mark.parametrize("view_type", list(IMAGES))
async def test_insert_modify_remove_carry_the_images_of_the_view_type(
    view_type: str, make_table: Any, dynamodb: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §3.3: eventName, Keys, the images the StreamViewType includes, binary values as base64,
    ApproximateCreationDateTime as epoch seconds, SequenceNumber, SizeBytes, eventSourceARN."""
    table = make_table(view_type)
    before = time.time() - 5
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "a"}, "n": {"N": "1"}, "b": {"B": b"\x00\xff"}})
    dynamodb.put_item(
        TableName=table.name, Item={"id": {"S": "a"}, "n": {"N": "2"}, "l": {"L": [{"B": b"\x01"}]}}
    )
    dynamodb.delete_item(TableName=table.name, Key={"id": {"S": "a"}})
    await start_poller([stream_mapping("items", table.stream_arn, function_server.url)])
    await wait_until(lambda: len(function_server.records) >= 3, timeout=20, what="three stream records")
    insert, modify, remove = function_server.records[:3]
    assert [r["eventName"] for r in (insert, modify, remove)] == ["INSERT", "MODIFY", "REMOVE"]
    new, old = IMAGES[view_type]
    for record in (insert, modify, remove):
        assert list(record)[:7] == [
            "eventID",
            "eventName",
            "eventVersion",
            "eventSource",
            "awsRegion",
            "dynamodb",
            "eventSourceARN",
        ]
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == REGION
        assert record["eventSourceARN"] == table.stream_arn
        inner = record["dynamodb"]
        assert inner["Keys"] == {"id": {"S": "a"}}
        assert inner["StreamViewType"] == view_type
        assert isinstance(inner["ApproximateCreationDateTime"], float)
        assert before < inner["ApproximateCreationDateTime"] <= time.time() + 1
        assert inner["SequenceNumber"].isdigit()
        assert isinstance(inner["SizeBytes"], int)
    assert ("NewImage" in insert["dynamodb"]) is new
    assert ("OldImage" in insert["dynamodb"]) is False
    assert ("NewImage" in modify["dynamodb"]) is new
    assert ("OldImage" in modify["dynamodb"]) is old
    assert ("NewImage" in remove["dynamodb"]) is False
    assert ("OldImage" in remove["dynamodb"]) is old
    if new:
        assert base64.b64decode(insert["dynamodb"]["NewImage"]["b"]["B"]) == b"\x00\xff"
        assert modify["dynamodb"]["NewImage"]["l"] == {"L": [{"B": base64.b64encode(b"\x01").decode()}]}
        assert modify["dynamodb"]["NewImage"]["n"] == {"N": "2"}
    if old:
        assert modify["dynamodb"]["OldImage"]["n"] == {"N": "1"}
        assert remove["dynamodb"]["OldImage"]["n"] == {"N": "2"}
    parsed = [DynamoDBStreamModel.model_validate(event) for event in function_server.events]
    assert [r.eventName for m in parsed for r in m.Records][:3] == ["INSERT", "MODIFY", "REMOVE"]
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in (insert, modify, remove)]
    assert sequence == sorted(sequence)


async def test_latest_starts_at_the_tip_when_enabled(
    make_table: Any, dynamodb: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §1.4: LATEST reads only what is written after the mapping is enabled."""
    table = make_table("NEW_IMAGE")
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "old"}})
    poller = await start_poller(
        [stream_mapping("latest", table.stream_arn, function_server.url, StartingPosition="LATEST")]
    )
    await wait_until(lambda: poller.status()["mappings"][0]["Positions"], timeout=10, what="shard started")
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "new"}})
    await wait_until(lambda: len(function_server.records) >= 1, timeout=20, what="the new record")
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in function_server.records] == ["new"]
