"""The service around the SQS source: isolation, timeouts, crashes, drain, visibility (DESIGN §1.2, §1.6, §3)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import FunctionServer, StartPoller, queue_depth, succeed_after, wait_until

pytestmark = pytest.mark.integration

HANGING_HANDLER = """
import time

def handler(event, context):
    if any(r["body"] == "hang" for r in event["Records"]):
        time.sleep(3600)
    return None
"""


async def test_hung_sync_handler_times_out_without_blocking_other_mappings(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """DESIGN §1.5: FunctionTimeout ends a blocking handler's invocation; the engine and other mappings go on;
    SIGTERM still exits 0 with the handler thread stuck."""
    hung, healthy = make_queue(visibility=2), make_queue(visibility=2)
    sqs.send_message(QueueUrl=hung.url, MessageBody="hang")
    poller = await start_poller(
        [
            {
                "Name": "hung",
                "EventSourceArn": hung.arn,
                "FunctionName": "python:hang.handler",
                "FunctionTimeout": 1,
            },
            {"Name": "healthy", "EventSourceArn": healthy.arn, "FunctionName": function_server.url},
        ],
        handlers={"hang": HANGING_HANDLER},
    )
    await wait_until(
        lambda: poller.metric("poller_invocations_total", mapping="hung", outcome="timeout") >= 1,
        what="a timeout",
    )
    for i in range(5):
        sqs.send_message(QueueUrl=healthy.url, MessageBody=f"ok{i}")
    await wait_until(lambda: len(function_server.records) == 5, what="healthy mapping delivers meanwhile")
    assert poller.get("/healthz")[0] == 200
    # The timed-out message was not deleted: it comes back for another try.
    await wait_until(
        lambda: poller.metric("poller_invocations_total", mapping="hung", outcome="timeout") >= 2,
        timeout=15,
        what="retried after the visibility timeout",
    )
    assert poller.terminate(timeout=20) == 0


async def test_a_mapping_that_cannot_run_is_reported_and_does_not_stop_others(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """DESIGN §1.6, spec §1.6: the missing queue is reported with AWS's message; /readyz is not held up."""
    good = make_queue()
    missing_arn = good.arn.rsplit(":", 1)[0] + ":does-not-exist"
    poller = await start_poller(
        [
            {"Name": "missing", "EventSourceArn": missing_arn, "FunctionName": function_server.url},
            {"Name": "good", "EventSourceArn": good.arn, "FunctionName": function_server.url},
        ]
    )
    sqs.send_message(QueueUrl=good.url, MessageBody="fine")
    await wait_until(lambda: function_server.bodies() == ["fine"], what="good mapping delivers")
    states = {m["Name"]: m for m in poller.status()["mappings"]}
    assert states["good"]["State"] == "Enabled"
    assert states["missing"]["State"] == "Creating"
    assert states["missing"]["StateTransitionReason"] == (
        "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. "
        "SQS Error Message: The specified queue does not exist."
    )
    assert poller.metric("poller_mapping_state", mapping="missing", state="Enabled") == 0
    assert poller.metric("poller_mapping_state", mapping="good", state="Enabled") == 1
    assert poller.ready()


