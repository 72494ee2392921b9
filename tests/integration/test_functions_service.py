"""Declared functions end to end through the real `poller run` (DESIGN §1.5.1, §1.7, §1.8).

One service, started once for the module, reads a moto queue and stream and runs Python functions
declared under `Functions:` in their own execution environments under the real `awslambdaric`,
and a custom-runtime (`provided.al2023`) function whose `bootstrap` is a bash script speaking the
Runtime API with curl. The handlers append what they see (event, pid, module-level call count) to a
JSON-lines file named by an `Environment.Variables` entry, under a file lock; the bootstrap writes
each raw event to a file of its own in a directory named the same way. So the test observes the
functions from the outside as a user would; everything else is read from the service's stdout JSON
lines and /metrics.
The tests share the service and run in file order; the last one stops it with SIGTERM.
Nothing waits by sleeping: conditions are awaited with deadlines (`wait_until`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
import pytest_asyncio

from tests.integration.conftest import (
    ACCOUNT,
    REGION,
    PollerProcess,
    Queue,
    Stream,
    launch_poller,
    put_kinesis,
    queue_depth,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"

APP = """
import fcntl, json, os, time

CALLS = 0  # module state: survives between the invocations of one environment
RECORDS = os.environ["RECORD_FILE"]


def record(**entry):
    with open(RECORDS, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # one line at a time, whichever environment writes
        f.write(json.dumps(entry) + "\\n")


def handler(event, context):
    global CALLS
    CALLS += 1
    first = event["Records"][0]
    body = first.get("body")
    first_try = first.get("attributes", {}).get("ApproximateReceiveCount") == "1"
    print(f"handling {context.aws_request_id} call {CALLS}")
    record(phase="start", pid=os.getpid(), calls=CALLS, requestId=context.aws_request_id, event=event)
    if first_try and body == "sleep":
        time.sleep(30)  # past Timeout: killed
    if first_try and body == "crash":
        os._exit(1)
    if first_try and body == "oom":
        hog = b"x" * (300 * 1024 * 1024)  # resident: over MemorySize 128
        del hog
    if body == "slow":
        time.sleep(2)  # work in flight when SIGTERM arrives
    record(phase="end", pid=os.getpid(), calls=CALLS, requestId=context.aws_request_id, body=body)
    return {"pid": os.getpid(), "calls": CALLS}
"""

BROKEN = "raise RuntimeError('no config')\n"

# AWS's tutorial loop (spec §1.13) in bash: Debian's /bin/sh is dash, which rejects `pipefail`.
# The response goes out as curl posts it by default (form content type), as the tutorial's does.
BOOTSTRAP = """\
#!/bin/bash
set -euo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
HEADERS="$(mktemp)"
while true
do
  # Blocks until poller hands this environment an event.
  EVENT=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  # The raw body, in a file of its own renamed into place: the test never reads half an event.
  printf '%s' "$EVENT" > "$EVENT_DIR/.$REQUEST_ID"
  mv "$EVENT_DIR/.$REQUEST_ID" "$EVENT_DIR/$REQUEST_ID.json"
  echo "shell handled $REQUEST_ID"
  curl -sS -o /dev/null "$API/invocation/$REQUEST_ID/response" -d '{"batchItemFailures": []}'
done
"""


@dataclass
class Service:
    poller: PollerProcess
    sqs: Any
    kinesis: Any
    queues: dict[str, str]
    """Mapping name → queue URL."""
    stream: Stream
    records_dir: Path
    events_dir: Path
    """Where the shell bootstrap writes each event it gets, as `<requestId>.json`."""

    def records(self, function: str) -> list[dict[str, Any]]:
        """What the function's handlers wrote, in order (`start` and `end` lines)."""
        path = self.records_dir / f"{function}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def handled(self, function: str) -> list[dict[str, Any]]:
        """The `start` lines (with the event) of the invocations that reached their end."""
        records = self.records(function)
        ended = {r["requestId"] for r in records if r["phase"] == "end"}
        return [r for r in records if r["phase"] == "start" and r["requestId"] in ended]

    def shell_events(self) -> dict[str, str]:
        """Request id → the raw event body the shell bootstrap got."""
        return {path.stem: path.read_text() for path in self.events_dir.glob("*.json")}

    def logs(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.poller.logs()
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
        ]

    def send(self, mapping: str, *bodies: str, **extra: Any) -> list[dict[str, Any]]:
        return [self.sqs.send_message(QueueUrl=self.queues[mapping], MessageBody=b, **extra) for b in bodies]

    def depth(self, mapping: str) -> tuple[int, int]:
        return queue_depth(self.sqs, Queue(mapping, self.queues[mapping], ""))

    def position(self, mapping: str, shard: str) -> str | None:
        [status] = [m for m in self.poller.status()["mappings"] if m["Name"] == mapping]
        position = status.get("Positions", {}).get(shard, {}).get("SequenceNumber")
        return None if position is None else str(position)

    def metric(self, name: str, **labels: str) -> float:
        return self.poller.metric(name, **labels)


def make_queue(sqs: Any, name: str, visibility: int) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    root = tmp_path_factory.mktemp("functions-service")
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint, region_name=REGION)
    tag = root.name.replace("_", "-")[-20:]
    # The queue's visibility timeout must be at least the function's Timeout (spec §1.6).
    echo_url, echo_arn = make_queue(sqs, f"echo-{tag}", visibility=10)
    flaky_url, flaky_arn = make_queue(sqs, f"flaky-{tag}", visibility=2)
    broken_url, broken_arn = make_queue(sqs, f"broken-{tag}", visibility=30)
    missing_url, missing_arn = make_queue(sqs, f"missing-{tag}", visibility=30)
    shell_url, shell_arn = make_queue(sqs, f"shell-{tag}", visibility=10)
    stream = f"echo-stream-{tag}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]

    code = root / "code"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(APP))
    (code / "broken.py").write_text(BROKEN)
    records_dir = root / "records"
    records_dir.mkdir()
    shell = root / "shell"
    shell.mkdir()
    (shell / "bootstrap").write_text(BOOTSTRAP)
    (shell / "bootstrap").chmod(0o755)
    events_dir = root / "events"
    events_dir.mkdir()

    def function(name: str, handler: str = "app.handler", **props: Any) -> dict[str, Any]:
        variables = {"RECORD_FILE": str(records_dir / f"{name}.jsonl")}
        return {
            "Runtime": RUNTIME,
            "Handler": handler,
            "CodeUri": "../code",
            "Environment": {"Variables": variables},
            **props,
        }

    declared = {
        "Functions": {
            "echo": function("echo", Timeout=5, ReservedConcurrentExecutions=1),
            "flaky": function("flaky", Timeout=1, MemorySize=128, ReservedConcurrentExecutions=1),
            "broken": function("broken", handler="broken.handler"),
            "missing": function("missing", handler="nosuchmodule.handler"),
            "shell": {
                "Runtime": "provided.al2023",
                "CodeUri": "../shell",
                "Timeout": 5,
                "Environment": {"Variables": {"EVENT_DIR": str(events_dir)}},
            },
        },
        "EventSourceMappings": [
            {
                "Name": "echo-sqs",
                "EventSourceArn": echo_arn,
                "FunctionName": "echo",
                "BatchSize": 1,
                "ScalingConfig": {"MaximumConcurrency": 5},
            },
            {
                "Name": "echo-kinesis",
                "EventSourceArn": stream_arn,
                "FunctionName": "echo",
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 10,
            },
            {"Name": "flaky-sqs", "EventSourceArn": flaky_arn, "FunctionName": "flaky", "BatchSize": 1},
            {"Name": "broken-sqs", "EventSourceArn": broken_arn, "FunctionName": "broken"},
            {"Name": "missing-sqs", "EventSourceArn": missing_arn, "FunctionName": "missing"},
            {
                "Name": "shell-sqs",
                "EventSourceArn": shell_arn,
                "FunctionName": "shell",
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        ],
    }
    (root / "mappings").mkdir()
    (root / "mappings" / "functions.yaml").write_text(json.dumps(declared))
    poller = await launch_poller(root, moto_endpoint)
    try:
        queues = {
            "echo-sqs": echo_url,
            "flaky-sqs": flaky_url,
            "broken-sqs": broken_url,
            "missing-sqs": missing_url,
            "shell-sqs": shell_url,
        }
        yield Service(poller, sqs, kinesis, queues, Stream(stream, stream_arn), records_dir, events_dir)
    finally:
        poller.kill()


def assert_one_at_a_time(records: list[dict[str, Any]]) -> None:
    """Under ReservedConcurrentExecutions 1: every start is followed by its end, or by the next
    invocation's start on a new process (the previous one was killed)."""
    for before, after in pairwise(records):
        if before["phase"] == "start":
            assert after["requestId"] == before["requestId"] or after["pid"] != before["pid"], (before, after)
        else:
            assert after["phase"] == "start", (before, after)


# -- records flow; the exact events; warm reuse; the concurrency cap --------------------------------


async def test_queue_and_stream_records_reach_one_warm_environment_under_a_cap_of_one(
    service: Service,
) -> None:
    attributes = {"Author": {"DataType": "String", "StringValue": "Jane"}}
    [sent] = service.send("echo-sqs", '{"orderId": 0}', MessageAttributes=attributes)
    service.send("echo-sqs", *(f"m{i}" for i in range(1, 20)))
    written = put_kinesis(service.kinesis, service.stream, [(f"k{i}", f"r{i}".encode()) for i in range(3)])
    most = 0.0

    def all_handled() -> bool:
        nonlocal most  # sampled all along: never more than one environment, idle or busy
        most = max(
            most,
            service.metric("poller_function_environments", function="echo", state="idle")
            + service.metric("poller_function_environments", function="echo", state="busy"),
        )
        return sum(len(r["event"]["Records"]) for r in service.handled("echo")) == 23

    await wait_until(all_handled, timeout=40, what="20 messages and 3 stream records handled")
    await wait_until(lambda: service.depth("echo-sqs") == (0, 0), what="the messages deleted")
    assert most <= 1

    records = service.records("echo")
    assert_one_at_a_time(records)
    starts = [r for r in records if r["phase"] == "start"]
    assert {r["pid"] for r in starts} == {starts[0]["pid"]}  # one process, reused warm
    assert [r["calls"] for r in starts] == list(range(1, len(starts) + 1))  # its module state lives on

    messages = [r["event"]["Records"][0] for r in starts if "body" in r["event"]["Records"][0]]
    assert sorted(m["body"] for m in messages) == sorted(['{"orderId": 0}', *(f"m{i}" for i in range(1, 20))])
    [first] = [m for m in messages if m["messageId"] == sent["MessageId"]]
    assert set(first) == {
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
    assert first["md5OfBody"] == hashlib.md5(b'{"orderId": 0}').hexdigest()
    assert first["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert (first["eventSource"], first["awsRegion"]) == ("aws:sqs", REGION)
    queue_name = service.queues["echo-sqs"].rsplit("/", 1)[1]
    assert first["eventSourceARN"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}"
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert first["messageAttributes"]["Author"] == {
        "stringValue": "Jane",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }

    stream_records = [r for s in starts for r in s["event"]["Records"] if "kinesis" in r]
    assert [base64.b64decode(r["kinesis"]["data"]) for r in stream_records] == [b"r0", b"r1", b"r2"]
    one = stream_records[0]
    assert (one["eventSource"], one["eventName"]) == ("aws:kinesis", "aws:kinesis:record")
    assert one["eventSourceARN"] == service.stream.arn
    assert one["eventID"] == f"{written[0]['ShardId']}:{written[0]['SequenceNumber']}"
    assert (one["kinesis"]["partitionKey"], one["kinesis"]["sequenceNumber"]) == (
        "k0",
        written[0]["SequenceNumber"],
    )
    shard, last = written[-1]["ShardId"], written[-1]["SequenceNumber"]
    await wait_until(lambda: service.position("echo-kinesis", shard) == last, what="the stream checkpoint")


# -- platform lines, function output and function metrics (after the invocations above) ----------


async def test_platform_lines_function_output_and_metrics(service: Service) -> None:
    starts = [r for r in service.records("echo") if r["phase"] == "start"]
    request_ids = [r["requestId"] for r in starts]
    assert request_ids, "runs after the records test"
    await wait_until(
        lambda: (
            {line["requestId"] for line in service.logs("function_output", function="echo")}
            >= set(request_ids)
        ),
        what="every invocation's output line",
    )
    [init_start] = service.logs("platform.initStart", function="echo")
    assert (init_start["initializationType"], init_start["phase"]) == ("on-demand", "init")
    [init_report] = service.logs("platform.initReport", function="echo")
    assert init_report["status"] == "success"
    assert init_report["initDurationMs"] > 0
    platform_starts = service.logs("platform.start", function="echo")
    assert [line["requestId"] for line in platform_starts][: len(request_ids)] == request_ids
    assert {line["version"] for line in platform_starts} == {"$LATEST"}
    reports = service.logs("platform.report", function="echo")[: len(request_ids)]
    assert [line["requestId"] for line in reports] == request_ids
    cold, *warm = reports
    assert cold["initDurationMs"] == init_report["initDurationMs"]
    assert cold["billedDurationMs"] >= cold["durationMs"] + cold["initDurationMs"]
    for line in reports:
        assert line["status"] == "success"
        assert line["memorySizeMB"] == 128
        assert 0 < line["maxMemoryUsedMB"] < 128
        assert line["billedDurationMs"] >= line["durationMs"] > 0
    assert all("initDurationMs" not in line for line in warm)
    outputs = {
        (line["requestId"], line["message"]) for line in service.logs("function_output", function="echo")
    }
    for record in starts:
        assert (record["requestId"], f"handling {record['requestId']} call {record['calls']}") in outputs

    def metric(name: str, **labels: str) -> float:
        return service.metric(f"poller_function_{name}", function="echo", **labels)

    assert (metric("environments", state="idle"), metric("environments", state="busy")) == (1, 0)
    assert metric("cold_starts_total") == 1
    assert metric("init_duration_seconds_count") == 1
    assert metric("duration_seconds_count") == len(service.logs("platform.report", function="echo"))
    assert 0 < metric("max_memory_bytes") < 128 * 1024 * 1024
    assert service.metric("poller_function_errors_total", function="echo") == 0


# -- timeout, crash, out of memory: the batch fails, the environment is replaced ------------------


async def test_timeout_crash_and_out_of_memory_fail_the_batch_and_reset_the_environment(
    service: Service,
) -> None:
    service.send("flaky-sqs", "hello")
    await wait_until(lambda: len(service.handled("flaky")) == 1, what="a first invocation")
    # Each fails on its first receive and succeeds when SQS redelivers it (receive count 2).
    service.send("flaky-sqs", "sleep", "crash", "oom")
    await wait_until(
        lambda: bool(service.logs("platform.report", function="flaky", errorType="Runtime.ExitError")),
        what="the crash",
    )
    assert service.poller.get("/healthz")[0] == 200
    service.send("echo-sqs", "while flaky fails")  # another mapping keeps flowing meanwhile
    await wait_until(
        lambda: any(r["body"] == "while flaky fails" for r in service.records("echo") if r["phase"] == "end"),
        what="the other mapping's message",
    )
    await wait_until(
        lambda: (
            {r["event"]["Records"][0]["body"] for r in service.handled("flaky")}
            == {"hello", "sleep", "crash", "oom"}
            and service.depth("flaky-sqs") == (0, 0)
        ),
        timeout=40,
        what="every message handled at last, and deleted",
    )

    records = service.records("flaky")
    assert_one_at_a_time(records)
    starts = [r for r in records if r["phase"] == "start"]
    counts = {
        (r["event"]["Records"][0]["body"], r["event"]["Records"][0]["attributes"]["ApproximateReceiveCount"])
        for r in starts
    }
    assert {
        ("sleep", "1"),
        ("sleep", "2"),
        ("crash", "1"),
        ("crash", "2"),
        ("oom", "1"),
        ("oom", "2"),
    } <= counts
    for killed, following in pairwise(starts):
        first = killed["event"]["Records"][0]
        if (
            first["body"] in {"sleep", "crash", "oom"}
            and first["attributes"]["ApproximateReceiveCount"] == "1"
        ):
            # The next invocation cold-starts: a new process whose module state starts over.
            assert (following["pid"] != killed["pid"], following["calls"]) == (True, 1), (killed, following)

    [timed_out] = service.logs("platform.report", function="flaky", status="timeout")
    assert timed_out["errorType"] == "Sandbox.Timedout"
    assert timed_out["durationMs"] >= 1000
    assert service.logs("batch_attempt", mapping="flaky-sqs", outcome="timeout")
    [crashed] = service.logs("batch_attempt", mapping="flaky-sqs", error_type="Runtime.ExitError")
    assert crashed["outcome"] == "error"
    [oom] = service.logs("platform.report", function="flaky", errorType="Runtime.OutOfMemory")
    assert oom["maxMemoryUsedMB"] > 128
    for error_type in ("Sandbox.Timedout", "Runtime.ExitError", "Runtime.OutOfMemory"):
        assert service.metric("poller_function_errors_total", function="flaky", error_type=error_type) == 1
    assert service.metric("poller_function_cold_starts_total", function="flaky") == 4
    assert service.poller.get("/healthz")[0] == 200


# -- init failure ----------------------------------------------------------------------------------


async def test_an_init_failure_fails_invocations_with_the_runtimes_error_and_its_document(
    service: Service,
) -> None:
    service.send("broken-sqs", "anything")  # its module raises RuntimeError at import
    service.send("missing-sqs", "anything")  # its handler names a module that does not exist
    await wait_until(
        lambda: (
            bool(service.logs("batch_attempt", mapping="broken-sqs"))
            and bool(service.logs("batch_attempt", mapping="missing-sqs"))
        ),
        what="an attempt of each",
    )
    for function, error_type in (("broken", "RuntimeError"), ("missing", "Runtime.ImportModuleError")):
        [attempt] = service.logs("batch_attempt", mapping=f"{function}-sqs")
        assert (attempt["outcome"], attempt["error_type"]) == ("error", error_type)
        # The error document as awslambdaric posted it (message, type, stack trace), never rebuilt.
        assert attempt["error_bytes"] > len(f'{{"errorMessage": "", "errorType": "{error_type}"}}')
        [init_report] = service.logs("platform.initReport", function=function)
        assert init_report["status"] == "error"
        [report] = service.logs("platform.report", function=function)
        assert (report["status"], report["requestId"]) == ("error", attempt["request_id"])
        assert report["errorType"] == init_report["errorType"]
        assert report["initDurationMs"] == init_report["initDurationMs"]
        assert service.depth(f"{function}-sqs") == (0, 1)  # not deleted: SQS redelivers it later
    assert (
        service.logs("platform.initReport", function="missing")[0]["errorType"] == "Runtime.ImportModuleError"
    )
    # A handler's own exception class is not a label value: it folds into Runtime.Unknown.
    assert (
        service.metric("poller_function_errors_total", function="broken", error_type="Runtime.Unknown") == 1
    )
    assert (
        service.metric(
            "poller_function_errors_total", function="missing", error_type="Runtime.ImportModuleError"
        )
        == 1
    )
    await wait_until(
        lambda: any(
            "RuntimeError" in line["message"] and "no config" in line["message"]
            for line in service.logs("function_output", function="broken")
        ),
        what="the import error in the function's output",
    )


# -- a custom runtime: a bash bootstrap speaking the Runtime API with curl ---------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="the bootstrap uses curl")
async def test_a_shell_bootstrap_gets_the_queue_batches_and_they_are_deleted(service: Service) -> None:
    bodies = ["shell-0", '{"orderId": 1}', "shell 2"]
    service.send("shell-sqs", *bodies)

    def bodies_seen() -> list[str]:
        return [r["body"] for raw in service.shell_events().values() for r in json.loads(raw)["Records"]]

    await wait_until(
        lambda: sorted(bodies_seen()) == sorted(bodies), timeout=30, what="3 messages in the bootstrap"
    )
    # `{"batchItemFailures": []}` under ReportBatchItemFailures: the whole batch succeeded.
    await wait_until(lambda: service.depth("shell-sqs") == (0, 0), what="the messages deleted")

    events = service.shell_events()
    for raw in events.values():
        assert '"eventSource":"aws:sqs"' in raw, raw  # the body exactly as the Runtime API served it
    assert set(bodies_seen()) == set(bodies)  # each once: nothing failed, nothing redelivered
    await wait_until(
        lambda: (
            {line["requestId"] for line in service.logs("platform.report", function="shell")} >= set(events)
        ),
        what="a report line per invocation",
    )
    reports = service.logs("platform.report", function="shell")
    assert {line["requestId"] for line in reports} == set(events)
    for line in reports:
        assert line["status"] == "success", line
        assert line["billedDurationMs"] >= line["durationMs"] > 0
    init_starts = service.logs("platform.initStart", function="shell")
    assert 1 <= len(init_starts) <= len(events)  # batches may spread over environments, each cold once
    assert {(line["initializationType"], line["phase"]) for line in init_starts} == {("on-demand", "init")}
    await wait_until(
        lambda: (
            {f"shell handled {request_id}" for request_id in events}
            <= {line["message"] for line in service.logs("function_output", function="shell")}
        ),
        what="the bootstrap's stdout lines",
    )
    assert service.metric("poller_function_errors_total", function="shell") == 0


# -- SIGTERM: the invocation in flight finishes, then every environment is gone ---------------------


async def test_sigterm_lets_the_invocation_in_flight_finish_then_stops_every_environment(
    service: Service,
) -> None:
    service.send("echo-sqs", "slow")
    await wait_until(
        lambda: any(
            r["phase"] == "start" and r["event"]["Records"][0].get("body") == "slow"
            for r in service.records("echo")
        ),
        what="the slow invocation to start",
    )
    pids = {r["pid"] for function in ("echo", "flaky") for r in service.records(function)}
    environments = psutil.Process(service.poller.proc.pid).children(recursive=True)
    assert {r["pid"] for r in service.records("echo")} <= {p.pid for p in environments}
    pids |= {p.pid for p in environments}
    code = await asyncio.to_thread(service.poller.terminate, 30.0)
    assert code == 0, service.poller.log_path.read_text()[-3000:]
    assert any(r["phase"] == "end" and r["body"] == "slow" for r in service.records("echo"))
    assert service.depth("echo-sqs") == (0, 0)  # it succeeded, so it was deleted
    [drained] = service.logs("drain_finished")
    assert drained["abandoned_mappings"] == 0  # within the drain budget
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
