"""The test Kafka broker, and the `kafka://topic` on-failure destination against it (spec §6.5).

Records go through a real broker both ways: what the fixture's helpers write is read back byte for
byte, and what the destination writes is compared with the pure §6.5 builder's bytes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiobotocore.session
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from poller.config.destinations import parse_destination
from poller.core.failure_records import (
    FailureCondition,
    FailureContext,
    KafkaBatchInfo,
    KafkaPartitionRange,
    kafka_failure_record,
)
from poller.core.kafka_event import KafkaEventShape, KafkaRecordInput, kafka_record
from poller.core.kafka_failure_messages import (
    KafkaFailedRecord,
    group_records,
    kafka_failed_record,
    kafka_item,
)
from poller.core.outcome import FunctionFailed
from poller.destinations import DeliveryFailed, DeliveryRejected, FailureDelivery, open_destination
from poller.destinations.kafka import KafkaDestination, KafkaProducers
from tests.integration.conftest import free_port
from tests.integration.kafka_broker import (
    FETCH_MAX_WAIT_MS,
    Produce,
    create_topic,
    produce,
    read_all,
    read_topic,
    tansu,
)

pytestmark = pytest.mark.integration

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"
T0 = 1732270000123

SOURCE_RECORDS = [
    Produce(b'{"orderId": 1}', key=b"order-1", headers=(("traceId", b"abc"),), partition=0, timestamp_ms=T0),
    Produce(
        b"\x00\xff binary",
        key=b"order-2",
        headers=(("bin", b"\x80\x00\xff"), ("bin", b"again"), ("null", None)),
        partition=1,
        timestamp_ms=T0 + 1,
    ),
    Produce(None, key=b"order-3", partition=2, timestamp_ms=T0 + 2),  # a tombstone
    Produce(b"no key", partition=2, timestamp_ms=T0 + 3),
    Produce(b"", key=b"", headers=(("e", b""),), partition=1, timestamp_ms=T0 + 4),
]


@pytest.fixture
async def producers() -> AsyncIterator[KafkaProducers]:
    shared = KafkaProducers()
    yield shared
    await shared.aclose()


async def source_records(bootstrap: str) -> list[Any]:
    """SOURCE_RECORDS written to a fresh 3-partition topic and consumed back."""
    topic = await create_topic(bootstrap, partitions=3)
    await produce(bootstrap, topic, SOURCE_RECORDS)
    return await read_topic(bootstrap, topic, len(SOURCE_RECORDS))


def batch_failure(bootstrap: str, items: list[Any]) -> tuple[dict[str, Any], bytes]:
    """The §6.4 record and the invocation event of a discarded batch of these consumed records."""
    shape = KafkaEventShape(bootstrap_servers=bootstrap)
    event = shape.encode_grouped(group_records((i.group, i.encoded) for i in items))
    context = FailureContext(
        request_id="316aa6d0-8154-4c1e-9af7-85d5f4a6bc81",
        function_arn=FUNCTION_ARN,
        condition=FailureCondition.RETRY_ATTEMPTS_EXHAUSTED,
        approximate_invoke_count=3,
        outcome=FunctionFailed(error_type="Boom", error_message="boom"),
        timestamp_epoch_seconds=1732270506.021,
    )
    by_group: dict[str, list[Any]] = {}
    for item in items:
        by_group.setdefault(item.group, []).append(item)
    ranges = [
        KafkaPartitionRange(
            topic=group[0].consumed.topic,
            partition=group[0].consumed.partition,
            first_offset=group[0].consumed.offset,
            last_offset=group[-1].consumed.offset,
            first_timestamp_epoch_seconds=group[0].consumed.timestamp_ms / 1000,
            last_timestamp_epoch_seconds=group[-1].consumed.timestamp_ms / 1000,
        )
        for group in by_group.values()
    ]
    info = KafkaBatchInfo(
        batch_size=len(items), bootstrap_servers=bootstrap, payload_size=len(event), partitions=ranges
    )
    return kafka_failure_record(context, info), event


async def test_round_trip_keeps_keys_values_headers_and_timestamps_over_three_partitions(
    kafka_bootstrap: str,
) -> None:
    consumed = await source_records(kafka_bootstrap)

    assert [(r.partition, r.offset) for r in consumed] == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)]
    by_timestamp = sorted(consumed, key=lambda r: r.timestamp)
    for sent, got in zip(SOURCE_RECORDS, by_timestamp, strict=True):
        assert (got.partition, got.key, got.value, got.timestamp) == (
            sent.partition,
            sent.key,
            sent.value,
            sent.timestamp_ms,
        )
        assert tuple(got.headers) == sent.headers
        assert got.timestamp_type == 0  # CREATE_TIME
    # The event records built from what the broker returned carry the originals (spec §3.4).
    tombstone = kafka_record(kafka_item(by_timestamp[2]).consumed)
    assert tombstone["value"] is None
    assert tombstone["key"] == "b3JkZXItMw=="
    assert "key" not in kafka_record(kafka_item(by_timestamp[3]).consumed)
    assert kafka_record(kafka_item(by_timestamp[1]).consumed)["headers"] == [
        {"bin": [-128, 0, -1]},
        {"bin": [97, 103, 97, 105, 110]},
        {"null": []},
    ]


async def test_a_consumer_group_resumes_from_committed_offsets(kafka_bootstrap: str) -> None:
    """What the Kafka source relies on: offsets committed by one member are where the next starts."""
    topic = await create_topic(kafka_bootstrap, partitions=2)
    await produce(kafka_bootstrap, topic, [Produce(b"%d" % n, partition=n % 2) for n in range(6)])
    group = f"group-{topic}"

    first = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        # Tansu answers JoinGroup after half the session timeout; 6 s is Kafka's own minimum.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await first.start()
    try:
        seen: list[Any] = []
        deadline = time.monotonic() + 20
        while len(seen) < 6 and time.monotonic() < deadline:
            for batch in (await first.getmany(timeout_ms=200)).values():
                seen.extend(batch)
        assert len(seen) == 6
        await first.commit({TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 1})
    finally:
        await first.stop()

    second = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await second.start()
    try:
        assert await second.committed(TopicPartition(topic, 0)) == 2
        assert await second.committed(TopicPartition(topic, 1)) == 1
    finally:
        await second.stop()


async def test_destination_writes_one_message_per_failed_record_keyed_like_it(
    kafka_bootstrap: str, producers: KafkaProducers
) -> None:
    """spec §6.5 through the `Destination` protocol: the event is split into its records."""
    items = [kafka_item(r) for r in await source_records(kafka_bootstrap)]
    failure, event = batch_failure(kafka_bootstrap, items)
    target = await create_topic(kafka_bootstrap, partitions=3)
    async with AsyncExitStack() as stack:
        destination = await open_destination(
            parse_destination(f"kafka://{target}"),
            session=aiobotocore.session.get_session(),
            endpoint_url=None,
            stack=stack,
            kafka_bootstrap_servers=kafka_bootstrap,
            kafka_producers=producers,
        )
        assert destination.kind == "kafka"

        await destination.deliver(FailureDelivery(failure, event))

    written = await read_all(kafka_bootstrap, target)
    assert len(written) == len(items)
    expected = {kafka_failed_record(failure, i.record).value: i for i in items}
    assert sorted(m.value for m in written) == sorted(expected)
    for message in written:
        original = expected[message.value].consumed
        assert message.key == original.key
        document = orjson.loads(message.value)
        assert document["KafkaBatchInfo"]["batchSize"] == 1
        assert document["KafkaBatchInfo"]["recordInfo"]["offset"] == str(original.offset)
        [only] = document["payload"]["records"][original.group]
        assert only == kafka_record(original)
    # An empty key is a key, not a null one (spec §3.4: `"key": ""` vs no `key`).
    assert {m.key for m in written} == {b"order-1", b"order-2", b"order-3", b"", None}


async def test_deliver_records_spreads_null_keys_round_robin(
    kafka_bootstrap: str, producers: KafkaProducers
) -> None:
    target = await create_topic(kafka_bootstrap, partitions=3)
    destination = KafkaDestination(target, bootstrap_servers=kafka_bootstrap, producers=producers)

    await destination.deliver_records([KafkaFailedRecord(None, b"%d" % n) for n in range(6)])
    await destination.deliver_records([KafkaFailedRecord(b"same", b"k%d" % n) for n in range(3)])

    written = await read_topic(kafka_bootstrap, target, 9)
    keyless = [m.partition for m in written if m.key is None]
    assert sorted(keyless) == [0, 0, 1, 1, 2, 2]
    assert len({m.partition for m in written if m.key == b"same"}) == 1


async def test_a_message_too_large_is_rejected_not_retried(kafka_bootstrap: str) -> None:
    target = await create_topic(kafka_bootstrap)
    small = KafkaProducers(max_request_size=1024)
    destination = KafkaDestination(target, bootstrap_servers=kafka_bootstrap, producers=small)
    try:
        with pytest.raises(DeliveryRejected) as caught:
            await destination.deliver_records(
                [KafkaFailedRecord(b"big", b"x" * 4096), KafkaFailedRecord(b"fits", b"small")]
            )
    finally:
        await small.aclose()
    assert not caught.value.retriable
    assert caught.value.code == "MESSAGE_SIZE_TOO_LARGE"
    assert f"kafka://{target}" in str(caught.value)
    # Each record is its own message: the one that fits was still written.
    [written] = await read_all(kafka_bootstrap, target)
    assert written.key == b"fits"


async def test_an_unreachable_cluster_fails_retriably_within_the_timeout() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    destination = KafkaDestination(
        "failures",
        bootstrap_servers=bootstrap,
        producers=KafkaProducers(request_timeout_ms=2000),
        timeout_seconds=5,
    )
    try:
        for _ in range(2):  # a failed start is not kept: the next delivery tries again
            started = time.monotonic()
            with pytest.raises(DeliveryFailed) as caught:
                await destination.deliver_records([KafkaFailedRecord(b"k", b"v")])
            assert time.monotonic() - started < 6
            assert caught.value.retriable
            assert not isinstance(caught.value, DeliveryRejected)
            assert bootstrap in str(caught.value)
    finally:
        await destination.aclose()


async def test_a_cluster_lost_after_start_fails_within_the_timeout(tmp_path: Path) -> None:
    producers = KafkaProducers(request_timeout_ms=2000)
    try:
        async with tansu(tmp_path / "broker.log", stop_signal=signal.SIGKILL) as bootstrap:
            destination = KafkaDestination(
                "lost", bootstrap_servers=bootstrap, producers=producers, timeout_seconds=5
            )
            await destination.deliver_records([KafkaFailedRecord(b"k", b"before")])
        started = time.monotonic()
        with pytest.raises(DeliveryFailed) as caught:
            await destination.deliver_records([KafkaFailedRecord(b"k", b"after")])
        assert time.monotonic() - started < 6
        assert caught.value.retriable
    finally:
        await producers.aclose()


async def test_producers_are_shared_per_cluster_and_closed_once(kafka_bootstrap: str) -> None:
    producers = KafkaProducers()
    first = await producers.get(kafka_bootstrap)
    assert await producers.get(kafka_bootstrap) is first
    destination = KafkaDestination("unused", bootstrap_servers=kafka_bootstrap, producers=producers)
    await destination.aclose()  # not its producers to close
    assert await producers.get(kafka_bootstrap) is first

    await producers.aclose()
    await producers.aclose()

    with pytest.raises(DeliveryFailed, match="closed"):
        await destination.deliver_records([KafkaFailedRecord(b"k", b"v")])


async def test_a_kafka_destination_needs_the_source_cluster() -> None:
    async with AsyncExitStack() as stack:
        with pytest.raises(ValueError, match="kafka_bootstrap_servers"):
            await open_destination(
                parse_destination("kafka://failures"),
                session=aiobotocore.session.get_session(),
                endpoint_url=None,
                stack=stack,
            )


async def test_deliver_requires_the_invocation_event(kafka_bootstrap: str, producers: KafkaProducers) -> None:
    destination = KafkaDestination("failures", bootstrap_servers=kafka_bootstrap, producers=producers)
    consumed = KafkaRecordInput("orders", 0, 1, T0, "CREATE_TIME", b"k", b"v")
    failure, _ = batch_failure(kafka_bootstrap, [kafka_item(consumed)])
    with pytest.raises(ValueError, match="invocation event"):
        await destination.deliver(FailureDelivery(failure, None))
    with pytest.raises(DeliveryRejected, match="Kafka event"):
        await destination.deliver(FailureDelivery(failure, b'{"Records":[]}'))
