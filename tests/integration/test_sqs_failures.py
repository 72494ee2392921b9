"""SQS failures through `poller run`: retry by visibility timeout, redrive, partial batches (spec §4.2, §5.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import FunctionServer, StartPoller, drain_queue, queue_depth, wait_until

pytestmark = pytest.mark.integration


async def test_failed_batch_is_redelivered_after_the_visibility_timeout(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.1 / §11 Q2: same messageId, ApproximateReceiveCount 2, a new receiptHandle."""
    queue = make_queue(visibility=1)
    calls = 0

    async def fail_once(_: dict[str, Any]) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return (
            web.json_response({"errorMessage": "boom"}, status=500) if calls == 1 else web.json_response(None)
        )

    function_server.behaviour = fail_once
    sqs.send_message(QueueUrl=queue.url, MessageBody="retry-me")
    poller = await start_poller(
        [{"Name": "retry", "EventSourceArn": queue.arn, "FunctionName": function_server.url}]
    )
    await wait_until(lambda: len(function_server.records) == 2, what="redelivery")
    first, second = function_server.records
    assert first["messageId"] == second["messageId"]
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert second["attributes"]["ApproximateReceiveCount"] == "2"
    assert first["receiptHandle"] != second["receiptHandle"]
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), what="deleted after success")
    assert poller.metric("poller_invocations_total", mapping="retry", outcome="error") == 1
    assert poller.metric("poller_records_failed_total", mapping="retry") == 1


