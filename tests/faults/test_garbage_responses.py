"""A function that answers garbage (DESIGN §3, spec §4.1–§4.2): the AWS-defined treatment, never a
crash.

Each case is one mapping with ReportBatchItemFailures, on its own queue or stream, whose function
answers the first batch with one kind of garbage and every later batch with success. A response
that is not a usable partial-batch response, a connection that breaks, or an answer slower than
FunctionTimeout is a complete failure: SQS deletes nothing, so every message of the batch comes back
after the visibility timeout (ApproximateReceiveCount 2) and is then deleted; Kinesis retries the
whole batch and then checkpoints past it. Meanwhile the process stays alive, /healthz answers 200,
no mapping's source is restarted, and a healthy mapping beside them keeps flowing.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.faults.conftest import assert_alive, crashes, healthy
from tests.integration.conftest import (
    FunctionServer,
    PollerProcess,
    StartPoller,
    free_port,
    put_kinesis,
    queue_depth,
    stream_mapping,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

Respond = Callable[[web.Request, list[str]], Awaitable[web.StreamResponse]]

TEN_MB = 10 * 1024 * 1024


def body(text: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Respond:
    raw = text.encode() if isinstance(text, str) else text

    async def respond(_: web.Request, __: list[str]) -> web.StreamResponse:
        return web.Response(body=raw, status=status, content_type="application/json", headers=headers)

    return respond


def failures(make: Callable[[list[str]], object]) -> Respond:
    """A JSON response built from the batch's item ids."""

    async def respond(_: web.Request, ids: list[str]) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(make(ids)), content_type="application/json")

    return respond


async def closed_before_answering(request: web.Request, _: list[str]) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    raise ConnectionResetError("the function's host went away")


async def closed_mid_body(request: web.Request, _: list[str]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "4096"})
    await response.prepare(request)
    await response.write(b'{"batchItemFailures": [{"itemIdentifier": "')
    assert request.transport is not None
    request.transport.close()
    return response


async def slower_than_the_function_timeout(_: web.Request, __: list[str]) -> web.StreamResponse:
    await asyncio.sleep(3)  # the function's work, past FunctionTimeout (1 s)
    return web.json_response(None)


CASES: dict[str, Respond] = {
    "not-json": body("<html><body>502 Bad Gateway</body></html>"),
    "not-utf8": body(b"\xff\xfe\x00\x81 garbage \xc3\x28"),
    "truncated-json": body('{"batchItemFailures": [{"itemIdentifier": '),
    "nesting-past-any-parser": body("[" * 200_000),
    "huge-not-json": body(b"x" * TEN_MB),
    "huge-unknown-ids": failures(
        lambda ids: {"batchItemFailures": [{"itemIdentifier": f"unknown-{n:08d}"} for n in range(250_000)]}
    ),
    "failures-a-string": failures(lambda ids: {"batchItemFailures": "x"}),
    "failures-an-object": failures(lambda ids: {"batchItemFailures": {"itemIdentifier": ids[0]}}),
    "identifier-a-number": failures(lambda ids: {"batchItemFailures": [{"itemIdentifier": 5}]}),
    "identifier-a-list": failures(lambda ids: {"batchItemFailures": [{"itemIdentifier": [ids[0]]}]}),
    "entry-a-string": failures(lambda ids: {"batchItemFailures": [ids[0]]}),
    "wrong-key": failures(lambda ids: {"batchItemFailures": [{"itemidentifier": ids[0]}]}),
    "unknown-id": failures(lambda ids: {"batchItemFailures": [{"itemIdentifier": "no-such-id"}]}),
    "known-and-unknown-ids": failures(
        lambda ids: {"batchItemFailures": [{"itemIdentifier": ids[0]}, {"itemIdentifier": "no-such-id"}]}
    ),
    "function-error-garbage-body": body(b"\x00\xff{not json", headers={"X-Amz-Function-Error": "Unhandled"}),
    "http-500-garbage-body": body(b"\x00\xff{not json", status=500),
    "closed-before-answering": closed_before_answering,
    "closed-mid-body": closed_mid_body,
    "slower-than-function-timeout": slower_than_the_function_timeout,
}


@dataclass
class ScriptedFunction:
    """One HTTP function for every case: the first batch of a case gets that case's garbage,
    every later batch of it gets success. Events are recorded per case, in arrival order."""

    case_of: Callable[[dict[str, Any]], str]
    ids_of: Callable[[dict[str, Any]], list[str]]
    cases: dict[str, Respond] = field(default_factory=lambda: CASES)
    url: str = ""
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        event = json.loads(await request.read())
        case = self.case_of(event)
        self.calls.setdefault(case, []).append(event)
        if len(self.calls[case]) == 1:
            return await self.cases[case](request, self.ids_of(event))
        return web.json_response({"batchItemFailures": []})

    def first_ids(self, case: str) -> list[str]:
        return self.ids_of(self.calls[case][0])