async def test_visibility_timeout_shorter_than_function_timeout_is_rejected(
    make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §1.6: AWS's message when the queue's visibility timeout is below FunctionTimeout."""
    queue = make_queue(visibility=2)
    poller = await start_poller(
        [
            {
                "Name": "short",
                "EventSourceArn": queue.arn,
                "FunctionName": function_server.url,
                "FunctionTimeout": 5,
            }
        ]
    )
    mapping = poller.status()["mappings"][0]
    assert (
        mapping["StateTransitionReason"]
        == "Queue visibility timeout: 2 seconds is less than Function timeout: 5 seconds"
    )


async def test_kill_9_mid_run_loses_nothing(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """DESIGN §3: a crash at any point loses nothing; a new process delivers every message at least once."""
    queue = make_queue(visibility=2)

    function_server.behaviour = succeed_after(0.05)
    bodies = {f"m{i}" for i in range(40)}
    for body in sorted(bodies):
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)
    mapping = {
        "Name": "crashy",
        "EventSourceArn": queue.arn,
        "FunctionName": function_server.url,
        "BatchSize": 2,
        "ScalingConfig": {"MaximumConcurrency": 2},
    }
    first = await start_poller([mapping])
    await wait_until(lambda: len(function_server.records) >= 6, what="some progress")
    first.kill()
    assert first.proc.returncode == -9
    await start_poller([mapping])
    await wait_until(
        lambda: set(function_server.bodies()) == bodies, timeout=40, what="every message delivered"
    )
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), what="queue empty")


async def test_sigterm_drains_in_flight_and_hands_back_the_rest(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """ops anchors §7.2: in-flight batches finish and are deleted; buffered ones are visible again at once."""
    queue = make_queue(visibility=30)
    started = asyncio.Event()

    async def slow(_: dict[str, Any]) -> web.StreamResponse:
        started.set()
        await asyncio.sleep(1.5)
        return web.json_response(None)

    function_server.behaviour = slow
    for i in range(10):
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"m{i}")
    poller = await start_poller(
        [
            {
                "Name": "drain",
                "EventSourceArn": queue.arn,
                "FunctionName": function_server.url,
                "BatchSize": 1,
                "ScalingConfig": {"MaximumConcurrency": 2},
                "FunctionTimeout": 5,
            }
        ]
    )
    await asyncio.wait_for(started.wait(), 20)
    await wait_until(
        lambda: poller.metric("poller_buffered_records", mapping="drain") > 0, what="messages buffered"
    )
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, poller.terminate)
    assert code == 0
    invoked = len(function_server.records)
    assert 1 <= invoked <= 4
    # Everything invoked finished and was deleted; nothing stays invisible for the 30 s timeout.
    assert queue_depth(sqs, queue) == (10 - invoked, 0)
    events = [line.get("event") for line in poller.logs()]
    assert "drain_started" in events
    assert "messages_given_back" in events


async def test_visibility_is_extended_while_a_long_invocation_runs(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.1 item 7: window + function time beyond the visibility timeout must not cause a redelivery."""
    queue = make_queue(visibility=2)

    function_server.behaviour = succeed_after(1.8)
    sqs.send_message(QueueUrl=queue.url, MessageBody="long")
    await start_poller(
        [
            {
                "Name": "long",
                "EventSourceArn": queue.arn,
                "FunctionName": function_server.url,
                "BatchSize": 20,
                "MaximumBatchingWindowInSeconds": 1,
                "FunctionTimeout": 2,
            }
        ]
    )
    await wait_until(lambda: len(function_server.records) == 1, what="first delivery")
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), timeout=10, what="deleted")
    assert len(function_server.records) == 1
    assert function_server.records[0]["attributes"]["ApproximateReceiveCount"] == "1"


def test_validate_reports_file_line_mapping_and_field(tmp_path: Path) -> None:
    """DESIGN §1.2: `poller validate` prints file:line: Mapping 'name': field: message and exits non-zero."""
    (tmp_path / "mappings").mkdir()
    (tmp_path / "poller.yaml").write_text("mappings: [mappings/]\n")
    bad = tmp_path / "mappings" / "orders.yaml"
    bad.write_text(
        "Name: orders\n"
        "EventSourceArn: arn:aws:sqs:us-east-1:123456789012:orders\n"
        "FunctionName: python:handlers.orders.handle\n"
        "BatchSize: 50\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "poller", "validate", "--config", str(tmp_path / "poller.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"{bad}:4: Mapping 'orders': BatchSize: Maximum batch window in seconds must be greater than 0 "
        "if maximum batch size is greater than 10"
    ) in result.stdout