async def test_poison_message_reaches_the_queues_dlq_after_max_receive_count(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.1 item 5: the queue's redrive policy moves it; the function ran exactly maxReceiveCount times."""
    dlq = make_queue(visibility=30)
    queue = make_queue(visibility=1, dlq=dlq, max_receive=2)

    async def always_fail(_: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(
            {"errorType": "Poison", "errorMessage": "no"}, headers={"X-Amz-Function-Error": "Unhandled"}
        )

    function_server.behaviour = always_fail
    sent = sqs.send_message(QueueUrl=queue.url, MessageBody="poison")
    await start_poller([{"Name": "dlq", "EventSourceArn": queue.arn, "FunctionName": function_server.url}])
    await wait_until(lambda: queue_depth(sqs, dlq)[0] == 1, timeout=30, what="message in the DLQ")
    assert len(function_server.records) == 2
    dead = drain_queue(sqs, dlq)
    assert [(m["MessageId"], m["Body"]) for m in dead] == [(sent["MessageId"], "poison")]


# Each case: the function's first response to a batch of m1, m2, m3, and which messages must come back.
# spec §4.2's table for SQS, row by row.
PARTIAL_CASES: dict[str, tuple[int, str, set[str], bool]] = {
    # name: (status, body template, redelivered, ReportBatchItemFailures enabled)
    "null": (200, "null", set(), True),
    "empty-body": (200, "", set(), True),
    "empty-object": (200, "{}", set(), True),
    "empty-array": (200, "[]", set(), True),
    "empty-list": (200, '{"batchItemFailures": []}', set(), True),
    "null-list": (200, '{"batchItemFailures": null}', set(), True),
    "valid-list": (200, '{"batchItemFailures": [{"itemIdentifier": "<m2>"}]}', {"m2"}, True),
    "two-listed": (
        200,
        '{"batchItemFailures": [{"itemIdentifier": "<m1>"}, {"itemIdentifier": "<m3>"}]}',
        {"m1", "m3"},
        True,
    ),
    "invalid-json": (200, "this is not json", {"m1", "m2", "m3"}, True),
    "missing-identifier": (200, '{"batchItemFailures": [{"foo": "notvalid"}]}', {"m1", "m2", "m3"}, True),
    "empty-identifier": (200, '{"batchItemFailures": [{"itemIdentifier": ""}]}', {"m1", "m2", "m3"}, True),
    "null-identifier": (200, '{"batchItemFailures": [{"itemIdentifier": null}]}', {"m1", "m2", "m3"}, True),
    "unknown-identifier": (
        200,
        '{"batchItemFailures": [{"itemIdentifier": "123"}]}',
        {"m1", "m2", "m3"},
        True,
    ),
    "not-enabled": (200, '{"batchItemFailures": [{"itemIdentifier": "<m2>"}]}', set(), False),
    "function-error": (500, '{"batchItemFailures": [{"itemIdentifier": "<m2>"}]}', {"m1", "m2", "m3"}, True),
}


async def test_every_partial_batch_response_variant(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §4.2 and §11 Q3/Q4: only the messages the classification table fails come back."""
    # Visibility 3 s > window 1 s + function timeout 1 s, so no extension (spec §5.1 item 7) delays the retry.
    queues = {name: make_queue(visibility=3, name=f"partial-{name}") for name in PARTIAL_CASES}
    arn_to_case = {q.arn: name for name, q in queues.items()}
    answered: set[str] = set()

    async def scripted(event: dict[str, Any]) -> web.StreamResponse:
        case = arn_to_case[event["Records"][0]["eventSourceARN"]]
        if case in answered:
            return web.json_response(None)
        answered.add(case)
        status, body, _, _ = PARTIAL_CASES[case]
        assert sorted(r["body"] for r in event["Records"]) == ["m1", "m2", "m3"], "one batch of three"
        for record in event["Records"]:
            body = body.replace(f"<{record['body']}>", record["messageId"])
        return web.Response(status=status, text=body, content_type="application/json")

    function_server.behaviour = scripted
    mappings = []
    for name, queue in queues.items():
        for body in ("m1", "m2", "m3"):
            sqs.send_message(QueueUrl=queue.url, MessageBody=body)
        mapping: dict[str, Any] = {
            "Name": f"partial-{name}",
            "EventSourceArn": queue.arn,
            "FunctionName": function_server.url,
            "MaximumBatchingWindowInSeconds": 1,
        }
        if PARTIAL_CASES[name][3]:
            mapping["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        mappings.append(mapping)
    await start_poller(mappings)
    await wait_until(lambda: answered == set(PARTIAL_CASES), what="a first batch for every case")
    await wait_until(
        lambda: all(queue_depth(sqs, q) == (0, 0) for q in queues.values()),
        timeout=30,
        what="every queue empty",
    )
    for name, queue in queues.items():
        records = [r for r in function_server.records if r["eventSourceARN"] == queue.arn]
        redelivered = {r["body"] for r in records if r["attributes"]["ApproximateReceiveCount"] != "1"}
        assert redelivered == PARTIAL_CASES[name][2], name


POWERTOOLS_HANDLER = """
import json
from pathlib import Path

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
SEEN = Path(__file__).with_name("seen.jsonl")


def record_handler(record: SQSRecord) -> None:
    with SEEN.open("a") as out:
        out.write(json.dumps({"body": record.body, "count": int(record.attributes.approximate_receive_count),
                              "id": record.message_id}) + "\\n")
    if "bad" in record.body:
        raise ValueError(f"cannot process {record.body}")


def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
"""


async def test_unchanged_powertools_batch_processor_reports_the_only_retried_messages(
    sqs: Any, make_queue: Any, start_poller: StartPoller
) -> None:
    """DESIGN §1.5: an AWS Lambda Powertools BatchProcessor handler runs unchanged; its reported
    failures, and only they, come back (spec §4.2)."""
    queue = make_queue(visibility=3)
    for body in ("good-1", "bad-1", "good-2", "bad-2", "good-3"):
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)
    poller = await start_poller(
        [
            {
                "Name": "powertools",
                "EventSourceArn": queue.arn,
                "FunctionName": "python:pt_handler.handler",
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "MaximumBatchingWindowInSeconds": 1,
            }
        ],
        handlers={"pt_handler": POWERTOOLS_HANDLER},
    )
    seen_path = Path(poller.config_path).with_name("seen.jsonl")

    def seen() -> list[dict[str, Any]]:
        if not seen_path.exists():
            return []
        return [json.loads(line) for line in seen_path.read_text().splitlines()]

    # Bad messages keep failing: each comes back again and again; good ones never do.
    await wait_until(
        lambda: (
            sum(1 for s in seen() if s["body"] == "bad-1" and s["count"] >= 3) >= 1
            and sum(1 for s in seen() if s["body"] == "bad-2" and s["count"] >= 3) >= 1
        ),
        timeout=40,
        what="bad messages retried twice",
    )
    good = [s for s in seen() if s["body"].startswith("good")]
    assert sorted(s["body"] for s in good) == ["good-1", "good-2", "good-3"]
    assert all(s["count"] == 1 for s in good)
    # The first batch is partial; later ones hold only bad messages, and Powertools raises when every
    # record of a batch fails, which is a function error.
    assert poller.metric("poller_invocations_total", mapping="powertools", outcome="partial") >= 1
    assert poller.metric("poller_invocations_total", mapping="powertools", outcome="error") >= 1
    assert poller.metric("poller_records_deleted_total", mapping="powertools") == 3


async def test_throttled_invoke_is_retried_in_hand_without_counting_as_a_receive(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §4.1, §5.1 item 6: a 429 means the function never ran; the batch is retried (after
    Retry-After) while its messages are still invisible, so the queue sees one receive."""
    queue = make_queue(visibility=10)
    calls = 0

    async def throttle_once(_: dict[str, Any]) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.json_response(None)

    function_server.behaviour = throttle_once
    sqs.send_message(QueueUrl=queue.url, MessageBody="throttled")
    poller = await start_poller(
        [{"Name": "throttle", "EventSourceArn": queue.arn, "FunctionName": function_server.url}]
    )
    await wait_until(
        lambda: queue_depth(sqs, queue) == (0, 0) and len(function_server.records) == 2,
        what="retried and deleted",
    )
    assert [r["attributes"]["ApproximateReceiveCount"] for r in function_server.records] == ["1", "1"]
    assert poller.metric("poller_invocations_total", mapping="throttle", outcome="throttled") == 1
    assert poller.metric("poller_invocations_total", mapping="throttle", outcome="success") == 1
    assert poller.metric("poller_records_failed_total", mapping="throttle") == 0
