"""Sources poller cannot read yet run through start, hot reload and shutdown as mappings that never
start: /status shows them `Disabled` with the reason, /readyz is not held up, the others deliver
(issue 18 item 3; spec §1.5; DESIGN §1.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import FunctionServer, PollerProcess, StartPoller, wait_until

pytestmark = pytest.mark.integration

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:broker"
MQ = {
    "Name": "mq",
    "EventSourceArn": "arn:aws:mq:us-east-1:123456789012:broker:orders:b-0b4c8e9a-1",
    "Queues": ["orders"],
    "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
}
DOCDB = {
    "Name": "docdb",
    "EventSourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:docs",
    "DocumentDBEventSourceConfig": {"DatabaseName": "db"},
    "StartingPosition": "LATEST",
    "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
}
MSK = {
    "Name": "msk",
    "EventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/orders/0b4c8e9a-1",
    "Topics": ["orders"],
    "StartingPosition": "LATEST",
}


def by_name(poller: PollerProcess) -> dict[str, dict[str, Any]]:
    return {m["Name"]: m for m in poller.status()["mappings"]}


async def test_unstartable_mappings_are_reported_and_the_others_run(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    queue = make_queue()
    unstartable = [{**m, "FunctionName": function_server.url} for m in (MQ, DOCDB, MSK)]
    poller = await start_poller(
        [*unstartable, {"Name": "good", "EventSourceArn": queue.arn, "FunctionName": function_server.url}]
    )
    assert poller.ready()
    sqs.send_message(QueueUrl=queue.url, MessageBody="fine")
    await wait_until(lambda: function_server.bodies() == ["fine"], what="the SQS mapping delivers")
    mappings = by_name(poller)
    assert mappings["good"]["State"] == "Enabled"
    for name, words in (
        ("mq", "does not read Amazon MQ brokers yet"),
        ("docdb", "does not read Amazon DocumentDB change streams yet"),
        ("msk", "cannot look up an Amazon MSK cluster's brokers from its ARN"),
    ):
        assert mappings[name]["State"] == "Disabled", mappings[name]
        assert mappings[name]["StateTransitionReason"].startswith("ESM_CONFIG_NOT_VALID: Poller "), name
        assert words in mappings[name]["StateTransitionReason"]
    assert [m["Source"] for m in (mappings["mq"], mappings["docdb"], mappings["msk"])] == [
        "mq",
        "documentdb",
        "msk",
    ]
    warnings = poller.status()["reload"]["problems"]
    assert len([w for w in warnings if "Accepted, but this mapping will not run" in w]) == 3
    assert poller.terminate(timeout=20) == 0


async def test_a_hot_reload_changes_and_removes_an_unstartable_mapping(
    function_server: FunctionServer, start_poller: StartPoller
) -> None:
    poller = await start_poller([{**MQ, "FunctionName": function_server.url}])
    await wait_until(lambda: by_name(poller)["mq"]["State"] == "Disabled", what="reported as not running")
    directory = poller.config_path.parent / "mappings"
    [path] = directory.glob("*.yaml")
    path.write_text(json.dumps({**MQ, "FunctionName": function_server.url, "BatchSize": 5}))
    await wait_until(lambda: poller.status()["reload"]["changed"] == ["mq"], what="the change applied")
    await wait_until(lambda: by_name(poller)["mq"]["State"] == "Disabled", what="still not running")
    path.unlink()
    await wait_until(lambda: "mq" not in by_name(poller), what="the mapping removed")
    assert poller.terminate(timeout=20) == 0
