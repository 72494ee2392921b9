"""Public templates from AWS's serverless-patterns collection (tests/templates/<pattern>/, each with a
SOURCE.md naming where it was copied from, unchanged) run end to end by `poller run --template`
against moto (issue 16, "Tests against real public templates"): the template's own queues, streams and
tables are created at the endpoint, and records written to them reach its handlers in execution
environments (DESIGN §1.5.1, §1.10). Also a `sam build` output (spec functions-and-templates §4.8)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PollerProcess, RunTemplate
from tests.integration.test_template_run import depth, outputs, problems, queue_url
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def copy(pattern: str, tmp_path: Path) -> Path:
    """The pattern's directory, copied whole (its stack name, hence its generated names, is the
    directory's name)."""
    target = tmp_path / pattern
    shutil.copytree(TEMPLATES / pattern, target)
    return target


def errors(poller: PollerProcess) -> list[str]:
    return [p for p in problems(poller) if ": warning: " not in p]


async def test_sqs_lambda_python_sam(tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]) -> None:
    """SQS → Lambda with partial batch responses; the DLQ made first and named by the redrive policy."""
    app = copy("sqs-lambda-python-sam", tmp_path)
    poller = await run_template(app / "template.yaml")
    sqs = aws["sqs"]
    queue = queue_url(sqs, "sqs-lambda-python-sam-ProcessingQueue")
    dlq = queue_url(sqs, "sqs-lambda-python-sam-ProcessingDLQ")
    names = ["QueueArn", "MessageRetentionPeriod"]
    dlq_attributes = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=names)["Attributes"]
    assert dlq_attributes["MessageRetentionPeriod"] == "1209600"
    redrive = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(redrive["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_attributes["QueueArn"],
        "maxReceiveCount": 3,
    }

    bodies = [f"pattern message {i}" for i in range(5)]
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    await wait_until(
        lambda: {f"Processed message: {b}" for b in bodies} <= set(outputs(poller, "ProcessorFunction")),
        timeout=30,
        what="every message processed",
    )
    # The empty batchItemFailures deleted every message; nothing reached the DLQ.
    await wait_until(lambda: depth(sqs, queue) == 0, timeout=10, what="the queue emptied")
    assert depth(sqs, dlq) == 0
    assert errors(poller) == []


def reading(number: int, *, valid: bool = True) -> bytes:
    element = {
        "AtomicNumber": number,
        "Element": f"element-{number}",
        "Symbol": f"E{number}",
        "AtomicMass": 1.5,
    }
    if not valid:
        del element["Symbol"]
    return json.dumps(element).encode()


async def test_kinesis_lambda_error_handling(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """Kinesis → Lambda, bisecting a failing batch until the bad record is alone, which after its
    retries is described in a failure record on the on-failure SQS queue (spec esm-semantics §5.2,
    §6); the records around it are processed."""
    app = copy("kinesis-lambda-error-handling", tmp_path)
    poller = await run_template(app / "template.yaml")
    kinesis, sqs = aws["kinesis"], aws["sqs"]
    anomalies = queue_url(sqs, "AnomalyDataQueue")
    written = [
        kinesis.put_record(
            StreamName="DataActivityKinesisStream", PartitionKey="p", Data=reading(n, valid=n != 2)
        )
        for n in range(5)
    ]

    def failure_records() -> list[dict[str, Any]]:
        reply = sqs.receive_message(QueueUrl=anomalies, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in reply.get("Messages", [])]

    await wait_until(lambda: bool(failure_records()), timeout=60, what="the failure record")
    [record] = failure_records()
    info = record["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == written[2]["SequenceNumber"]
    assert info["streamArn"].endswith(":stream/DataActivityKinesisStream")
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 6  # 1 + MaximumRetryAttempts 5
    # The handler logs each record it reads (Python's logging, as in Lambda): the valid ones after the
    # bad record were reached too, so the shard moved on.
    seen = "\n".join(outputs(poller, "KinesisDataStreamProcessor"))
    assert "'Symbol': 'E4'" in seen
    assert errors(poller) == []


async def test_apigw_lambda_dynamodb_stream_lambda(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """A DynamoDB stream (LATEST) → a handler importing Powertools; the Api event is reported and left out."""
    app = copy("apigw-lambda-dynamodb-stream-lambda", tmp_path)
    poller = await run_template(app / "template.yaml")
    dynamodb = aws["dynamodb"]
    table = "DemoStreamDynamoDBToLambda"  # the DynamoDBTableName parameter's default

    def put(item_id: str) -> None:
        dynamodb.put_item(TableName=table, Item={"id": {"S": item_id}, "note": {"S": "from the test"}})

    # LATEST reads what is written once the mapping has its shard iterator: write probes until one
    # arrives, then the items under test.
    probes = iter(range(100))

    def probed() -> bool:
        if any("probe-" in m for m in outputs(poller, "ConsumerFunction")):
            return True
        put(f"probe-{next(probes)}")
        return False

    await wait_until(probed, timeout=30, interval=0.5, what="a probe item through the stream")
    for n in range(3):
        put(f"item-{n}")
    await wait_until(
        lambda: all(any(f"item-{n}" in m for m in outputs(poller, "ConsumerFunction")) for n in range(3)),
        timeout=30,
        what="the items through the stream",
    )
    [api] = [p for p in problems(poller) if "ApiEvent" in p]
    assert "Api" in api
    assert errors(poller) == []


async def test_dynamodb_streams_lambda_event_filters_on_node(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any], node_function_path: str
) -> None:
    """Two Node.js functions on one table's stream, each with a FilterCriteria pattern (spec
    esm-semantics §7): inserts reach only the insert trigger, removals only the delete trigger."""
    app = copy("dynamodb-streams-lambda-event-filters", tmp_path)
    poller = await run_template(app / "template.yaml", env={"PATH": node_function_path})
    dynamodb = aws["dynamodb"]
    table = "dynamodb-streams-lambda-event-filters-DynamoDBTable"
    dynamodb.put_item(TableName=table, Item={"id": {"S": "kept"}})
    dynamodb.put_item(TableName=table, Item={"id": {"S": "removed"}})
    dynamodb.delete_item(TableName=table, Key={"id": {"S": "removed"}})

    def events(function: str) -> list[str]:
        # The handler logs `console.log(JSON.stringify(event), null, 2)`: Node's log line prefix
        # (time, request id, level), the event, then " null 2".
        names = []
        for message in outputs(poller, function):
            text = message.split("\t")[-1]
            if text.startswith('{"Records"'):
                event, _ = json.JSONDecoder().raw_decode(text)
                names += [record["eventName"] for record in event["Records"]]
        return names

    await wait_until(
        lambda: len(events("putItemTriggerFunction")) >= 2 and len(events("deleteItemTriggerFunction")) >= 1,
        timeout=60,
        what="both triggers",
    )
    assert events("putItemTriggerFunction") == ["INSERT", "INSERT"]
    assert events("deleteItemTriggerFunction") == ["REMOVE"]


async def test_a_sam_build_output_runs_its_built_functions(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """`.aws-sam/build/template.yaml` (spec functions-and-templates §4.8): long-form intrinsics,
    CodeUri and Code pointing at the built directories; stack name from the project directory."""
    app = copy("sam-build-output", tmp_path)
    poller = await run_template(app / ".aws-sam" / "build" / "template.yaml")
    sqs, kinesis = aws["sqs"], aws["kinesis"]
    queue = queue_url(sqs, "sam-build-output-OrdersQueue")
    sqs.send_message(QueueUrl=queue, MessageBody="built")
    kinesis.put_record(
        StreamName="sam-build-output-AuditStream", PartitionKey="p", Data=base64.b64encode(b"a")
    )

    def reported(function: str) -> bool:
        return any(
            line.get("event") == "platform.report"
            and line.get("function") == function
            and line["status"] == "success"
            for line in poller.logs()
        )

    await wait_until(
        lambda: reported("OrdersFunction") and reported("AuditFunction"), timeout=30, what="both"
    )
    await wait_until(lambda: depth(sqs, queue) == 0, timeout=10, what="the order deleted")
    assert errors(poller) == []
