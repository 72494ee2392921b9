"""FIFO queues: one batch in flight per message group, and a group's order never overtaken (spec §5.1 item 8)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import FunctionServer, StartPoller, queue_depth, wait_until

pytestmark = pytest.mark.integration


async def test_fifo_groups_keep_order_and_never_run_two_batches_at_once(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    queue = make_queue(fifo=True, visibility=2)
    groups = ("A", "B", "C")
    for i in range(6):
        for group in groups:
            sqs.send_message(QueueUrl=queue.url, MessageBody=f"{group}{i}", MessageGroupId=group)
    active: dict[str, int] = dict.fromkeys(groups, 0)
    overlaps: list[str] = []
    failed_once = False
    delivered: list[str] = []

    async def handler(event: dict[str, Any]) -> web.StreamResponse:
        nonlocal failed_once
        batch_groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        for group in batch_groups:
            active[group] += 1
            if active[group] > 1:
                overlaps.append(group)
        try:
            await asyncio.sleep(0.1)
            bodies = [r["body"] for r in event["Records"]]
            if not failed_once and "A1" in bodies:
                # The batch holding A1 fails whole: A1.. must come back before A's later messages.
                failed_once = True
                return web.json_response({"errorMessage": "fail"}, status=500)
            delivered.extend(bodies)
            return web.json_response(None)
        finally:
            for group in batch_groups:
                active[group] -= 1

    function_server.behaviour = handler
    await start_poller(
        [
            {
                "Name": "fifo",
                "EventSourceArn": queue.arn,
                "FunctionName": function_server.url,
                "BatchSize": 2,
                "ScalingConfig": {"MaximumConcurrency": 3},
            }
        ]
    )
    await wait_until(lambda: len(delivered) == 18, timeout=40, what="all 18 messages delivered")
    assert failed_once
    assert overlaps == []
    for group in groups:
        assert [b for b in delivered if b.startswith(group)] == [f"{group}{i}" for i in range(6)], group
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), what="FIFO queue empty")
