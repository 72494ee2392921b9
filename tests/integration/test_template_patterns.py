"""The template fixtures under tests/templates/<app>/ (each written for poller's tests in the shape of
a common SAM app, see its README.md) run end to end by `poller run --template` against moto (issue 16):
the template's own queues, streams and tables are created at the endpoint, and records written to
them reach its handlers in execution environments (DESIGN §1.5.1, §1.10). Also a `sam build` output
(spec functions-and-templates §4.8)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PollerProcess, RunTemplate
from tests.integration.test_template_run import attribute, depth, line_of, outputs, problems, queue_url
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def copy(app: str, tmp_path: Path) -> Path:
    """The app's directory, copied whole (its stack name, hence its generated names, is the
    directory's name)."""
    target = tmp_path / app
    shutil.copytree(TEMPLATES / app, target)
    return target


def errors(poller: PollerProcess) -> list[str]:
    return [p for p in problems(poller) if ": warning: " not in p]


def json_lines(messages: list[str]) -> list[dict[str, Any]]:
    """The JSON objects a function logged, each the last tab-separated field of its line (Node's
    console.log prefixes time, request id and level; Powertools' logger writes bare JSON)."""
    found = []
    for message in messages:
        text = message.split("\t")[-1].strip()
        if text.startswith("{"):
            found.append(json.loads(text))
    return found


async def test_sqs_partial_batch_responses_and_the_dead_letter_queue(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """SQS with ReportBatchItemFailures (spec esm-semantics §5.1): the good orders of a batch are
    deleted, the bad one stays and, after maxReceiveCount receives, the queue's redrive policy moves
    it to the DLQ the template made first; a parameter override sets the visibility timeout."""
    app = copy("sqs-partial-batch", tmp_path)
    poller = await run_template(app / "template.yaml", "QueueVisibilityTimeout=5")
    sqs = aws["sqs"]
    queue = queue_url(sqs, "sqs-partial-batch-OrdersQueue")
    dlq = queue_url(sqs, "sqs-partial-batch-OrdersDeadLetterQueue")
    assert attribute(sqs, dlq, "MessageRetentionPeriod") == "1209600"
    assert attribute(sqs, queue, "VisibilityTimeout") == "5"
    assert json.loads(attribute(sqs, queue, "RedrivePolicy")) == {
        "deadLetterTargetArn": attribute(sqs, dlq, "QueueArn"),
        "maxReceiveCount": 3,
    }

    orders = [{"orderId": f"o-{i}", "sku": f"sku-{i}", "quantity": 0 if i == 3 else i + 1} for i in range(5)]
    for order in orders:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(order))
    good = {f"Processed order {o['orderId']}: {o['quantity']} x {o['sku']}" for o in orders if o["quantity"]}

    def processed() -> set[str]:
        return {line for line in good if any(line in m for m in outputs(poller, "OrderProcessorFunction"))}

    await wait_until(lambda: processed() == good, timeout=30, what="every good order processed")

    def dead_letters() -> list[dict[str, Any]]:
        reply = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in reply.get("Messages", [])]

    # Three receives five seconds apart, then the redrive on the fourth.
    await wait_until(lambda: bool(dead_letters()), timeout=60, what="the bad order in the DLQ")
    assert dead_letters() == [orders[3]]
    await wait_until(lambda: depth(sqs, queue) == 0, timeout=10, what="the queue emptied")
    failures = [m for m in outputs(poller, "OrderProcessorFunction") if "Could not process message" in m]
    assert len(failures) == 3, failures
    assert all("order o-3 has no quantity" in m for m in failures)
    assert errors(poller) == []


def reading(number: int, *, valid: bool = True) -> bytes:
    values = {"sensorId": f"sensor-{number}", "metric": "temperature", "value": 20 + number}
    if not valid:
        del values["value"]
    return json.dumps(values).encode()


