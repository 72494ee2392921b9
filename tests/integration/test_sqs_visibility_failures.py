"""SQS throttles against the visibility timeout, through `poller run` and moto (spec §5.1 item 6)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import FunctionServer, StartPoller, queue_depth, wait_until

pytestmark = pytest.mark.integration


async def test_a_throttled_batch_whose_reinvoke_would_outlive_its_visibility_is_given_back(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """Retry-After 6 s plus a 5 s function timeout do not fit in the 10 s visibility: re-invoking
    the batch in hand could outlive it and run the message twice at once. It goes back to the
    queue instead, so the next invoke is a new receive of it."""
    queue = make_queue(visibility=10)
    calls = 0

    async def throttle_once(_: dict[str, Any]) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=429, headers={"Retry-After": "6"})
        return web.json_response(None)

    function_server.behaviour = throttle_once
    sqs.send_message(QueueUrl=queue.url, MessageBody="throttled")
    poller = await start_poller(
        [
            {
                "Name": "giveback",
                "EventSourceArn": queue.arn,
                "FunctionName": function_server.url,
                "FunctionTimeout": 5,
            }
        ]
    )
    await wait_until(
        lambda: queue_depth(sqs, queue) == (0, 0) and len(function_server.records) == 2,
        what="given back, received again and deleted",
    )
    first, second = function_server.records
    assert first["messageId"] == second["messageId"]
    assert [
        first["attributes"]["ApproximateReceiveCount"],
        second["attributes"]["ApproximateReceiveCount"],
    ] == [
        "1",
        "2",
    ]
    assert poller.metric("poller_invocations_total", mapping="giveback", outcome="throttled") == 1
    assert poller.metric("poller_invocations_total", mapping="giveback", outcome="success") == 1
    assert poller.metric("poller_ack_failures_total", mapping="giveback", kind="visibility") == 0
