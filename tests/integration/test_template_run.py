"""`poller run --template` end to end through the real service process against moto (DESIGN §1.10;
issue 16 §1–3, §6): the template's own queues, streams and tables are created at the endpoint,
records flow from them to its functions in execution environments (§1.5.1), Globals and
--parameter-overrides apply, what cannot run is reported once by logical id and line while the rest
runs, and a change of the template is applied as a hot reload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PollerProcess, RunTemplate
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def outputs(poller: PollerProcess, function: str) -> list[str]:
    """What the function printed, from its `function_output` log lines (DESIGN §1.8)."""
    return [
        str(line["message"])
        for line in poller.logs()
        if line.get("event") == "function_output" and line.get("function") == function
    ]


def problems(poller: PollerProcess) -> list[str]:
    return [str(line["problem"]) for line in poller.logs() if line.get("event") == "config_problem"]


def queue_url(sqs: Any, name: str) -> str:
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def attribute(sqs: Any, url: str, name: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[name])["Attributes"][name])


def depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(found[n]) for n in names)


def line_of(template: Path, text: str) -> int:
    return next(i for i, line in enumerate(template.read_text().splitlines(), 1) if text in line)


async def test_the_readme_sam_app_runs_unchanged_with_its_own_queues_table_and_functions(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """Issue 16 §2, §6: examples/sam-app/ from a copy, with --parameter-overrides and Globals."""
    app = tmp_path / "sam-app"
    shutil.copytree(ROOT / "examples" / "sam-app", app)
    poller = await run_template(app / "template.yaml", "Stage=prod", "OrdersVisibilityTimeout=3")
    sqs, dynamodb = aws["sqs"], aws["dynamodb"]

    # The template's queues were created at the endpoint, named from the overridden parameter, the
    # redrive policy pointing at the dead-letter queue's real ARN.
    orders, dlq = queue_url(sqs, "sam-app-orders-prod"), queue_url(sqs, "sam-app-orders-dlq-prod")
    assert attribute(sqs, orders, "VisibilityTimeout") == "3"
    assert json.loads(attribute(sqs, orders, "RedrivePolicy")) == {
        "deadLetterTargetArn": attribute(sqs, dlq, "QueueArn"),
        "maxReceiveCount": 2,
    }
    table = dynamodb.describe_table(TableName="sam-app-stock-prod")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}

    bodies = [
        json.dumps({"orderId": i, "sku": f"sku-{i}", "quantity": 0 if i == 2 else i + 1}) for i in range(4)
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=orders, MessageBody=body)
    for sku, stock in (("apples", 9), ("pears", 1)):
        dynamodb.put_item(
            TableName="sam-app-stock-prod", Item={"sku": {"S": sku}, "stock": {"N": str(stock)}}
        )

    # The impossible order failed alone (ReportBatchItemFailures) and, after maxReceiveCount
    # receives, the queue's redrive policy moved it to the dead-letter queue; the others were taken.
    await wait_until(lambda: depth(sqs, dlq) == 1 and depth(sqs, orders) == 0, timeout=40, what="the DLQ")
    [dead] = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert dead["Body"] == bodies[2]
    taken = [m for m in outputs(poller, "OrdersFunction") if " order " in m and "rejected" not in m]
    # STAGE is Globals.Function.Environment's `!Ref Stage`, resolved from --parameter-overrides.
    assert sorted(taken) == [
        "[prod] order 0: 1 x sku-0",
        "[prod] order 1: 2 x sku-1",
        "[prod] order 3: 4 x sku-3",
    ]

    # The table's stream reached the stock function, which has its own LOW_STOCK and the global STAGE.
    await wait_until(
        lambda: "[prod] low stock: pears has 1 left" in outputs(poller, "StockFunction"),
        timeout=30,
        what="stock",
    )
    assert not any("apples" in m for m in outputs(poller, "StockFunction"))
    # Both ran in execution environments with Globals' MemorySize.
    reports = [line for line in poller.logs() if line.get("event") == "platform.report"]
    assert {line["function"] for line in reports} == {"OrdersFunction", "StockFunction"}
    assert {line["memorySizeMB"] for line in reports} == {256}
    assert [p for p in problems(poller) if ": warning: " not in p] == [], problems(poller)


READER_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Prefix:
    Type: String
Globals:
  Function:
    Runtime: python3.11
    Timeout: 2
    Environment:
      Variables:
        FROM_GLOBALS: "yes"
Resources:
  Readings:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${Prefix}-readings"
      ShardCount: 1
  Failures:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Prefix}-failures"
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: reader.handler
      Events:
        Nightly:
          Type: Schedule
          Properties:
            Schedule: rate(1 day)
        Stream:
          Type: Kinesis
          Properties:
            Stream: !GetAtt Readings.Arn
            StartingPosition: TRIM_HORIZON
            BatchSize: 10
            MaximumRetryAttempts: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
            DestinationConfig:
              OnFailure:
                Type: SQS
                Destination: !GetAtt Failures.Arn
        Http:
          Type: Api
          Properties:
            Path: /readings
            Method: get
"""

