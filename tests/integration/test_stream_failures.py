"""Stream error handling through the real `poller run` (spec §5.2, §6.2): retries to exhaustion,
bisect, partial batches, record age, throttles and DynamoDB Streams, each ending in the exact
on-failure record a Lambda event-source mapping writes to an SQS destination. The other destination
kinds, drops and a blocked destination are in test_stream_failures_destinations.py."""

from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aiohttp import web

from tests.integration.conftest import (
    ACCOUNT,
    REGION,
    FunctionServer,
    PollerProcess,
    StartPoller,
    Stream,
    put_kinesis,
    stream_mapping,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

# -- the function: scripted replies, each with its own request id ----------------------------------


@dataclass(frozen=True)
class Reply:
    label: str
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


OK = Reply("ok")
UNHANDLED = Reply(
    "unhandled",
    200,
    {"errorType": "Poison", "errorMessage": "cannot process"},
    {"X-Amz-Function-Error": "Unhandled"},
)
HTTP_500 = Reply("http-500", 500, {"errorMessage": "internal error"})
THROTTLED = Reply("throttled", 429, {"message": "Rate exceeded"}, {"Retry-After": "1"})


def partial(*ids: str) -> Reply:
    return Reply("partial", 200, {"batchItemFailures": [{"itemIdentifier": i} for i in ids]})


@dataclass
class Call:
    """One request the function received: the records it saw and what it answered."""

    event: dict[str, Any]
    request_id: str
    at: float
    reply: str = ""

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.event["Records"])

    @property
    def sequence_numbers(self) -> list[str]:
        return [sequence_number(r) for r in self.records]

    @property
    def data(self) -> list[str]:
        return [record_data(r) for r in self.records]


def sequence_number(record: dict[str, Any]) -> str:
    return str(
        record["kinesis"]["sequenceNumber"] if "kinesis" in record else record["dynamodb"]["SequenceNumber"]
    )


def arrival(record: dict[str, Any]) -> float:
    if "kinesis" in record:
        return float(record["kinesis"]["approximateArrivalTimestamp"])
    return float(record["dynamodb"]["ApproximateCreationDateTime"])


def record_data(record: dict[str, Any]) -> str:
    if "kinesis" in record:
        return base64.b64decode(record["kinesis"]["data"]).decode()
    return str(record["dynamodb"]["Keys"]["id"]["S"])


class Function:
    """Answers each call as `decide` says, with a fresh `X-Amz-Request-Id` (which the HTTP target
    reports as the invocation's request id), and remembers every call in order."""

    def __init__(self, server: FunctionServer, decide: Callable[[Call], Reply]) -> None:
        self.calls: list[Call] = []
        self.decide = decide
        server.behaviour = self.handle

    async def handle(self, event: dict[str, Any]) -> web.StreamResponse:
        call = Call(event, str(uuid.uuid4()), time.time())
        reply = self.decide(call)
        call.reply = reply.label
        self.calls.append(call)
        headers = {"X-Amz-Request-Id": call.request_id, **reply.headers}
        return web.json_response(reply.body, status=reply.status, headers=headers)

    def data(self) -> list[list[str]]:
        return [c.data for c in self.calls]


def fail_when_present(poison: Callable[[str], bool], failure: Reply = UNHANDLED) -> Callable[[Call], Reply]:
    return lambda call: failure if any(poison(d) for d in call.data) else OK


# -- the expected record ---------------------------------------------------------------------------

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def iso_millis(epoch: float) -> str:
    millis = round(epoch * 1000)
    return f"{datetime.fromtimestamp(millis // 1000, tz=UTC):%Y-%m-%dT%H:%M:%S}.{millis % 1000:03d}Z"


def iso_seconds(epoch: float) -> str:
    return f"{datetime.fromtimestamp(math.floor(epoch), tz=UTC):%Y-%m-%dT%H:%M:%S}Z"


