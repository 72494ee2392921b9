"""FilterCriteria on an SQS mapping (spec §7, §5.1 item 2, §11 Q5): only matching messages reach the
function and count toward BatchSize; the others are deleted at once and counted as filtered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import FunctionServer, StartPoller, queue_depth, wait_until

pytestmark = pytest.mark.integration


async def test_only_matching_messages_are_invoked_and_the_rest_are_deleted(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    queue = make_queue(visibility=30)
    bodies = [
        json.dumps({"kind": "order", "id": 1}),
        json.dumps({"kind": "refund", "id": 2}),
        json.dumps({"kind": "order", "id": 3, "amount": 250}),
        "kind=order but a plain string",  # Q5: a JSON body pattern never matches a plain string
        json.dumps({"kind": "audit", "id": 5}),
        json.dumps({"kind": "order", "id": 6}),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)
    poller = await start_poller(
        [
            {
                "Name": "orders-only",
                "EventSourceArn": queue.arn,
                "FunctionName": function_server.url,
                "BatchSize": 2,
                "MaximumBatchingWindowInSeconds": 1,
                "FilterCriteria": {
                    "Filters": [
                        {"Pattern": json.dumps({"body": {"kind": ["order"]}})},
                        {"Pattern": json.dumps({"body": {"kind": [{"prefix": "aud"}]}})},
                    ]
                },
            }
        ]
    )
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), what="every message deleted")
    await wait_until(
        lambda: poller.metric("poller_records_filtered_total", mapping="orders-only") == 2,
        what="two filtered",
    )
    invoked = sorted(json.loads(b)["id"] for b in function_server.bodies())
    assert invoked == [1, 3, 5, 6]
    # BatchSize counts matching records only (spec §2), so no event holds more than 2.
    assert all(len(e["Records"]) <= 2 for e in function_server.events)
    assert poller.metric("poller_records_polled_total", mapping="orders-only") == 6
    assert poller.metric("poller_records_invoked_total", mapping="orders-only") == 4
