"""A template's queues, streams and tables made to exist (DESIGN §1.10; issue 16 §2): the requests
worked out from CloudFormation properties, and what is created, looked up or reported missing.

The AWS side is a small in-memory fake with the API's method names (not aiobotocore); the real
calls against moto are in tests/integration/test_template_run.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from poller.api.template_requests import (
    creation_order,
    queue_attributes,
    queue_name,
    redrive_target,
    stream_request,
    table_request,
)
from poller.api.template_resources import SourceClients, ensure_with
from poller.api.template_sources import SourceResource

TEMPLATE = Path("/app/template.yaml")
GUESSED = "arn:aws:sqs:us-east-1:000000000000:"


def queue(logical_id: str, name: str, line: int = 1, **properties: Any) -> SourceResource:
    return SourceResource(logical_id, "AWS::SQS::Queue", name, properties, line)


def refused(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} says no"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Op",
    )


class FakeAws:
    """Queues, streams and tables by name; records what was created, in order."""

    def __init__(self, *, queues: tuple[str, ...] = (), tables: dict[str, bool] | None = None) -> None:
        self.queues: dict[str, dict[str, str]] = {name: {} for name in queues}
        self.streams: dict[str, dict[str, Any]] = {}
        self.tables: dict[str, dict[str, Any]] = {}
        for name, streamed in (tables or {}).items():
            self.tables[name] = self._table(name, streamed)
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.refuse: str | None = None
        self.describes = 0

    def clients(self) -> SourceClients:
        return SourceClients(sqs=self, kinesis=self, dynamodb=self)

    @staticmethod
    def _table(name: str, streamed: bool) -> dict[str, Any]:
        table = {"TableName": name, "TableArn": f"arn:aws:dynamodb:r:1:table/{name}", "TableStatus": "ACTIVE"}
        if streamed:
            table["LatestStreamArn"] = f"arn:aws:dynamodb:r:1:table/{name}/stream/2026"
        return table

    async def get_queue_url(self, **request: Any) -> dict[str, str]:
        name = request["QueueName"]
        if self.refuse:
            raise refused(self.refuse, 403)
        if name not in self.queues:
            raise refused("AWS.SimpleQueueService.NonExistentQueue")
        return {"QueueUrl": f"http://aws/1/{name}"}

    async def create_queue(self, **request: Any) -> dict[str, str]:
        self.created.append(("queue", request))
        self.queues[request["QueueName"]] = request["Attributes"]
        return {"QueueUrl": f"http://aws/1/{request['QueueName']}"}

    async def get_queue_attributes(self, **request: Any) -> dict[str, Any]:
        url = request["QueueUrl"]
        return {"Attributes": {"QueueArn": f"arn:aws:sqs:r:1:{url.rsplit('/', 1)[1]}"}}

    async def describe_stream_summary(self, **request: Any) -> dict[str, Any]:
        name = request["StreamName"]
        if name not in self.streams:
            raise refused("ResourceNotFoundException")
        stream = self.streams[name]
        self.describes += 1
        # CREATING at the first look after the create, ACTIVE after.
        status = "ACTIVE" if self.describes > 1 else "CREATING"
        return {"StreamDescriptionSummary": {"StreamARN": stream["arn"], "StreamStatus": status}}

    async def create_stream(self, **request: Any) -> None:
        self.created.append(("stream", request))
        self.streams[request["StreamName"]] = {"arn": f"arn:aws:kinesis:r:1:stream/{request['StreamName']}"}

    async def describe_table(self, **request: Any) -> dict[str, Any]:
        name = request["TableName"]
        if name not in self.tables:
            raise refused("ResourceNotFoundException")
        return {"Table": self.tables[name]}

    async def create_table(self, **request: Any) -> None:
        self.created.append(("table", request))
        self.tables[request["TableName"]] = self._table(
            request["TableName"], "StreamSpecification" in request
        )

    async def update_table(self, **request: Any) -> dict[str, Any]:
        name = request["TableName"]
        self.created.append(("stream on", {"TableName": name}))
        self.tables[name] = self._table(name, True)
        return {"TableDescription": self.tables[name]}


# -- requests (pure) ---------------------------------------------------------------------------------


def test_a_dead_letter_queue_is_made_before_the_queue_whose_redrive_policy_names_it() -> None:
    main = queue(
        "Orders",
        "orders",
        RedrivePolicy={"deadLetterTargetArn": GUESSED + "orders-dlq", "maxReceiveCount": 3},
    )
    by_getatt = queue("Other", "other", RedrivePolicy={"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}})
    dlq = queue("Dlq", "orders-dlq")
    assert [s.logical_id for s in creation_order([main, by_getatt, dlq])] == ["Dlq", "Orders", "Other"]
    assert redrive_target(main, [main, dlq]) == "Dlq"
    # A policy naming a queue the template does not make leaves the order as written.
    outside = queue("Q", "q", RedrivePolicy=json.dumps({"deadLetterTargetArn": GUESSED + "elsewhere"}))
    assert redrive_target(outside, [outside, dlq]) is None
    assert [s.logical_id for s in creation_order([outside, dlq])] == ["Q", "Dlq"]


def test_a_redrive_cycle_does_not_loop() -> None:
    a = queue("A", "a", RedrivePolicy={"deadLetterTargetArn": GUESSED + "b"})
    b = queue("B", "b", RedrivePolicy={"deadLetterTargetArn": GUESSED + "a"})
    assert sorted(s.logical_id for s in creation_order([a, b])) == ["A", "B"]


def test_queue_properties_become_sqs_attributes_as_strings_and_the_kms_key_is_left_out() -> None:
    source = queue(
        "Q",
        "q.fifo",
        FifoQueue=True,
        ContentBasedDeduplication="true",
        VisibilityTimeout=30,
        MessageRetentionPeriod="3600",
        DelaySeconds=0,
        ReceiveMessageWaitTimeSeconds=20,
        RedriveAllowPolicy={"redrivePermission": "allowAll"},
        RedrivePolicy={"deadLetterTargetArn": GUESSED + "dlq", "maxReceiveCount": 2},
        KmsMasterKeyId="alias/aws/sqs",
        QueueName="q.fifo",
    )
    assert queue_attributes(source, "arn:aws:sqs:us-east-1:123456789012:dlq") == {
        "FifoQueue": "true",
        "ContentBasedDeduplication": "true",
        "VisibilityTimeout": "30",
        "MessageRetentionPeriod": "3600",
        "DelaySeconds": "0",
        "ReceiveMessageWaitTimeSeconds": "20",
        "RedriveAllowPolicy": '{"redrivePermission": "allowAll"}',
        # The real dead-letter queue's ARN, not the one the template reader guessed.
        "RedrivePolicy": '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq", "maxReceiveCount": 2}',
    }
    # Without a made queue to point at, the policy is sent as written.
    assert json.loads(queue_attributes(source)["RedrivePolicy"])["deadLetterTargetArn"] == GUESSED + "dlq"


def test_a_fifo_queue_whose_name_cloudformation_makes_up_ends_in_fifo() -> None:
    assert queue_name(queue("Q", "stack-Q-abc", FifoQueue=True)) == "stack-Q-abc.fifo"
    assert queue_name(queue("Q", "named.fifo", FifoQueue="true", QueueName="named.fifo")) == "named.fifo"
    assert queue_name(queue("Q", "plain")) == "plain"


def test_stream_requests_provisioned_with_a_shard_count_or_on_demand_without() -> None:
    provisioned = SourceResource("S", "AWS::Kinesis::Stream", "s", {"ShardCount": "2"})
    assert stream_request(provisioned) == {"StreamName": "s", "ShardCount": 2}
    assert stream_request(SourceResource("S", "AWS::Kinesis::Stream", "s")) == {
        "StreamName": "s",
        "ShardCount": 1,
    }
    on_demand = SourceResource(
        "S", "AWS::Kinesis::Stream", "s", {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}}
    )
    assert stream_request(on_demand) == {"StreamName": "s", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}


def test_table_request_enables_the_stream_and_keeps_only_api_keys_of_indexes() -> None:
    properties = {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "ProvisionedThroughput": {"ReadCapacityUnits": "5", "WriteCapacityUnits": 5},
        "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by-pk",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
                "ContributorInsightsSpecification": {"Enabled": True},
            }
        ],
        "Tags": [{"Key": "team", "Value": "orders"}],
    }
    assert table_request(SourceResource("T", "AWS::DynamoDB::Table", "t", properties)) == {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by-pk",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "Tags": [{"Key": "team", "Value": "orders"}],
    }


# -- creating and looking up ---------------------------------------------------------------------------


async def test_with_an_endpoint_missing_sources_are_created_dlq_first_and_their_attributes_read_back() -> (
    None
):
    aws = FakeAws()
    sources = [
        queue(
            "Orders",
            "orders",
            3,
            RedrivePolicy={"deadLetterTargetArn": GUESSED + "orders-dlq", "maxReceiveCount": 2},
        ),
        queue("OrdersDlq", "orders-dlq", 9),
        SourceResource("Ticks", "AWS::Kinesis::Stream", "ticks", {"ShardCount": 1}, 12),
        SourceResource(
            "Stock",
            "AWS::DynamoDB::Table",
            "stock",
            {
                "KeySchema": [],
                "AttributeDefinitions": [],
                "BillingMode": "PAY_PER_REQUEST",
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            },
            20,
        ),
    ]
    attributes, problems = await ensure_with(aws.clients(), sources, create=True, template=TEMPLATE)
    assert problems == []
    assert [
        (kind, r.get("QueueName") or r.get("StreamName") or r.get("TableName")) for kind, r in aws.created
    ] == [("queue", "orders-dlq"), ("queue", "orders"), ("stream", "ticks"), ("table", "stock")]
    redrive = json.loads(aws.queues["orders"]["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": "arn:aws:sqs:r:1:orders-dlq", "maxReceiveCount": 2}
    assert attributes == {
        "OrdersDlq": {
            "Ref": "http://aws/1/orders-dlq",
            "QueueUrl": "http://aws/1/orders-dlq",
            "Arn": "arn:aws:sqs:r:1:orders-dlq",
            "QueueName": "orders-dlq",
        },
        "Orders": {
            "Ref": "http://aws/1/orders",
            "QueueUrl": "http://aws/1/orders",
            "Arn": "arn:aws:sqs:r:1:orders",
            "QueueName": "orders",
        },
        "Ticks": {"Ref": "ticks", "Arn": "arn:aws:kinesis:r:1:stream/ticks"},
        "Stock": {
            "Ref": "stock",
            "Arn": "arn:aws:dynamodb:r:1:table/stock",
            "StreamArn": "arn:aws:dynamodb:r:1:table/stock/stream/2026",
        },
    }
    assert aws.describes == 2, "the new stream was looked at until it was ACTIVE"


async def test_existing_sources_are_looked_up_not_recreated() -> None:
    aws = FakeAws(queues=("orders",), tables={"stock": False})
    stream_wanted = {"StreamSpecification": {"StreamViewType": "KEYS_ONLY"}}
    sources = [
        queue("Orders", "orders", VisibilityTimeout=99),
        SourceResource("Stock", "AWS::DynamoDB::Table", "stock", stream_wanted),
    ]
    attributes, problems = await ensure_with(aws.clients(), sources, create=True)
    assert problems == []
    assert aws.queues["orders"] == {}, "an existing queue's attributes are left alone"
    # ... but an emulation's table the template streams gets its stream turned on.
    assert aws.created == [("stream on", {"TableName": "stock"})]
    assert attributes["Stock"]["StreamArn"].endswith("/stream/2026")


async def test_against_real_aws_nothing_is_created_and_each_missing_source_is_reported_once() -> None:
    aws = FakeAws(queues=("orders",), tables={"unstreamed": False})
    sources = [
        queue("Orders", "orders", 3),
        queue("OrdersDlq", "orders-dlq", 9),
        SourceResource("Ticks", "AWS::Kinesis::Stream", "ticks", {}, 12),
        SourceResource(
            "Plain",
            "AWS::DynamoDB::Table",
            "unstreamed",
            {"StreamSpecification": {"StreamViewType": "NEW_IMAGE"}},
            20,
        ),
    ]
    attributes, problems = await ensure_with(
        aws.clients(), sources, create=False, template=TEMPLATE, where="AWS us-east-1"
    )
    assert aws.created == []
    assert set(attributes) == {"Orders"}
    assert [(p.field, p.line, p.file) for p in problems] == [
        ("OrdersDlq", 9, TEMPLATE),
        ("Ticks", 12, TEMPLATE),
        ("Plain", 20, TEMPLATE),
    ]
    assert str(problems[0]) == (
        "/app/template.yaml:9: OrdersDlq: The queue 'orders-dlq' (AWS::SQS::Queue) does not exist in AWS "
        "us-east-1. Without aws.endpoint_url poller creates nothing: deploy the template's resources first, "
        "or set aws.endpoint_url to create them at LocalStack or moto. The mappings that read it do not start."
    )
    assert "exists but has no stream" in problems[2].message


async def test_a_refused_lookup_is_reported_with_the_aws_error_code_never_raised() -> None:
    aws = FakeAws()
    aws.refuse = "AccessDenied"
    _, problems = await ensure_with(
        aws.clients(), [queue("Orders", "orders", 3)], create=False, template=TEMPLATE
    )
    [problem] = problems
    assert (problem.field, problem.line) == ("Orders", 3)
    assert (
        "Could not look up the queue 'orders' (AWS::SQS::Queue) at AWS (AccessDenied: AccessDenied says no)"
        in (problem.message)
    )


def test_malformed_table_keys_are_left_for_botocore_to_refuse_not_a_crash() -> None:
    """DESIGN §3: a key schema of the wrong shape reaches CreateTable as written, whose parameter
    check turns it into a problem, instead of failing while the request is built."""
    source = SourceResource(
        "T", "AWS::DynamoDB::Table", "t", {"KeySchema": {"AttributeName": "id"}, "AttributeDefinitions": [[1, 2]]}
    )
    request = table_request(source)
    assert request["KeySchema"] == [{"AttributeName": "id"}]
    assert request["AttributeDefinitions"] == [[1, 2]]