def function_arn(mapping: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{mapping}"


def checked_timestamp(record: dict[str, Any], *, not_before: float) -> str:
    """spec §6.2: ISO-8601 UTC with milliseconds and Z, taken when the records were discarded."""
    stamp = str(record["timestamp"])
    assert TIMESTAMP.fullmatch(stamp), stamp
    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert not_before - 0.002 <= at <= time.time() + 0.002, (stamp, not_before)
    return stamp


def expected_record(
    *,
    mapping: str,
    condition: str,
    invoke_count: int,
    last_call: Call,
    discarded: list[dict[str, Any]],
    shard_id: str,
    stream_arn: str,
    timestamp: str,
    response: dict[str, Any] | None,
    dynamodb: bool = False,
) -> dict[str, Any]:
    """The spec §6.2 document for `discarded` (the records as the function saw them)."""
    stamp = iso_seconds if dynamodb else iso_millis
    record: dict[str, Any] = {
        "requestContext": {
            "requestId": last_call.request_id,
            "functionArn": function_arn(mapping),
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        }
    }
    if response is not None:
        record["responseContext"] = response
    record["version"] = "1.0"
    record["timestamp"] = timestamp
    record["DDBStreamBatchInfo" if dynamodb else "KinesisBatchInfo"] = {
        "shardId": shard_id,
        "startSequenceNumber": sequence_number(discarded[0]),
        "endSequenceNumber": sequence_number(discarded[-1]),
        "approximateArrivalOfFirstRecord": stamp(arrival(discarded[0])),
        "approximateArrivalOfLastRecord": stamp(arrival(discarded[-1])),
        "batchSize": len(discarded),
        "streamArn": stream_arn,
    }
    return record


UNHANDLED_RESPONSE = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}


# -- AWS helpers -----------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


