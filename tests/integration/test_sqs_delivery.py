"""SQS delivery through `poller run`: the event payload, batching and concurrency (spec §2, §3.1, §9.1)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest

from tests.integration.conftest import (
    ACCOUNT,
    REGION,
    FunctionServer,
    StartPoller,
    queue_depth,
    succeed_after,
    wait_until,
)

pytestmark = pytest.mark.integration


def mapping(name: str, queue_arn: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "EventSourceArn": queue_arn, "FunctionName": url, **extra}


async def test_event_payload_matches_lambda_sqs_record(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §3.1: every field of the SQS record, lower-camel messageAttributes, base64 binary values."""
    queue = make_queue()
    sent = sqs.send_message(
        QueueUrl=queue.url,
        MessageBody='{"orderId": 42}',
        MessageAttributes={
            "Author": {"DataType": "String", "StringValue": "Jane"},
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        },
    )
    poller = await start_poller([mapping("payload", queue.arn, function_server.url)])
    await wait_until(lambda: len(function_server.records) == 1, what="one record")
    event = function_server.events[0]
    assert list(event) == ["Records"]
    record = event["Records"][0]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfMessageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == '{"orderId": 42}'
    assert record["md5OfBody"] == hashlib.md5(b'{"orderId": 42}').hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue.name}"
    assert record["awsRegion"] == REGION
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert all(isinstance(v, str) for v in record["attributes"].values())
    assert record["messageAttributes"] == {
        "Author": {
            "stringValue": "Jane",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "Blob": {
            "binaryValue": base64.b64encode(b"\x00\x01\xff").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), what="message deleted")
    await wait_until(
        lambda: poller.metric("poller_records_deleted_total", mapping="payload") == 1,
        what="records_deleted_total",
    )
    assert poller.metric("poller_invocations_total", mapping="payload", outcome="success") == 1
    assert poller.metric("poller_records_polled_total", mapping="payload") == 1
    assert poller.metric("poller_records_invoked_total", mapping="payload") == 1
    assert poller.terminate() == 0
    # DESIGN §1.8: one log line per batch attempt, and never a record body.
    attempts = [line for line in poller.logs() if line.get("event") == "batch_attempt"]
    assert len(attempts) == 1
    assert {
        "mapping",
        "source",
        "batch_id",
        "records",
        "attempt",
        "outcome",
        "duration_ms",
        "request_id",
    } <= set(attempts[0])
    assert "orderId" not in poller.log_path.read_text()


async def test_md5_of_message_attributes_follows_the_batching_window(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §11 Q1: no attributes → key omitted with window 0, `null` with a window > 0."""
    no_window, with_window = make_queue(), make_queue()
    sqs.send_message(QueueUrl=no_window.url, MessageBody="a")
    sqs.send_message(QueueUrl=with_window.url, MessageBody="b")
    await start_poller(
        [
            mapping("nowindow", no_window.arn, function_server.url),
            mapping("window", with_window.arn, function_server.url, MaximumBatchingWindowInSeconds=1),
        ]
    )
    await wait_until(lambda: len(function_server.records) == 2, what="two records")
    by_body = {r["body"]: r for r in function_server.records}
    assert "md5OfMessageAttributes" not in by_body["a"]
    assert by_body["b"]["md5OfMessageAttributes"] is None
    assert by_body["a"]["messageAttributes"] == {} == by_body["b"]["messageAttributes"]


async def test_batching_window_gathers_up_to_batch_size(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §2: a batch is sent at BatchSize or when the window elapses, whichever comes first."""
    queue = make_queue(visibility=30)
    for i in range(25):
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"m{i}")
    poller = await start_poller(
        [
            mapping(
                "window",
                queue.arn,
                function_server.url,
                BatchSize=20,
                MaximumBatchingWindowInSeconds=2,
                ScalingConfig={"MaximumConcurrency": 2},
            )
        ]
    )
    await wait_until(lambda: len(function_server.records) == 25, what="all 25 records")
    sizes = sorted(len(e["Records"]) for e in function_server.events)
    assert sizes == [5, 20], sizes
    assert sorted(function_server.bodies()) == sorted(f"m{i}" for i in range(25))
    await wait_until(
        lambda: poller.metric("poller_batch_size_records_count", mapping="window") == 2,
        what="batch_size histogram",
    )
    assert poller.metric("poller_batch_size_records_sum", mapping="window") == 25


async def test_window_zero_invokes_as_soon_as_records_arrive(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §2: with window 0 the function is invoked with what is available, without waiting."""
    queue = make_queue()
    await start_poller([mapping("fast", queue.arn, function_server.url, BatchSize=10)])
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    sqs.send_message(QueueUrl=queue.url, MessageBody="now")
    await wait_until(lambda: len(function_server.records) == 1, what="record")
    assert loop.time() - sent_at < 1.5


async def test_maximum_concurrency_is_never_exceeded(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §9.1: ScalingConfig.MaximumConcurrency caps concurrent invocations of the mapping."""
    queue = make_queue(visibility=30)

    function_server.behaviour = succeed_after(0.3)
    for i in range(16):
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"m{i}")
    poller = await start_poller(
        [
            mapping(
                "capped", queue.arn, function_server.url, BatchSize=1, ScalingConfig={"MaximumConcurrency": 2}
            )
        ]
    )
    await wait_until(lambda: len(function_server.records) == 16, timeout=30, what="16 records")
    assert function_server.max_concurrent == 2
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), what="queue empty")
    assert poller.metric("poller_in_flight_batches", mapping="capped") <= 2


async def test_concurrency_scales_beyond_one_batch_without_a_cap(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §9.1: without MaximumConcurrency, several batches run at once while a backlog exists."""
    queue = make_queue(visibility=30)

    function_server.behaviour = succeed_after(0.5)
    for i in range(20):
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"m{i}")
    await start_poller([mapping("scaled", queue.arn, function_server.url, BatchSize=1)])
    await wait_until(lambda: len(function_server.records) == 20, timeout=30, what="20 records")
    assert function_server.max_concurrent >= 3


async def test_batches_stay_under_the_6_mb_payload_cap(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §2: a batch is also cut when its payload, metadata included, would pass 6 MB."""
    queue = make_queue(visibility=30)
    big = "x" * 250_000
    for i in range(30):
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"{i:03d}{big}")
    await start_poller(
        [
            mapping(
                "big",
                queue.arn,
                function_server.url,
                BatchSize=100,
                MaximumBatchingWindowInSeconds=2,
                ScalingConfig={"MaximumConcurrency": 2},
            ),
        ]
    )
    await wait_until(lambda: len(function_server.records) == 30, timeout=30, what="all 30 large records")
    assert len(function_server.events) >= 2
    for event in function_server.events:
        assert len(json.dumps(event, separators=(",", ":")).encode()) <= 6 * 1024 * 1024
    assert sorted(r["body"][:3] for r in function_server.records) == [f"{i:03d}" for i in range(30)]
