"""The Lambda event-source-mapping API through boto3's `lambda` client against the real service
(DESIGN §1.9; spec §1.1 operations, §1.2 the reply, §1.5 states, §1.6 messages, §1.8 updates)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.conftest import REGION, PollerProcess, StartPoller, wait_until

pytestmark = pytest.mark.integration

REDELIVERY_TIMEOUT = 35.0

HANDLER = """
import json
from pathlib import Path

SEEN = Path(__file__).parent / "seen.jsonl"


def handle(event, context):
    with SEEN.open("a") as out:
        for record in event["Records"]:
            out.write(json.dumps({"body": record["body"], "batch": len(event["Records"])}) + "\\n")
    return {}
"""


def lambda_client(poller: PollerProcess, key: str = "testing") -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{poller.port}",
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


def seen(poller: PollerProcess) -> list[dict[str, Any]]:
    path = poller.config_path.parent / "seen.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def state_of(client: Any, uuid: str) -> str:
    return str(client.get_event_source_mapping(UUID=uuid)["State"])


def status_states(poller: PollerProcess) -> dict[str, str]:
    return {m["Name"]: m["State"] for m in poller.status()["mappings"]}


async def start(
    start_poller: StartPoller, mappings: list[dict[str, Any]] | None = None, **kw: Any
) -> PollerProcess:
    return await start_poller(mappings or [], handlers={"api_handler": HANDLER}, **kw)


async def test_create_flows_records_then_update_and_delete(
    sqs: Any, make_queue: Any, start_poller: StartPoller
) -> None:
    """spec §1.1: Create 202 Creating → Enabled; records flow; Update (202) drains and restarts with
    the new BatchSize; Delete (202) Deleting → gone (ResourceNotFoundException)."""
    queue = make_queue(visibility=5)
    poller = await start(start_poller)
    client = lambda_client(poller)
    created = client.create_event_source_mapping(
        EventSourceArn=queue.arn,
        FunctionName="python:api_handler.handle",
        BatchSize=1,
        Tags={"Name": "orders-api", "team": "payments"},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    uuid = created["UUID"]
    assert created["State"] == "Creating"
    assert (
        created["EventSourceMappingArn"]
        == f"arn:aws:lambda:{REGION}:123456789012:event-source-mapping:{uuid}"
    )
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:123456789012:function:orders-api"
    assert (
        created["BatchSize"],
        created["MaximumBatchingWindowInSeconds"],
        created["FunctionResponseTypes"],
    ) == (
        1,
        0,
        [],
    )
    assert created["StateTransitionReason"] == "USER_INITIATED"
    assert "LastProcessingResult" not in created  # spec §1.2: null for SQS
    await wait_until(lambda: state_of(client, uuid) == "Enabled", what="the API mapping running")
    assert status_states(poller)["orders-api"] == "Enabled"  # the same state /status shows

    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)
    await wait_until(lambda: len(seen(poller)) == 3, what="records through the python handler")
    assert sorted(r["body"] for r in seen(poller)) == ["a", "b", "c"]
    assert {r["batch"] for r in seen(poller)} == {1}

    updated = client.update_event_source_mapping(UUID=uuid, BatchSize=10, MaximumBatchingWindowInSeconds=1)
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert updated["State"] == "Updating"
    assert updated["BatchSize"] == 10
    await wait_until(lambda: state_of(client, uuid) == "Enabled", what="the restart after the update")
    assert any(
        line.get("event") == "mapping_restarting" and line.get("mapping") == "orders-api"
        for line in poller.logs()
    )
    sqs.send_message_batch(
        QueueUrl=queue.url, Entries=[{"Id": str(i), "MessageBody": f"x{i}"} for i in range(5)]
    )
    # Up to a long poll (20 s) of the drained source may still take them on moto's side; they come
    # back after the visibility timeout (at-least-once, DESIGN §3), as in test_hot_reload.
    await wait_until(
        lambda: len(seen(poller)) == 8, timeout=REDELIVERY_TIMEOUT, what="records after the update"
    )
    assert max(r["batch"] for r in seen(poller)[3:]) > 1  # the new BatchSize applies

    deleted = client.delete_event_source_mapping(UUID=uuid)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert deleted["State"] == "Deleting"

    def gone() -> bool:
        try:
            client.get_event_source_mapping(UUID=uuid)
        except client.exceptions.ResourceNotFoundException:
            return True
        return False

    await wait_until(gone, what="the mapping gone")
    assert "orders-api" not in status_states(poller)
    sqs.send_message(QueueUrl=queue.url, MessageBody="after delete")
    with pytest.raises(AssertionError):
        await wait_until(lambda: len(seen(poller)) > 8, timeout=3, what="no delivery after delete")