class Inbox:
    """Everything that arrived in an SQS queue, received and deleted as it comes."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.bodies: list[str] = []

    def poll(self) -> int:
        reply = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in reply.get("Messages", []):
            self.bodies.append(message["Body"])
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return len(self.bodies)

    async def wait_for(self, count: int, *, timeout: float) -> list[dict[str, Any]]:
        await wait_until(
            lambda: self.poll() >= count, timeout=timeout, what=f"{count} destination message(s)"
        )
        return [json.loads(b) for b in self.bodies]


def new_queue(sqs: Any, name: str) -> Inbox:
    return Inbox(sqs, sqs.create_queue(QueueName=name)["QueueUrl"])


def position(poller: PollerProcess, shard_id: str) -> str | None:
    positions = poller.status()["mappings"][0]["Positions"]
    entry = positions.get(shard_id)
    return None if entry is None else entry["SequenceNumber"]


async def wait_checkpoint(
    poller: PollerProcess, shard_id: str, sequence: str, *, timeout: float = 15
) -> None:
    await wait_until(
        lambda: position(poller, shard_id) == sequence, timeout=timeout, what=f"checkpoint at {sequence}"
    )


def write(kinesis: Any, stream: Stream, data: list[str]) -> tuple[str, list[str]]:
    """Write `data` in order; (shard id, sequence numbers)."""
    replies = put_kinesis(kinesis, stream, [("pk", d.encode()) for d in data])
    assert len({r["ShardId"] for r in replies}) == 1
    return replies[0]["ShardId"], [r["SequenceNumber"] for r in replies]


def with_destination(destination: str, **settings: Any) -> dict[str, Any]:
    return {"DestinationConfig": {"OnFailure": {"Destination": destination}}, **settings}


# -- 1. RetryAttemptsExhausted → SQS ---------------------------------------------------------------


@pytest.mark.parametrize("failure", [UNHANDLED, HTTP_500], ids=lambda r: r.label)
async def test_retry_attempts_exhausted_sends_the_exact_record_to_sqs(
    failure: Reply,
    make_stream: Any,
    kinesis: Any,
    sqs: Any,
    function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    """spec §5.2: MaximumRetryAttempts 2 → the batch runs 3 times, then one record with
    approximateInvokeCount 3 (MaxRetry + 1) goes to the queue, the records are checkpointed and the
    next batch flows. §6.2: statusCode is 200 even for function errors (it is the invoke's status,
    not the function's), functionError Unhandled — also when an HTTP function answers 500 (the
    http-500 case fails today: poller/core/failure_records.py response_context() copies the HTTP
    status of FunctionFailed into statusCode)."""
    stream = make_stream()
    name = "exhausted"
    inbox = new_queue(sqs, unique("dest"))
    shard, seqs = write(kinesis, stream, ["bad-0", "bad-1", "good-0", "good-1"])
    function = Function(function_server, fail_when_present(lambda d: d.startswith("bad"), failure))
    poller = await start_poller(
        [
            stream_mapping(
                name,
                stream.arn,
                function_server.url,
                BatchSize=2,
                MaximumRetryAttempts=2,
                **with_destination(inbox.arn),
            )
        ]
    )
    [record] = await inbox.wait_for(1, timeout=30)
    await wait_checkpoint(poller, shard, seqs[3])

    assert function.data() == [["bad-0", "bad-1"]] * 3 + [["good-0", "good-1"]]
    assert [c.reply for c in function.calls] == [failure.label] * 3 + ["ok"]
    last = function.calls[2]
    assert record == expected_record(
        mapping=name,
        condition="RetryAttemptsExhausted",
        invoke_count=3,
        last_call=last,
        discarded=last.records,
        shard_id=shard,
        stream_arn=stream.arn,
        timestamp=checked_timestamp(record, not_before=last.at),
        response=UNHANDLED_RESPONSE,
    )
    assert inbox.poll() == 1
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 2
    assert poller.metric("poller_retries_total", mapping=name) == 2
    assert poller.metric("poller_invocations_total", mapping=name, outcome="error") == 3
    assert poller.metric("poller_invocations_total", mapping=name, outcome="success") == 1
    assert poller.metric("poller_records_dropped_total", mapping=name) == 0
    assert poller.metric("poller_destination_delivery_failures_total", mapping=name) == 0
    assert poller.terminate() == 0


# -- 3. bisect -------------------------------------------------------------------------------------


async def test_bisect_isolates_the_poison_record_and_its_neighbours_succeed(
    make_stream: Any, kinesis: Any, sqs: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.2 BisectBatchOnFunctionError: the failing batch of 8 is halved (the split consumes no
    retry, left half first), down to the poison record alone, which alone follows
    MaximumRetryAttempts 1 and alone reaches the destination."""
    stream = make_stream()
    name = "bisect"
    inbox = new_queue(sqs, unique("dest"))
    data = [f"r{i}" for i in range(8)]
    shard, seqs = write(kinesis, stream, data)
    function = Function(function_server, fail_when_present(lambda d: d == "r5"))
    poller = await start_poller(
        [
            stream_mapping(
                name,
                stream.arn,
                function_server.url,
                BatchSize=8,
                MaximumRetryAttempts=1,
                BisectBatchOnFunctionError=True,
                **with_destination(inbox.arn),
            )
        ]
    )
    [record] = await inbox.wait_for(1, timeout=30)
    await wait_checkpoint(poller, shard, seqs[7])

    assert (
        function.data()
        == [
            data,  # fails: halve
            data[:4],  # succeeds
            data[4:],  # fails: halve
            ["r4", "r5"],  # fails: halve
            ["r4"],  # succeeds
            ["r5"],  # fails: attempt 1 of the single record
            ["r5"],  # fails: the one retry, then discarded
            ["r6", "r7"],  # the rest of the original batch goes on
        ]
    )
    last = function.calls[6]
    assert record == expected_record(
        mapping=name,
        condition="RetryAttemptsExhausted",
        invoke_count=2,
        last_call=last,
        discarded=last.records,
        shard_id=shard,
        stream_arn=stream.arn,
        timestamp=checked_timestamp(record, not_before=last.at),
        response=UNHANDLED_RESPONSE,
    )
    assert (
        record["KinesisBatchInfo"]["startSequenceNumber"]
        == seqs[5]
        == record["KinesisBatchInfo"]["endSequenceNumber"]
    )
    assert sorted(d for call in function.calls if call.reply == "ok" for d in call.data) == sorted(
        set(data) - {"r5"}
    )
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 1
    assert inbox.poll() == 1


# -- 4. partial batch response ---------------------------------------------------------------------