async def test_kinesis_bisection_retries_and_on_failure_queue(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """Kinesis with BisectBatchOnFunctionError: a failing batch is split until the bad record is
    alone, which after MaximumRetryAttempts is described on the on-failure SQS queue (spec
    esm-semantics §5.2, §6) while the records around it are processed. The StreamName parameter,
    overridden, names both the stream (!Ref) and the queue (!Sub)."""
    app = copy("kinesis-error-handling", tmp_path)
    poller = await run_template(app / "template.yaml", "StreamName=readings-it")
    kinesis, sqs = aws["kinesis"], aws["sqs"]
    failed = queue_url(sqs, "readings-it-failed")
    written = [
        kinesis.put_record(StreamName="readings-it", PartitionKey="p", Data=reading(n, valid=n != 2))
        for n in range(5)
    ]

    def failure_records() -> list[dict[str, Any]]:
        reply = sqs.receive_message(QueueUrl=failed, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in reply.get("Messages", [])]

    await wait_until(lambda: bool(failure_records()), timeout=60, what="the failure record")
    [record] = failure_records()
    info = record["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == written[2]["SequenceNumber"]
    assert info["streamArn"].endswith(":stream/readings-it")
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 4  # 1 + MaximumRetryAttempts 3

    # The handler logs each reading it stores (Python's logging, as in Lambda), with the stream name
    # from its environment: the valid ones after the bad record were reached too.
    def stored() -> set[str]:
        seen = "\n".join(outputs(poller, "ReadingsProcessorFunction"))
        return {f"sensor-{n}" for n in range(5) if f'"sensorId": "sensor-{n}"' in seen}

    await wait_until(
        lambda: stored() == {"sensor-0", "sensor-1", "sensor-3", "sensor-4"},
        timeout=10,
        what="the valid readings stored",
    )
    assert any("Stored reading from readings-it" in m for m in outputs(poller, "ReadingsProcessorFunction"))
    assert errors(poller) == []


async def test_a_dynamodb_stream_runs_beside_an_api_event_that_is_reported(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """Issue 16 §3: the Api event is reported once, by logical id and line, and left out; the table's
    stream (LATEST) reaches a handler using Powertools' logger and event data classes, with the
    Globals' environment."""
    app = copy("api-and-dynamodb-stream", tmp_path)
    template = app / "template.yaml"
    poller = await run_template(template)
    dynamodb = aws["dynamodb"]
    table = "notes"  # the NotesTableName parameter's default

    def put(note_id: str) -> None:
        dynamodb.put_item(TableName=table, Item={"id": {"S": note_id}, "text": {"S": "from the test"}})

    def changes() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(outputs(poller, "NoteChangesFunction"))
            if line.get("message") == "Note changed"
        ]

    # LATEST reads what is written once the mapping has its shard iterator: write probes until one
    # arrives, then the items under test.
    probes = iter(range(100))

    def probed() -> bool:
        if any(c["keys"]["id"].startswith("probe-") for c in changes()):
            return True
        put(f"probe-{next(probes)}")
        return False

    await wait_until(probed, timeout=30, interval=0.5, what="a probe item through the stream")
    for n in range(3):
        put(f"note-{n}")
    expected = [f"note-{n}" for n in range(3)]
    await wait_until(
        lambda: [c["keys"]["id"] for c in changes() if c["keys"]["id"].startswith("note-")] == expected,
        timeout=30,
        what="the notes through the stream",
    )
    first = next(c for c in changes() if c["keys"]["id"] == "note-0")
    assert (first["event_name"], first["new_image"]) == ("INSERT", {"id": "note-0", "text": "from the test"})
    assert (first["service"], first["function_name"]) == ("notes", "NoteChangesFunction")

    [api] = [p for p in problems(poller) if "CreateNote" in p]
    assert f"{template}:{line_of(template, 'CreateNote:')}:" in api
    assert "'Api'" in api
    assert errors(poller) == []


async def test_two_node_functions_with_filters_on_one_dynamodb_stream(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any], node_function_path: str
) -> None:
    """Two Node.js functions on one table's stream, each with a FilterCriteria pattern (spec
    esm-semantics §7): inserts reach only the new-order function, removals only the deleted-order
    function, and the update reaches neither."""
    app = copy("dynamodb-stream-filters", tmp_path)
    poller = await run_template(app / "template.yaml", env={"PATH": node_function_path})
    dynamodb = aws["dynamodb"]
    table = "dynamodb-stream-filters-OrdersTable"
    dynamodb.put_item(TableName=table, Item={"id": {"S": "kept"}, "status": {"S": "new"}})
    dynamodb.put_item(TableName=table, Item={"id": {"S": "removed"}, "status": {"S": "new"}})
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": "kept"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "shipped"}},
    )
    dynamodb.delete_item(TableName=table, Key={"id": {"S": "removed"}})
    dynamodb.put_item(TableName=table, Item={"id": {"S": "last"}, "status": {"S": "new"}})

    def seen(function: str) -> list[tuple[str, str]]:
        return [(line["eventName"], line["id"]) for line in json_lines(outputs(poller, function))]

    # The last insert comes after the update and the removal in the shard: once the new-order
    # function has it, its mapping has passed over (and filtered out) the two before.
    await wait_until(
        lambda: len(seen("NewOrderFunction")) >= 3 and len(seen("DeletedOrderFunction")) >= 1,
        timeout=60,
        what="both functions",
    )
    assert seen("NewOrderFunction") == [("INSERT", "kept"), ("INSERT", "removed"), ("INSERT", "last")]
    assert seen("DeletedOrderFunction") == [("REMOVE", "removed")]
    [removed] = json_lines(outputs(poller, "DeletedOrderFunction"))
    assert removed["lastImage"] == {"id": {"S": "removed"}, "status": {"S": "new"}}
    assert errors(poller) == []


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
