"""The Kafka source through the real `poller run` against a real Kafka-compatible broker (Tansu)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aws_lambda_powertools.utilities.parser.models import KafkaSelfManagedEventModel

from tests.integration.conftest import FunctionServer, StartPoller
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_topic(bootstrap: str, partitions: int) -> str:
    name = unique("topic")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def produce(
    bootstrap: str, topic: str, records: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Write (partition, key, value, headers) records in order and wait for each acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition, headers=headers)
    finally:
        await producer.stop()


FAST_GROUP = {"kafka": {"session_timeout_ms": 6000}}
"""Kafka's minimum session timeout: Tansu answers JoinGroup after half of it, and a killed member's
partitions move after all of it."""


def kafka_mapping(name: str, topic: str, bootstrap: str, url: str, **settings: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "Topics": [topic],
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [bootstrap]}},
        "FunctionName": url,
        "StartingPosition": "TRIM_HORIZON",
        **settings,
    }


def values(server: FunctionServer) -> list[str]:
    return [
        base64.b64decode(record["value"]).decode()
        for event in server.events
        for records in event["records"].values()
        for record in records
    ]


def kafka_records(server: FunctionServer) -> list[dict[str, Any]]:
    return [record for event in server.events for records in event["records"].values() for record in records]


async def test_events_carry_keys_headers_and_keep_partition_order(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §3.4: the exact event; every record once, in order per partition, partitions concurrent."""
    topic = await create_topic(kafka_bootstrap, 3)
    records = [
        (p, f"key-{p}".encode(), f"{p}:{n}".encode(), [("trace", b"abc")])
        for n in range(10)
        for p in range(3)
    ]
    records.append((0, None, b"0:10", []))
    await produce(kafka_bootstrap, topic, records)
    poller = await start_poller(
        [kafka_mapping("orders", topic, kafka_bootstrap, function_server.url, BatchSize=4)]
    )
    await wait_until(lambda: len(values(function_server)) >= 31, timeout=60, what="every record")
    seen = values(function_server)
    assert sorted(seen) == sorted(v.decode() for _, _, v, _ in records)
    for p in range(3):
        in_partition = [int(v.split(":")[1]) for v in seen if v.startswith(f"{p}:")]
        assert in_partition == list(range(11 if p == 0 else 10))
    event = function_server.events[0]
    assert list(event) == ["eventSource", "bootstrapServers", "records"]
    assert event["eventSource"] == "SelfManagedKafka"
    assert event["bootstrapServers"] == kafka_bootstrap
    ((group, batch),) = event["records"].items()
    first = batch[0]
    assert group == f"{topic}-{first['partition']}"
    assert first["topic"] == topic
    assert first["offset"] == 0
    assert isinstance(first["timestamp"], int)
    assert first["timestampType"] == "CREATE_TIME"
    assert base64.b64decode(first["key"]) == f"key-{first['partition']}".encode()
    assert first["headers"] == [{"trace": [97, 98, 99]}]
    keyless = next(r for r in kafka_records(function_server) if base64.b64decode(r["value"]) == b"0:10")
    assert "key" not in keyless or keyless["key"] is None
    for e in function_server.events:
        KafkaSelfManagedEventModel.model_validate(e)
    await wait_until(
        lambda: poller.metric("poller_offset_lag", mapping="orders") == 0, timeout=20, what="no lag"
    )


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def test_offsets_are_committed_to_the_group_and_a_restart_does_not_redeliver(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """Offsets in the consumer group (lag tools and KEDA read them); resume after the last commit."""
    topic = await create_topic(kafka_bootstrap, 2)
    await produce(kafka_bootstrap, topic, [(n % 2, None, f"first-{n}".encode(), []) for n in range(6)])
    mapping = kafka_mapping("resume", topic, kafka_bootstrap, function_server.url)
    poller = await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(lambda: len(values(function_server)) >= 6, timeout=60, what="first records")
    assert poller.terminate() == 0
    assert await committed_offsets(kafka_bootstrap, "resume", topic, 2) == {0: 3, 1: 3}
    await produce(kafka_bootstrap, topic, [(n % 2, None, f"second-{n}".encode(), []) for n in range(4)])
    await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(lambda: len(values(function_server)) >= 10, timeout=60, what="new records")
    assert sorted(values(function_server)) == sorted(
        [f"first-{n}" for n in range(6)] + [f"second-{n}" for n in range(4)]
    )


async def test_latest_skips_records_written_before_the_group_existed(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    topic = await create_topic(kafka_bootstrap, 1)
    await produce(kafka_bootstrap, topic, [(0, None, b"before", [])])
    poller = await start_poller(
        [kafka_mapping("latest", topic, kafka_bootstrap, function_server.url, StartingPosition="LATEST")],
        settings=FAST_GROUP,
    )
    await wait_until(
        lambda: poller.status()["mappings"][0]["Positions"], timeout=30, what="partition assigned"
    )
    await produce(kafka_bootstrap, topic, [(0, None, b"after", [])])
    await wait_until(lambda: len(values(function_server)) >= 1, timeout=30, what="the new record")
    assert values(function_server) == ["after"]


async def test_retries_exhausted_go_to_a_kafka_topic_one_message_per_record(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §6.5: one message per failed record, keyed with the original key."""

    async def fail(_: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"errorMessage": "boom"}, headers={"X-Amz-Function-Error": "Unhandled"})

    function_server.behaviour = fail
    topic = await create_topic(kafka_bootstrap, 1)
    failures = await create_topic(kafka_bootstrap, 1)
    await produce(kafka_bootstrap, topic, [(0, b"k1", b"v1", []), (0, b"k2", b"v2", [])])
    mapping = kafka_mapping(
        "to-topic",
        topic,
        kafka_bootstrap,
        function_server.url,
        BatchSize=2,
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": f"kafka://{failures}"}},
    )
    await start_poller([mapping], settings=FAST_GROUP)
    consumer = AIOKafkaConsumer(failures, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        got: list[Any] = []
        async with asyncio.timeout(60):
            while len(got) < 2:
                batch = await consumer.getmany(timeout_ms=500)
                got += [m for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    assert [m.key for m in got] == [b"k1", b"k2"]
    documents = [json.loads(m.value) for m in got]
    for document, offset in zip(documents, (0, 1), strict=True):
        assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert document["requestContext"]["approximateInvokeCount"] == 2
        info = document["KafkaBatchInfo"]
        assert info["batchSize"] == 1
        assert info["recordInfo"]["offset"] == str(offset)
        (records,) = document["payload"]["records"].values()
        assert [r["offset"] for r in records] == [offset]


async def test_two_processes_share_the_group_and_hand_partitions_over(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """Two `poller run` in one consumer group share the partitions; when one stops (SIGTERM) and
    another is killed, the survivor takes their partitions and nothing is lost."""
    topic = await create_topic(kafka_bootstrap, 4)
    mapping = kafka_mapping("shared", topic, kafka_bootstrap, function_server.url, BatchSize=5)
    first = await start_poller([mapping], settings=FAST_GROUP)
    second = await start_poller([mapping], settings=FAST_GROUP)

    def assigned(p: Any) -> int:
        return len(p.status()["mappings"][0]["Positions"])

    await wait_until(
        lambda: assigned(first) + assigned(second) == 4 and assigned(first) > 0 and assigned(second) > 0,
        timeout=60,
        what="partitions shared",
    )
    await produce(kafka_bootstrap, topic, [(n % 4, None, f"a-{n}".encode(), []) for n in range(40)])
    await wait_until(lambda: len(set(values(function_server))) >= 40, timeout=60, what="first wave")
    assert second.terminate() == 0
    await wait_until(lambda: assigned(first) == 4, timeout=60, what="first takes all partitions")
    await produce(kafka_bootstrap, topic, [(n % 4, None, f"b-{n}".encode(), []) for n in range(40)])
    await wait_until(lambda: len(set(values(function_server))) >= 80, timeout=60, what="second wave")
    third = await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(lambda: assigned(third) > 0, timeout=60, what="third joins")
    third.kill()
    await produce(kafka_bootstrap, topic, [(n % 4, None, f"c-{n}".encode(), []) for n in range(40)])
    await wait_until(
        lambda: len(set(values(function_server))) >= 120, timeout=90, what="third wave after kill -9"
    )
    expected = {f"{w}-{n}" for w in "abc" for n in range(40)}
    assert set(values(function_server)) == expected


async def test_retries_exhausted_go_to_sqs_with_the_exact_kafka_record(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller, sqs: Any
) -> None:
    """spec §6.4: the KafkaBatchInfo record, offsets as strings, recordsInfo keyed topic-partition."""

    async def fail(_: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(
            {"errorMessage": "boom"},
            headers={
                "X-Amz-Function-Error": "Unhandled",
                "X-Amz-Request-Id": f"req-{len(function_server.events)}",
            },
        )

    function_server.behaviour = fail
    queue_url = sqs.create_queue(QueueName=unique("kafka-dlq"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic = await create_topic(kafka_bootstrap, 1)
    await produce(kafka_bootstrap, topic, [(0, b"k", b"poison-1", []), (0, b"k", b"poison-2", [])])
    mapping = kafka_mapping(
        "to-sqs",
        topic,
        kafka_bootstrap,
        function_server.url,
        BatchSize=2,
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )
    poller = await start_poller([mapping], settings=FAST_GROUP)
    messages: list[dict[str, Any]] = []

    def received() -> bool:
        messages.extend(sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []))
        return bool(messages)

    await wait_until(received, timeout=60, what="the failure record")
    record = json.loads(messages[0]["Body"])
    invoked = kafka_records(function_server)
    assert len(function_server.events) == 2
    assert list(record) == ["requestContext", "responseContext", "version", "timestamp", "KafkaBatchInfo"]
    assert record["requestContext"] == {
        "requestId": "req-2",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:to-sqs",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 2,
    }
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["version"] == "1.0"
    event_bytes = len(json.dumps(function_server.events[-1], separators=(",", ":")).encode())
    info = record["KafkaBatchInfo"]
    assert info == {
        "batchSize": 2,
        "bootstrapServers": kafka_bootstrap,
        "payloadSize": event_bytes,
        "recordsInfo": {
            f"{topic}-0": {
                "firstRecordOffset": "0",
                "lastRecordOffset": "1",
                "firstRecordTimestamp": iso_millis(invoked[0]["timestamp"]),
                "lastRecordTimestamp": iso_millis(invoked[1]["timestamp"]),
            }
        },
    }
    assert poller.metric("poller_records_sent_to_destination_total", mapping="to-sqs") == 2


def iso_millis(epoch_ms: int) -> str:
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


async def test_offset_lag_rises_while_behind_and_falls_to_zero(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """DESIGN §1.7 offset_lag (Lambda's OffsetLag): records in the partition not yet processed."""

    async def slow(_: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(0.3)  # the function's work
        return web.json_response(None)

    function_server.behaviour = slow
    topic = await create_topic(kafka_bootstrap, 1)
    await produce(kafka_bootstrap, topic, [(0, None, f"r{n}".encode(), []) for n in range(12)])
    poller = await start_poller(
        [kafka_mapping("lag", topic, kafka_bootstrap, function_server.url, BatchSize=1)], settings=FAST_GROUP
    )
    await wait_until(
        lambda: poller.metric("poller_offset_lag", mapping="lag") >= 5, timeout=30, what="lag seen"
    )
    await wait_until(lambda: len(values(function_server)) >= 12, timeout=30, what="all records")
    await wait_until(
        lambda: poller.metric("poller_offset_lag", mapping="lag") == 0, timeout=10, what="no lag"
    )


async def test_filter_criteria_match_the_decoded_value_and_commit_the_rest(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §7.3-7.5: Kafka patterns see `value` decoded; a plain-text value against a JSON pattern
    falls back to metadata filters only (so it passes); non-matching records are committed."""
    topic = await create_topic(kafka_bootstrap, 1)
    await produce(
        kafka_bootstrap,
        topic,
        [
            (0, None, json.dumps({"type": "order", "n": 1}).encode(), []),
            (0, None, json.dumps({"type": "audit", "n": 2}).encode(), []),
            (0, None, b"plain text", []),
            (0, None, json.dumps({"type": "audit", "n": 4}).encode(), []),
        ],
    )
    pattern = json.dumps({"value": {"type": ["order"]}})
    mapping = kafka_mapping(
        "kafka-filter",
        topic,
        kafka_bootstrap,
        function_server.url,
        FilterCriteria={"Filters": [{"Pattern": pattern}]},
    )
    poller = await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(
        lambda: poller.metric("poller_records_filtered_total", mapping="kafka-filter") >= 2, timeout=30
    )
    await wait_until(lambda: len(values(function_server)) >= 2, timeout=30, what="the matching records")
    assert values(function_server) == [json.dumps({"type": "order", "n": 1}), "plain text"]
    assert poller.terminate() == 0
    # The trailing non-matching records are committed too: nothing is left for the group.
    assert await committed_offsets(kafka_bootstrap, "kafka-filter", topic, 1) == {0: 4}


async def test_partial_batch_response_with_partition_and_offset_retries_from_the_failed_record(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §4.2: a Kafka itemIdentifier is {"partition": "<topic>-<partition>", "offset": n}."""
    calls: list[list[int]] = []

    async def fail_offset_2_once(event: dict[str, Any]) -> web.StreamResponse:
        ((group, records),) = event["records"].items()
        offsets = [r["offset"] for r in records]
        calls.append(offsets)
        if 2 in offsets and len(calls) == 1:
            return web.json_response(
                {"batchItemFailures": [{"itemIdentifier": {"partition": group, "offset": 2}}]}
            )
        return web.json_response({"batchItemFailures": []})

    function_server.behaviour = fail_offset_2_once
    topic = await create_topic(kafka_bootstrap, 1)
    await produce(kafka_bootstrap, topic, [(0, None, f"r{n}".encode(), []) for n in range(4)])
    mapping = kafka_mapping(
        "kafka-partial",
        topic,
        kafka_bootstrap,
        function_server.url,
        BatchSize=4,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    poller = await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(lambda: len(calls) >= 2, timeout=30, what="the retry of the failed record")
    assert calls[:2] == [[0, 1, 2, 3], [2, 3]]
    assert poller.metric("poller_invocations_total", mapping="kafka-partial", outcome="partial") == 1


async def test_a_record_over_the_payload_cap_goes_to_the_destination_and_the_rest_flows(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """spec §2, §6.4: a record larger than the 6 MB invoke payload is never invoked; it is reported
    with MaximumPayloadSizeExceeded (responseContext null) and its neighbours are processed."""
    topic = await create_topic(kafka_bootstrap, 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=16 * 1024 * 1024
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"small-before", partition=0)
        await producer.send_and_wait(topic, b"x" * (6 * 1024 * 1024 + 1), partition=0)
        await producer.send_and_wait(topic, b"small-after", partition=0)
    finally:
        await producer.stop()
    failures = tmp_path / "failures.jsonl"
    mapping = kafka_mapping(
        "too-big",
        topic,
        kafka_bootstrap,
        function_server.url,
        DestinationConfig={"OnFailure": {"Destination": f"file://{failures}"}},
    )
    await start_poller([mapping], settings={**FAST_GROUP, "destinations": {"file_root": str(tmp_path)}})
    await wait_until(
        lambda: failures.exists() and failures.read_text().strip(), timeout=60, what="the failure"
    )
    await wait_until(lambda: "small-after" in values(function_server), timeout=30, what="the next record")
    assert values(function_server) == ["small-before", "small-after"]
    (line,) = failures.read_text().splitlines()
    record = json.loads(line)
    assert record["requestContext"]["condition"] == "MaximumPayloadSizeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"] is None
    assert record["KafkaBatchInfo"]["recordsInfo"][f"{topic}-0"]["firstRecordOffset"] == "1"


async def test_a_full_partition_waits_without_holding_up_the_others_and_loses_nothing(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """A partition whose function is stuck fills its buffer and is left out of fetching (its
    fetched records stay with the client); the other partition flows meanwhile, and once the
    function answers every record of the stuck one arrives once, in order."""
    release = asyncio.Event()

    async def stuck_on_partition_0(event: dict[str, Any]) -> web.StreamResponse:
        if any(key.endswith("-0") for key in event["records"]):
            await release.wait()
        return web.json_response(None)

    function_server.behaviour = stuck_on_partition_0
    topic = await create_topic(kafka_bootstrap, 2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for n in range(1500):
            await producer.send(topic, f"p0-{n}".encode(), partition=0)
        for n in range(50):
            await producer.send(topic, f"p1-{n}".encode(), partition=1)
        await producer.flush()
    finally:
        await producer.stop()
    await start_poller(
        [
            kafka_mapping(
                "full", topic, kafka_bootstrap, function_server.url, BatchSize=100, FunctionTimeout=60
            )
        ],
        settings=FAST_GROUP,
    )
    await wait_until(
        lambda: sum(v.startswith("p1-") for v in values(function_server)) >= 50,
        timeout=30,
        what="partition 1",
    )
    # Only partition 0's first batch reached the function (it is recorded on arrival), and waits.
    assert [v for v in values(function_server) if v.startswith("p0-")] == [f"p0-{n}" for n in range(100)]
    release.set()
    await wait_until(lambda: len(values(function_server)) >= 1550, timeout=60, what="every record")
    stuck = [v for v in values(function_server) if v.startswith("p0-")]
    assert stuck == [f"p0-{n}" for n in range(1500)]
    assert [v for v in values(function_server) if v.startswith("p1-")] == [f"p1-{n}" for n in range(50)]
