"""FilterCriteria on stream mappings, end to end (spec §7.3, §7.5): only matching records reach the
function, and the others are skipped and checkpointed past."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.integration.conftest import FunctionServer, StartPoller, put_kinesis, stream_mapping
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_kinesis_data_is_matched_as_decoded_json(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    stream = make_stream()
    written = put_kinesis(
        kinesis,
        stream,
        [
            ("a", json.dumps({"kind": "order", "total": 5}).encode()),
            ("b", json.dumps({"kind": "audit"}).encode()),
            ("c", b"not json at all"),
            ("d", json.dumps({"kind": "order", "total": 50}).encode()),
            ("e", json.dumps({"kind": "audit"}).encode()),
        ],
    )
    pattern = json.dumps({"data": {"kind": ["order"], "total": [{"numeric": [">", 10]}]}})
    mapping = stream_mapping(
        "filtered", stream.arn, function_server.url, FilterCriteria={"Filters": [{"Pattern": pattern}]}
    )
    poller = await start_poller([mapping])
    await wait_until(
        lambda: poller.metric("poller_records_filtered_total", mapping="filtered") >= 4, timeout=20
    )
    shard = written[-1]["ShardId"]
    # The checkpoint passes the trailing non-matching record too.
    await wait_until(
        lambda: (
            poller.status()["mappings"][0]["Positions"][shard]["SequenceNumber"]
            == written[-1]["SequenceNumber"]
        ),
        timeout=10,
        what="checkpoint past the filtered records",
    )
    assert [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in function_server.records] == [
        {"kind": "order", "total": 50}
    ]
    assert poller.metric("poller_records_polled_total", mapping="filtered") == 5


async def test_dynamodb_records_are_matched_on_their_typed_images(
    make_table: Any, dynamodb: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    table = make_table("NEW_AND_OLD_IMAGES")
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "1"}, "status": {"S": "new"}})
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "2"}, "status": {"S": "shipped"}})
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "1"}, "status": {"S": "shipped"}})
    dynamodb.delete_item(TableName=table.name, Key={"id": {"S": "2"}})
    pattern = json.dumps(
        {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"status": {"S": ["shipped"]}}}}
    )
    mapping = stream_mapping(
        "ddb-filtered",
        table.stream_arn,
        function_server.url,
        FilterCriteria={"Filters": [{"Pattern": pattern}]},
    )
    poller = await start_poller([mapping])
    await wait_until(
        lambda: poller.metric("poller_records_filtered_total", mapping="ddb-filtered") >= 2, timeout=20
    )
    await wait_until(lambda: len(function_server.records) >= 2, timeout=10, what="two matching records")
    assert [(r["eventName"], r["dynamodb"]["Keys"]["id"]["S"]) for r in function_server.records] == [
        ("INSERT", "2"),
        ("MODIFY", "1"),
    ]
