"""AWS Lambda Powertools' Kafka models accept our events unchanged and decode them back (spec §3.4).

Powertools is what many functions use to read these events; if its models reject ours, functions
that work on AWS would fail here. Every event is parsed from the bytes we would actually send.
Its model needs a UTF-8 `value` string, so tombstones and binary values are left out here: a
function using it rejects those on AWS too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aws_lambda_powertools.utilities.parser.models import KafkaMskEventModel, KafkaSelfManagedEventModel

from poller.core.failure_records import (
    FailureCondition,
    FailureContext,
    KafkaBatchInfo,
    KafkaPartitionRange,
    kafka_failure_record,
)
from poller.core.kafka_event import KafkaEventShape, KafkaRecordInput
from poller.core.kafka_failure_messages import group_records, kafka_failed_record, kafka_item
from poller.core.outcome import FunctionFailed

SERVERS = "10.0.0.1:9092,broker-2.internal:9093"
MSK_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/demo/5a3f2c1e-1111-2222-3333-444455556666-2"

RECORDS = [
    KafkaRecordInput(
        topic="orders",
        partition=0,
        offset=15,
        timestamp_ms=1732270000123,
        timestamp_type="CREATE_TIME",
        key=b"order-42",
        value=b'{"orderId": 42}',
        headers=(("traceId", b"abc"), ("binary", b"\x00\x80\xff\xfe"), ("traceId", "h\u00e9".encode())),
    ),
    KafkaRecordInput(
        topic="orders",
        partition=0,
        offset=16,
        timestamp_ms=1732270000456,
        timestamp_type="LOG_APPEND_TIME",
        key=None,
        value="caf\u00e9 \u2615".encode(),
        headers=(),
    ),
    KafkaRecordInput(
        topic="orders",
        partition=7,
        offset=3,
        timestamp_ms=1732270001000,
        timestamp_type="CREATE_TIME",
        key=b"\x00\xffkey",
        value=b"",
        headers=(("empty", b""),),
    ),
]


def wire(shape: KafkaEventShape, records: list[KafkaRecordInput]) -> Any:
    """The event as the function receives it: our bytes, parsed as JSON."""
    items = [kafka_item(r) for r in records]
    return orjson.loads(shape.encode_grouped(group_records((i.group, i.encoded) for i in items)))


def test_self_managed_model_accepts_our_event_and_decodes_it_back() -> None:
    parsed = KafkaSelfManagedEventModel.model_validate(wire(KafkaEventShape(SERVERS), RECORDS))
    assert parsed.eventSource == "SelfManagedKafka"
    assert parsed.bootstrapServers == SERVERS.split(",")
    assert list(parsed.records) == ["orders-0", "orders-7"]
    decoded = [r for group in parsed.records.values() for r in group]
    assert [(r.topic, r.partition, r.offset) for r in decoded] == [
        (r.topic, r.partition, r.offset) for r in RECORDS
    ]
    assert [r.key for r in decoded] == [r.key for r in RECORDS]
    assert [r.value for r in decoded] == [(r.value or b"").decode() for r in RECORDS]
    assert [r.timestampType for r in decoded] == [r.timestamp_type for r in RECORDS]
    assert decoded[0].timestamp == datetime(2024, 11, 22, 10, 6, 40, 123000, tzinfo=UTC)
    # Signed header bytes (spec §14.6) come back as the original bytes, repeated keys kept.
    assert [[(k, v) for h in r.headers for k, v in h.items()] for r in decoded] == [
        list(r.headers) for r in RECORDS
    ]


def test_msk_model_accepts_our_msk_event() -> None:
    event = wire(KafkaEventShape(SERVERS, event_source_arn=MSK_ARN), RECORDS[:1])
    parsed = KafkaMskEventModel.model_validate(event)
    assert parsed.eventSource == "aws:kafka"
    assert parsed.eventSourceArn == MSK_ARN
    assert parsed.records["orders-0"][0].key == b"order-42"


def test_destination_payload_is_an_event_powertools_reads() -> None:
    """spec §6.5: the `payload` of a Kafka-topic failure record is a one-record Kafka event."""
    context = FailureContext(
        request_id="r-1",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        condition=FailureCondition.RETRY_ATTEMPTS_EXHAUSTED,
        approximate_invoke_count=2,
        outcome=FunctionFailed(error_type="E", error_message="m"),
        timestamp_epoch_seconds=1732270506.021,
    )
    batch = KafkaBatchInfo(
        batch_size=1,
        bootstrap_servers=SERVERS,
        payload_size=100,
        partitions=[KafkaPartitionRange("orders", 0, 15, 15, 1732270000.123, 1732270000.123)],
    )
    item = kafka_item(RECORDS[0])
    message = kafka_failed_record(kafka_failure_record(context, batch), item.record, encoded=item.encoded)
    parsed = KafkaSelfManagedEventModel.model_validate(orjson.loads(message.value)["payload"])
    [only] = parsed.records["orders-0"]
    assert (only.key, only.value, only.offset) == (b"order-42", '{"orderId": 42}', 15)