READER = """\
import base64
import json
import os


def handler(event, context):
    failures = []
    for record in event["Records"]:
        reading = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if reading.get("poison"):
            failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
        else:
            print(f"reading {reading['n']} globals={os.environ['FROM_GLOBALS']}")
    return {"batchItemFailures": failures}
"""


async def test_unsupported_events_are_reported_once_by_line_and_the_stream_runs_with_partial_batches_and_destination(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """Issue 16 §3 (Schedule and Api events reported, the Kinesis event runs); spec esm-semantics
    §5.2: a partial batch response retries from the failed record, and after MaximumRetryAttempts
    its failure record goes to the on-failure destination while the shard moves on."""
    app = tmp_path / "reader-app"
    (app / "src").mkdir(parents=True)
    template = app / "template.yaml"
    template.write_text(READER_TEMPLATE)
    (app / "src" / "reader.py").write_text(READER)
    poller = await run_template(template, "Prefix=tr")
    kinesis, sqs = aws["kinesis"], aws["sqs"]

    summary = kinesis.describe_stream_summary(StreamName="tr-readings")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    failures = queue_url(sqs, "tr-failures")
    written = [
        kinesis.put_record(
            StreamName="tr-readings", PartitionKey="k", Data=json.dumps({"n": n, "poison": n == 4})
        )
        for n in range(5)
    ]

    def failure_records() -> list[dict[str, Any]]:
        reply = sqs.receive_message(QueueUrl=failures, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in reply.get("Messages", [])]

    await wait_until(lambda: bool(failure_records()), timeout=30, what="the failure record")
    [record] = failure_records()
    info = record["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == written[4]["SequenceNumber"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert sorted(m for m in outputs(poller, "Reader") if m.startswith("reading ")) == [
        f"reading {n} globals=yes" for n in range(4)
    ]

    # The two events poller does not run were each reported once, at their own line, by logical id.
    found = problems(poller)
    for event, event_type in (("Nightly", "Schedule"), ("Http", "Api")):
        about = [p for p in found if event in p]
        assert len(about) == 1, found
        lines = {line_of(template, f"{event}:"), line_of(template, f"Type: {event_type}")}
        assert any(f"{template}:{line}:" in about[0] for line in lines), about


QUEUE_TEMPLATE = """\
Resources:
  First:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: reload-first
  FirstFunction:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      CodeUri: src/
      Handler: echo.handler
      Events:
        Q:
          Type: SQS
          Properties:
            Queue: !GetAtt First.Arn
"""

SECOND = """\
  Second:
    Type: AWS::SQS::Queue
  SecondFunction:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      CodeUri: src/
      Handler: echo.handler
      Environment:
        Variables:
          WHO: second
      Events:
        Q:
          Type: SQS
          Properties:
            Queue: !GetAtt Second.Arn
"""

ECHO = """\
import os


def handler(event, context):
    for record in event["Records"]:
        print(f"{os.environ.get('WHO', 'first')} got {record['body']}")
"""


async def test_a_changed_template_is_read_again_and_its_new_queue_created_and_run(
    tmp_path: Path, run_template: RunTemplate, aws: dict[str, Any]
) -> None:
    """Hot reload in template mode (DESIGN §2): the template file is watched; a change reads it again,
    creates the sources it adds (a queue without QueueName: `<stack>-<LogicalId>`) and starts the
    new mapping while the first one runs on."""
    app = tmp_path / "reload-app"
    (app / "src").mkdir(parents=True)
    template = app / "template.yaml"
    template.write_text("Transform: AWS::Serverless-2016-10-31\n" + QUEUE_TEMPLATE)
    (app / "src" / "echo.py").write_text(ECHO)
    poller = await run_template(template)
    sqs = aws["sqs"]
    sqs.send_message(QueueUrl=queue_url(sqs, "reload-first"), MessageBody="one")
    await wait_until(lambda: "first got one" in outputs(poller, "FirstFunction"), timeout=30, what="first")

    template.write_text(template.read_text() + SECOND)
    await wait_until(
        lambda: any(line.get("event") == "config_reloaded" for line in poller.logs()),
        timeout=30,
        what="reload",
    )
    [reloaded] = [line for line in poller.logs() if line.get("event") == "config_reloaded"]
    assert reloaded["added"] == ["SecondFunctionQ"], reloaded
    assert reloaded["removed"] == [], reloaded
    assert reloaded["changed"] == [], reloaded
    sqs.send_message(QueueUrl=queue_url(sqs, "reload-app-Second"), MessageBody="two")
    sqs.send_message(QueueUrl=queue_url(sqs, "reload-first"), MessageBody="three")
    await wait_until(lambda: "second got two" in outputs(poller, "SecondFunction"), timeout=30, what="second")
    await wait_until(
        lambda: "first got three" in outputs(poller, "FirstFunction"), timeout=30, what="first again"
    )
