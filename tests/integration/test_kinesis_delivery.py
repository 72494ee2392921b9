"""Kinesis through the real `poller run`: payloads, starting positions, order, checkpoints."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import KinesisDataStreamModel

from tests.integration.conftest import (
    REGION,
    FunctionServer,
    StartPoller,
    put_kinesis,
    stream_mapping,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_records_arrive_as_lambda_delivers_them(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §3.2: base64 data, eventID shardId:sequenceNumber, epoch-second arrival, identity ARN."""
    stream = make_stream()
    written = put_kinesis(kinesis, stream, [("device-1", b'{"temp": 21.5}'), ("device-2", b"\xff\x00raw")])
    before = time.time()
    poller = await start_poller(
        [stream_mapping("telemetry", stream.arn, function_server.url)],
        settings={"aws": {"role_arn": "arn:aws:iam::123456789012:role/my-function-role"}},
    )
    await wait_until(lambda: len(function_server.records) >= 2, timeout=20, what="two records")
    first, second = function_server.records[:2]
    assert set(first) == {
        "kinesis",
        "eventSource",
        "eventVersion",
        "eventID",
        "eventName",
        "invokeIdentityArn",
        "awsRegion",
        "eventSourceARN",
    }
    assert first["eventSource"] == "aws:kinesis"
    assert first["eventVersion"] == "1.0"
    assert first["eventName"] == "aws:kinesis:record"
    assert first["eventID"] == f"{written[0]['ShardId']}:{written[0]['SequenceNumber']}"
    assert first["invokeIdentityArn"] == "arn:aws:iam::123456789012:role/my-function-role"
    assert first["awsRegion"] == REGION
    assert first["eventSourceARN"] == stream.arn
    inner = first["kinesis"]
    assert inner["kinesisSchemaVersion"] == "1.0"
    assert inner["partitionKey"] == "device-1"
    assert inner["sequenceNumber"] == written[0]["SequenceNumber"]
    assert base64.b64decode(inner["data"]) == b'{"temp": 21.5}'
    assert isinstance(inner["approximateArrivalTimestamp"], float)
    assert before - 60 < inner["approximateArrivalTimestamp"] <= time.time()
    assert base64.b64decode(second["kinesis"]["data"]) == b"\xff\x00raw"
    # Handlers written with Powertools' parser take the event as it arrived (DESIGN §1.5).
    parsed = [KinesisDataStreamModel.model_validate(event) for event in function_server.events]
    assert [r.kinesis.data for m in parsed for r in m.Records] == [b'{"temp": 21.5}', b"\xff\x00raw"]
    # A mapping that retries forever with no destination is allowed, but the startup log says why
    # it is risky (one poison record blocks its shard).
    warnings = [line for line in poller.logs() if line.get("event") == "config_problem"]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
    assert "Mapping 'telemetry': MaximumRetryAttempts:" in warnings[0]["problem"]
    assert "blocks its shard" in warnings[0]["problem"]
    status = poller.status()["mappings"][0]
    assert status["State"] == "Enabled"
    assert status["StateTransitionReason"] == "User action"
    await wait_until(lambda: poller.status()["mappings"][0]["LastProcessingResult"] == "OK", timeout=10)
    shard = written[-1]["ShardId"]
    await wait_until(
        lambda: (
            poller.status()["mappings"][0]["Positions"][shard]["SequenceNumber"]
            == written[-1]["SequenceNumber"]
        ),
        timeout=10,
        what="checkpoint at the last record",
    )
    assert poller.metric("poller_records_polled_total", mapping="telemetry") == 2
    assert poller.metric("poller_invocations_total", mapping="telemetry", outcome="success") >= 1
    assert poller.terminate() == 0


async def test_restart_resumes_after_the_checkpoint(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """DESIGN §3 / issue: after a restart the mapping resumes right after the last acknowledged record."""
    stream = make_stream()
    state = {"state": {"path": str(tmp_path / "state.sqlite3")}}
    put_kinesis(kinesis, stream, [(f"k{i}", f"first-{i}".encode()) for i in range(5)])
    mapping = stream_mapping("resume", stream.arn, function_server.url, BatchSize=2)
    poller = await start_poller([mapping], settings=state)
    await wait_until(lambda: len(function_server.records) >= 5, timeout=20, what="first five")
    shard = next(iter(poller.status()["mappings"][0]["Positions"]))
    last = function_server.records[-1]["kinesis"]["sequenceNumber"]
    await wait_until(
        lambda: poller.status()["mappings"][0]["Positions"][shard]["SequenceNumber"] == last, timeout=10
    )
    assert poller.terminate() == 0
    put_kinesis(kinesis, stream, [(f"k{i}", f"second-{i}".encode()) for i in range(3)])
    await start_poller([mapping], settings=state)
    await wait_until(lambda: len(function_server.records) >= 8, timeout=20, what="three more")
    data = [base64.b64decode(r["kinesis"]["data"]).decode() for r in function_server.records]
    assert data == [f"first-{i}" for i in range(5)] + [f"second-{i}" for i in range(3)]