@asynccontextmanager
async def serving(function: ScriptedFunction) -> AsyncIterator[ScriptedFunction]:
    app = web.Application()
    app.router.add_post("/invoke", function.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    function.url = f"http://127.0.0.1:{port}/invoke"
    try:
        yield function
    finally:
        await runner.cleanup()


async def keep_sending(sqs: Any, queue_url: str, sent: list[str], stop: asyncio.Event) -> None:
    """A healthy mapping's traffic, all through the test: one message every 0.2 s."""
    while not stop.is_set():
        text = f"healthy-{len(sent)}"
        await asyncio.to_thread(sqs.send_message, QueueUrl=queue_url, MessageBody=text)
        sent.append(text)
        try:
            async with asyncio.timeout(0.2):  # the writer's pace
                await stop.wait()
        except TimeoutError:
            pass


def assert_never_crashed(poller: PollerProcess) -> None:
    assert_alive(poller)
    assert crashes(poller) == [], crashes(poller)[:3]
    assert "Traceback" not in poller.log_path.read_text(errors="replace")


# -- SQS -------------------------------------------------------------------------------------------


async def test_sqs_garbage_is_a_complete_failure_and_the_messages_come_back(
    sqs: Any, make_queue: Any, other_function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §4.2: a response that is not a valid partial batch response (invalid JSON, wrong types,
    a closed connection) is a complete failure: every message returns to the queue."""
    queues = {case: make_queue(visibility=2, name=f"garbage-{case}") for case in CASES}
    case_of_arn = {q.arn: case for case, q in queues.items()}
    function = ScriptedFunction(
        case_of=lambda event: case_of_arn[event["Records"][0]["eventSourceARN"]],
        ids_of=lambda event: [r["messageId"] for r in event["Records"]],
    )
    healthy_queue = make_queue(visibility=2, name="garbage-healthy-neighbour")
    sent: list[str] = []
    stop = asyncio.Event()
    async with serving(function):
        for queue in queues.values():
            sqs.send_message_batch(
                QueueUrl=queue.url, Entries=[{"Id": b, "MessageBody": b} for b in ("m1", "m2", "m3")]
            )
        mappings = [
            {
                "Name": f"sqs-{case}",
                "EventSourceArn": queue.arn,
                "FunctionName": function.url,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "FunctionTimeout": 1,
            }
            for case, queue in queues.items()
        ]
        mappings.append(
            {
                "Name": "sqs-healthy",
                "EventSourceArn": healthy_queue.arn,
                "FunctionName": other_function_server.url,
            }
        )
        writer = asyncio.create_task(keep_sending(sqs, healthy_queue.url, sent, stop))
        poller = await start_poller(mappings)
        await wait_until(lambda: set(function.calls) == set(CASES), timeout=60, what="a first batch per case")
        await wait_until(
            lambda: all(queue_depth(sqs, q) == (0, 0) for q in queues.values()),
            timeout=90,
            what="every garbage case's messages delivered again and deleted",
        )
        stop.set()
        await writer
        await wait_until(
            lambda: set(sent) <= set(other_function_server.bodies()), timeout=30, what="the healthy mapping"
        )

    for case in CASES:
        records = [r for event in function.calls[case] for r in event["Records"]]
        garbage_answered = set(function.first_ids(case))
        redelivered = {r["messageId"] for r in records if r["attributes"]["ApproximateReceiveCount"] != "1"}
        # Complete failure: every message of the garbage-answered batch came back; nothing was deleted.
        assert garbage_answered <= redelivered, case
        assert {r["body"] for r in records} == {"m1", "m2", "m3"}, case
        name = f"sqs-{case}"
        failed = poller.metric("poller_invocations_total", mapping=name, outcome="error") + poller.metric(
            "poller_invocations_total", mapping=name, outcome="timeout"
        )
        assert failed >= 1, case
        assert poller.metric("poller_invocations_total", mapping=name, outcome="success") >= 1, case
    assert (
        poller.metric(
            "poller_invocations_total", mapping="sqs-slower-than-function-timeout", outcome="timeout"
        )
        >= 1
    )
    assert len(sent) >= 5, "the healthy mapping should have had traffic throughout"
    assert_never_crashed(poller)
    assert {m["Name"]: m["State"] for m in poller.status()["mappings"]} == {
        m["Name"]: "Enabled" for m in mappings
    }


# -- Kinesis ---------------------------------------------------------------------------------------


def sequence_numbers(event: dict[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


async def test_kinesis_garbage_is_a_complete_failure_and_the_batch_is_retried(
    sqs: Any,
    make_queue: Any,
    make_stream: Any,
    kinesis: Any,
    other_function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    """spec §4.2 (and §5.2): garbage is a complete failure, so the whole batch is retried under the
    stream's retry rules and the shard's checkpoint does not pass it."""
    streams = {case: make_stream() for case in CASES}
    case_of_arn = {s.arn: case for case, s in streams.items()}
    function = ScriptedFunction(
        case_of=lambda event: case_of_arn[event["Records"][0]["eventSourceARN"]], ids_of=sequence_numbers
    )
    last_sequence: dict[str, str] = {}
    for case, stream in streams.items():
        written = put_kinesis(kinesis, stream, [("k", f"{case}-{i}".encode()) for i in range(3)])
        last_sequence[case] = written[-1]["SequenceNumber"]
    healthy_queue = make_queue(visibility=2, name="garbage-kinesis-healthy-neighbour")
    sent: list[str] = []
    stop = asyncio.Event()
    async with serving(function):
        mappings = [
            stream_mapping(
                f"kinesis-{case}",
                stream.arn,
                function.url,
                BatchSize=10,
                MaximumRetryAttempts=3,
                FunctionResponseTypes=["ReportBatchItemFailures"],
                FunctionTimeout=1,
            )
            for case, stream in streams.items()
        ]
        mappings.append(
            {
                "Name": "sqs-healthy",
                "EventSourceArn": healthy_queue.arn,
                "FunctionName": other_function_server.url,
            }
        )
        writer = asyncio.create_task(keep_sending(sqs, healthy_queue.url, sent, stop))
        poller = await start_poller(mappings)

        def checkpoints() -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for mapping in poller.status()["mappings"]:
                positions = list(mapping["Positions"].values())
                out[mapping["Name"]] = positions[0]["SequenceNumber"] if positions else None
            return out

        await wait_until(
            lambda: all(checkpoints().get(f"kinesis-{c}") == last_sequence[c] for c in CASES),
            timeout=90,
            what="every garbage case retried and checkpointed past its batch",
        )
        stop.set()
        await writer
        await wait_until(
            lambda: set(sent) <= set(other_function_server.bodies()), timeout=30, what="the healthy mapping"
        )

    for case in CASES:
        calls = function.calls[case]
        first = sequence_numbers(calls[0])
        assert len(calls) >= 2, case
        # Complete failure: the whole garbage-answered batch is invoked again, from its first record.
        retried = [s for event in calls[1:] for s in sequence_numbers(event)]
        assert retried[: len(first)] == first, case
        data = [base64.b64decode(r["kinesis"]["data"]).decode() for r in calls[-1]["Records"]]
        assert data[-1] == f"{case}-2", case
        name = f"kinesis-{case}"
        assert poller.metric("poller_retries_total", mapping=name) >= 1, case
        assert poller.metric("poller_records_dropped_total", mapping=name) == 0, case
        assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 0, case
    assert (
        poller.metric(
            "poller_invocations_total", mapping="kinesis-slower-than-function-timeout", outcome="timeout"
        )
        >= 1
    )
    assert len(sent) >= 5
    assert_never_crashed(poller)
    assert healthy(poller)


# -- a response over Lambda's limit ----------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_a_response_over_the_6_mb_limit_is_a_function_error(
    sqs: Any, make_queue: Any, start_poller: StartPoller
) -> None:
    """Lambda's synchronous response payload is capped at 6 MB: a bigger reply is a function error
    (`Function.ResponseSizeTooLarge`), so the batch fails whatever the body says; and reading it
    whole breaks the bounded-memory guarantee (DESIGN §3) for a target that answers without end."""
    padding = "x" * TEN_MB
    oversized = failures(lambda ids: {"batchItemFailures": [], "padding": padding})
    function = ScriptedFunction(
        case_of=lambda event: "oversized",
        ids_of=lambda event: [r["messageId"] for r in event["Records"]],
        cases={"oversized": oversized},
    )
    queue = make_queue(visibility=2)
    async with serving(function):
        sqs.send_message(QueueUrl=queue.url, MessageBody="m1")
        mapping = {
            "Name": "oversized",
            "EventSourceArn": queue.arn,
            "FunctionName": function.url,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        }
        poller = await start_poller([mapping])
        await wait_until(
            lambda: len(function.calls.get("oversized", [])) >= 1, timeout=30, what="a first batch"
        )
        await wait_until(
            lambda: poller.metric("poller_invocations_total", mapping="oversized") >= 1,
            timeout=30,
            what="an outcome",
        )
        assert poller.metric("poller_invocations_total", mapping="oversized", outcome="error") == 1
        await wait_until(lambda: len(function.calls["oversized"]) >= 2, timeout=30, what="the message again")
    assert_never_crashed(poller)