async def test_partial_failure_retries_the_remainder_as_a_new_batch(
    make_stream: Any, kinesis: Any, sqs: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.2 observed rule (BatchSize 3, MaximumRetryAttempts 3, the last record of the second
    batch always reported): the checkpoint moves before it, it is retried alone with a fresh counter,
    delivered 5 times in all (1 + 1 + 3), and the record says approximateInvokeCount 4, batchSize 1;
    §6.2 / Q7: functionError is null for a partial-batch failure."""
    stream = make_stream()
    name = "partial"
    inbox = new_queue(sqs, unique("dest"))
    data = [f"r{i}" for i in range(8)]
    shard, seqs = write(kinesis, stream, data)
    poison = seqs[5]
    function = Function(
        function_server, lambda call: partial(poison) if poison in call.sequence_numbers else OK
    )
    poller = await start_poller(
        [
            stream_mapping(
                name,
                stream.arn,
                function_server.url,
                BatchSize=3,
                MaximumRetryAttempts=3,
                FunctionResponseTypes=["ReportBatchItemFailures"],
                **with_destination(inbox.arn),
            )
        ]
    )
    [record] = await inbox.wait_for(1, timeout=40)
    await wait_checkpoint(poller, shard, seqs[7])

    assert function.data() == [data[0:3], data[3:6]] + [["r5"]] * 4 + [data[6:8]]
    assert sum(call.data.count("r5") for call in function.calls) == 5
    last = function.calls[5]
    assert record == expected_record(
        mapping=name,
        condition="RetryAttemptsExhausted",
        invoke_count=4,
        last_call=last,
        discarded=last.records,
        shard_id=shard,
        stream_arn=stream.arn,
        timestamp=checked_timestamp(record, not_before=last.at),
        response={"statusCode": 200, "executedVersion": "$LATEST", "functionError": None},
    )
    assert (
        record["KinesisBatchInfo"]["startSequenceNumber"]
        == poison
        == record["KinesisBatchInfo"]["endSequenceNumber"]
    )
    assert poller.metric("poller_invocations_total", mapping=name, outcome="partial") == 5
    assert poller.metric("poller_invocations_total", mapping=name, outcome="success") == 2
    # The remainder's first run is a new batch (attempt 1); its 3 retries are retries.
    assert poller.metric("poller_retries_total", mapping=name) == 3
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 1
    assert inbox.poll() == 1


# -- 5. RecordAgeExceeded --------------------------------------------------------------------------


@pytest.mark.timeout(200)
async def test_record_age_exceeded_while_retrying_forever(
    make_stream: Any, kinesis: Any, sqs: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.2: with MaximumRetryAttempts -1 and MaximumRecordAgeInSeconds 60 a failing record is
    retried (with growing delays) until it is 60 s old, then discarded with RecordAgeExceeded and
    approximateInvokeCount = its invocations; §6.2 / Q8: no responseContext key at all. Slow by
    nature (the age limit cannot go below 60 s)."""
    stream = make_stream()
    name = "aged"
    inbox = new_queue(sqs, unique("dest"))
    shard, [poison] = write(kinesis, stream, ["bad-0"])
    function = Function(function_server, fail_when_present(lambda d: d.startswith("bad")))
    poller = await start_poller(
        [
            stream_mapping(
                name,
                stream.arn,
                function_server.url,
                MaximumRetryAttempts=-1,
                MaximumRecordAgeInSeconds=60,
                **with_destination(inbox.arn),
            )
        ]
    )
    [record] = await inbox.wait_for(1, timeout=150)
    discarded_at = time.time()
    await wait_checkpoint(poller, shard, poison)

    calls = list(function.calls)
    assert len(calls) >= 3
    assert all(c.data == ["bad-0"] and c.reply == "unhandled" for c in calls)
    first_arrival = arrival(calls[0].records[0])
    assert discarded_at - first_arrival >= 60
    # Never invoked once it was older than the limit.
    assert calls[-1].at - first_arrival <= 60.5
    assert "responseContext" not in record
    assert record == expected_record(
        mapping=name,
        condition="RecordAgeExceeded",
        invoke_count=len(calls),
        last_call=calls[-1],
        discarded=calls[-1].records,
        shard_id=shard,
        stream_arn=stream.arn,
        timestamp=checked_timestamp(record, not_before=first_arrival + 60),
        response=None,
    )
    # The shard goes on: a new record is delivered (and succeeds).
    _, [fresh] = write(kinesis, stream, ["good-0"])
    await wait_checkpoint(poller, shard, fresh)
    assert function.data()[len(calls) :] == [["good-0"]]
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 1
    assert poller.metric("poller_records_dropped_total", mapping=name) == 0


# -- 8. throttles ----------------------------------------------------------------------------------


async def test_throttles_do_not_consume_retry_attempts(
    make_stream: Any, kinesis: Any, sqs: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §4.1 / DESIGN §3: a 429 did not run the function, so with MaximumRetryAttempts 1 the
    function still runs twice after two throttles, and the record says approximateInvokeCount 2."""
    stream = make_stream()
    name = "throttled"
    inbox = new_queue(sqs, unique("dest"))
    shard, [poison] = write(kinesis, stream, ["bad-0"])
    replies = iter([THROTTLED, THROTTLED])
    function = Function(function_server, lambda _: next(replies, UNHANDLED))
    poller = await start_poller(
        [
            stream_mapping(
                name, stream.arn, function_server.url, MaximumRetryAttempts=1, **with_destination(inbox.arn)
            )
        ]
    )
    [record] = await inbox.wait_for(1, timeout=30)
    await wait_checkpoint(poller, shard, poison)

    assert [c.reply for c in function.calls] == ["throttled", "throttled", "unhandled", "unhandled"]
    # Retry-After: 1 is honoured between throttled tries.
    assert function.calls[1].at - function.calls[0].at >= 0.75
    assert function.calls[2].at - function.calls[1].at >= 0.75
    last = function.calls[3]
    assert record == expected_record(
        mapping=name,
        condition="RetryAttemptsExhausted",
        invoke_count=2,
        last_call=last,
        discarded=last.records,
        shard_id=shard,
        stream_arn=stream.arn,
        timestamp=checked_timestamp(record, not_before=last.at),
        response=UNHANDLED_RESPONSE,
    )
    assert poller.metric("poller_invocations_total", mapping=name, outcome="throttled") == 2
    assert poller.metric("poller_invocations_total", mapping=name, outcome="error") == 2
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 1


# -- 9. DynamoDB Streams ---------------------------------------------------------------------------


async def test_dynamodb_retry_attempts_exhausted_record(
    make_table: Any,
    dynamodb: Any,
    sqs: Any,
    moto_endpoint: str,
    function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    """spec §6.2: the same record under DDBStreamBatchInfo, arrivals to the second."""
    table = make_table()
    name = "ddb-exhausted"
    inbox = new_queue(sqs, unique("dest"))
    for key in ["bad-0", "bad-1", "good-0"]:
        dynamodb.put_item(TableName=table.name, Item={"id": {"S": key}})
    streams = boto3.client("dynamodbstreams", endpoint_url=moto_endpoint, region_name=REGION)
    [shard] = [
        s["ShardId"]
        for s in streams.describe_stream(StreamArn=table.stream_arn)["StreamDescription"]["Shards"]
    ]
    function = Function(function_server, fail_when_present(lambda d: d.startswith("bad")))
    poller = await start_poller(
        [
            stream_mapping(
                name,
                table.stream_arn,
                function_server.url,
                BatchSize=2,
                MaximumRetryAttempts=1,
                **with_destination(inbox.arn),
            )
        ]
    )
    [record] = await inbox.wait_for(1, timeout=30)
    await wait_until(lambda: len(function.calls) >= 3, timeout=15, what="the good record")
    good = function.calls[2]
    await wait_checkpoint(poller, shard, good.sequence_numbers[-1])

    assert function.data() == [["bad-0", "bad-1"], ["bad-0", "bad-1"], ["good-0"]]
    last = function.calls[1]
    assert record == expected_record(
        mapping=name,
        condition="RetryAttemptsExhausted",
        invoke_count=2,
        last_call=last,
        discarded=last.records,
        shard_id=shard,
        stream_arn=table.stream_arn,
        timestamp=checked_timestamp(record, not_before=last.at),
        response=UNHANDLED_RESPONSE,
        dynamodb=True,
    )
    info = record["DDBStreamBatchInfo"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["approximateArrivalOfFirstRecord"])
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 2
    assert poller.metric("poller_retries_total", mapping=name) == 1
