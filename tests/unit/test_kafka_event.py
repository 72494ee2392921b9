"""spec §3.4: the Kafka event built from consumed records, its exact size; spec §6.5: the Kafka-topic
destination record."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from poller.core.failure_records import (
    FailureCondition,
    FailureContext,
    KafkaBatchInfo,
    KafkaPartitionRange,
    kafka_failure_record,
)
from poller.core.kafka_event import (
    MSK_EVENT_SOURCE,
    SELF_MANAGED_EVENT_SOURCE,
    KafkaEventShape,
    KafkaEventSize,
    KafkaRecordEncoder,
    KafkaRecordInput,
    encode_kafka_event,
    event_overhead,
    from_consumer_record,
    kafka_event_size,
    kafka_record,
    serialise_record,
)
from poller.core.kafka_failure_messages import (
    group_records,
    kafka_failed_record,
    kafka_failed_records,
    kafka_item,
)
from poller.core.outcome import FunctionFailed

MSK_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/demo/5a3f2c1e-1111-2222-3333-444455556666-2"
SERVERS = "b-1.demo.example:9092,b-2.demo.example:9092"
EXAMPLE = KafkaRecordInput(
    topic="orders",
    partition=0,
    offset=15,
    timestamp_ms=1732270000123,
    timestamp_type="CREATE_TIME",
    key=b"order-42",
    value=b'{"orderId": 42}',
    headers=(("traceId", b"abc"),),
)
EXAMPLE_BYTES = (
    b'{"topic":"orders","partition":0,"offset":15,"timestamp":1732270000123,"timestampType":"CREATE_TIME",'
    b'"key":"b3JkZXItNDI=","value":"eyJvcmRlcklkIjogNDJ9","headers":[{"traceId":[97,98,99]}]}'
)


def record(**changes: Any) -> KafkaRecordInput:
    fields = {
        "topic": EXAMPLE.topic,
        "partition": EXAMPLE.partition,
        "offset": EXAMPLE.offset,
        "timestamp_ms": EXAMPLE.timestamp_ms,
        "timestamp_type": EXAMPLE.timestamp_type,
        "key": EXAMPLE.key,
        "value": EXAMPLE.value,
        "headers": EXAMPLE.headers,
    }
    return KafkaRecordInput(**{**fields, **changes})


def test_record_is_the_spec_example_in_order_and_byte_for_byte() -> None:
    """spec §3.4: the documented record, reproduced from the consumed record."""
    built = kafka_record(EXAMPLE)
    assert list(built) == [
        "topic",
        "partition",
        "offset",
        "timestamp",
        "timestampType",
        "key",
        "value",
        "headers",
    ]
    assert serialise_record(built) == EXAMPLE_BYTES


def test_msk_event_is_the_spec_example_byte_for_byte() -> None:
    """spec §3.4: eventSource, eventSourceArn (lower-case Arn), bootstrapServers, records."""
    event = encode_kafka_event(
        MSK_EVENT_SOURCE, SERVERS, {"orders-0": [EXAMPLE_BYTES]}, event_source_arn=MSK_ARN
    )
    assert event == (
        b'{"eventSource":"aws:kafka","eventSourceArn":"' + MSK_ARN.encode() + b'",'
        b'"bootstrapServers":"' + SERVERS.encode() + b'","records":{"orders-0":[' + EXAMPLE_BYTES + b"]}}"
    )


def test_self_managed_event_has_no_event_source_arn() -> None:
    """spec §3.4: self-managed is identical except its eventSource and no eventSourceArn."""
    event = encode_kafka_event(SELF_MANAGED_EVENT_SOURCE, "127.0.0.1:9092", {"orders-0": [EXAMPLE_BYTES]})
    assert event == (
        b'{"eventSource":"SelfManagedKafka","bootstrapServers":"127.0.0.1:9092",'
        b'"records":{"orders-0":[' + EXAMPLE_BYTES + b"]}}"
    )
    assert list(orjson.loads(event)) == ["eventSource", "bootstrapServers", "records"]


def test_null_key_is_left_out_and_an_empty_key_is_kept() -> None:
    """spec §3.4 / §14.6: a null key has no `key` field; an empty key is base64 of nothing."""
    assert "key" not in kafka_record(record(key=None))
    assert kafka_record(record(key=b""))["key"] == ""


def test_tombstone_value_is_null() -> None:
    built = kafka_record(record(value=None))
    assert built["value"] is None
    assert b'"value":null' in serialise_record(built)
    assert kafka_record(record(value=b""))["value"] == ""


def test_key_and_value_are_base64_of_the_exact_bytes() -> None:
    data = bytes(range(256))
    built = kafka_record(record(key=data[::-1], value=data))
    assert base64.b64decode(built["key"], validate=True) == data[::-1]
    assert base64.b64decode(built["value"], validate=True) == data


def test_headers_are_single_key_objects_of_signed_bytes_in_order() -> None:
    """spec §3.4: an array of byte integers per header, signed as Java's `byte` (§14.6)."""
    headers = (
        ("trace", b"abc"),
        ("bin", b"\x00\x7f\x80\xff"),
        ("trace", b"second"),
        ("null", None),
        ("e", b""),
    )
    built = kafka_record(record(headers=headers))
    assert built["headers"] == [
        {"trace": [97, 98, 99]},
        {"bin": [0, 127, -128, -1]},
        {"trace": [115, 101, 99, 111, 110, 100]},
        {"null": []},
        {"e": []},
    ]
    assert kafka_record(record(headers=()))["headers"] == []


def test_from_consumer_record_takes_every_field() -> None:
    consumed = ConsumerRecord(
        topic="orders",
        partition=3,
        offset=99,
        timestamp=1732270000123,
        timestamp_type=1,
        key=None,
        value=b"v",
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=1,
        headers=[("h", b"x")],
    )
    assert from_consumer_record(consumed) == KafkaRecordInput(
        topic="orders",
        partition=3,
        offset=99,
        timestamp_ms=1732270000123,
        timestamp_type="LOG_APPEND_TIME",
        key=None,
        value=b"v",
        headers=(("h", b"x"),),
    )
    create_time = from_consumer_record(ConsumerRecord("t", 0, 0, 1, 0, b"k", b"v", None, 1, 1, headers=()))
    assert create_time.timestamp_type == "CREATE_TIME"
    assert create_time.headers == ()


def test_kafka_item_serialises_once_and_refers_by_offset() -> None:
    item = kafka_item(EXAMPLE)
    assert item.record == kafka_record(EXAMPLE)
    assert item.encoded == EXAMPLE_BYTES
    assert item.group == "orders-0"
    assert item.ref.sequence_number == "15"
    assert item.ref.arrival_epoch_seconds == 1732270000.123
    assert item.ref.size_bytes == len(EXAMPLE_BYTES) + 1


def test_several_partitions_are_grouped_in_order_of_first_appearance() -> None:
    """spec §2, §3.4: a batch may hold several partitions, keyed `<topic>-<partition>`."""
    records = [record(partition=p, offset=o) for p, o in [(1, 7), (0, 3), (1, 8), (10, 0)]]
    grouped = group_records((r.group, serialise_record(kafka_record(r))) for r in records)
    event = orjson.loads(encode_kafka_event(SELF_MANAGED_EVENT_SOURCE, SERVERS, grouped))
    assert list(event["records"]) == ["orders-1", "orders-0", "orders-10"]
    assert [r["offset"] for r in event["records"]["orders-1"]] == [7, 8]
    assert event["records"]["orders-0"] == [kafka_record(records[1])]


def test_shape_encodes_one_partition_like_the_general_encoder() -> None:
    shape = KafkaEventShape(bootstrap_servers=SERVERS)
    assert shape.event_source == SELF_MANAGED_EVENT_SOURCE
    assert shape.encode("orders-0", [EXAMPLE_BYTES, EXAMPLE_BYTES]) == encode_kafka_event(
        SELF_MANAGED_EVENT_SOURCE, SERVERS, {"orders-0": [EXAMPLE_BYTES, EXAMPLE_BYTES]}
    )
    msk = KafkaEventShape(bootstrap_servers=SERVERS, event_source_arn=MSK_ARN)
    assert msk.encode_grouped({"orders-0": [EXAMPLE_BYTES]}) == encode_kafka_event(
        MSK_EVENT_SOURCE, SERVERS, {"orders-0": [EXAMPLE_BYTES]}, event_source_arn=MSK_ARN
    )


def test_empty_event_is_its_overhead() -> None:
    event = encode_kafka_event(SELF_MANAGED_EVENT_SOURCE, SERVERS, {})
    assert orjson.loads(event)["records"] == {}
    assert len(event) == event_overhead(SELF_MANAGED_EVENT_SOURCE, SERVERS)
    assert len(event) == kafka_event_size({}, overhead=event_overhead(SELF_MANAGED_EVENT_SOURCE, SERVERS))


def test_shape_envelope_bound_covers_every_partition_and_is_exact_per_group() -> None:
    for shape in (KafkaEventShape(SERVERS), KafkaEventShape(SERVERS, topic="orders")):
        for partition in (0, 9, 10, 2**31 - 1):
            group = f"orders-{partition}"
            exact = len(shape.encode(group, []))
            assert shape.envelope_bytes_for(group) == exact
            assert shape.envelope_bytes >= exact
    assert KafkaEventShape(SERVERS, topic="orders").envelope_bytes == len(
        KafkaEventShape(SERVERS).encode("orders-2147483647", [])
    )


_records = st.builds(
    KafkaRecordInput,
    topic=st.sampled_from(["orders", "a", "payments.v2_x-y"]),
    partition=st.integers(0, 2**31 - 1) | st.integers(0, 12),
    offset=st.integers(0, 2**63 - 1),
    timestamp_ms=st.integers(0, 2**42),
    timestamp_type=st.sampled_from(["CREATE_TIME", "LOG_APPEND_TIME"]),
    key=st.none() | st.binary(max_size=40),
    value=st.none() | st.binary(max_size=200),
    headers=st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=12)), max_size=3).map(
        tuple
    ),
)


@given(
    batch=st.lists(_records, max_size=25),
    arn=st.none() | st.just(MSK_ARN),
    servers=st.sampled_from([SERVERS, "127.0.0.1:9092", 'we"ird\\host:1']),
)
def test_size_accounting_is_exact(batch: list[KafkaRecordInput], arn: str | None, servers: str) -> None:
    """spec §2: the 6 MB cap counts the serialised payload, envelope included, to the byte."""
    shape = KafkaEventShape(bootstrap_servers=servers, event_source_arn=arn)
    sizer = shape.sizer()
    encoded = [(r.group, serialise_record(kafka_record(r))) for r in batch]
    for group, data in encoded:
        expected = sizer.size + sizer.cost(group, len(data))
        assert sizer.add(group, len(data)) == expected
    grouped = group_records(encoded)
    event = encode_kafka_event(shape.event_source, servers, grouped, event_source_arn=arn)
    assert sizer.size == len(event)
    assert sizer.records == len(batch)
    lengths = {group: [len(data) for data in records] for group, records in grouped.items()}
    assert kafka_event_size(lengths, overhead=shape.overhead) == len(event)
    assert orjson.loads(event)["records"] == {
        group: [orjson.loads(data) for data in records] for group, records in grouped.items()
    }


@given(batch=st.lists(_records.map(kafka_item), min_size=1, max_size=25))
def test_one_partition_batch_fits_within_envelope_plus_item_sizes(batch: list[Any]) -> None:
    """What a one-partition batcher counts (`envelope_bytes + sum(size_bytes)`) never under-counts."""
    shape = KafkaEventShape(bootstrap_servers=SERVERS)
    group = batch[0].group
    event = shape.encode(group, [item.encoded for item in batch])
    assert len(event) <= shape.envelope_bytes + sum(item.ref.size_bytes for item in batch)
    assert len(event) == shape.envelope_bytes_for(group) + sum(item.ref.size_bytes for item in batch) - 1


def test_sizer_cost_before_add() -> None:
    sizer = KafkaEventSize(overhead=10)
    assert sizer.cost("t-0", 5) == len(b'"t-0":[') + 5 + 1
    sizer.add("t-0", 5)
    assert sizer.cost("t-0", 5) == 6
    assert sizer.cost("t-1", 5) == 1 + len(b'"t-1":[') + 5 + 1


# -- spec §6.5 -------------------------------------------------------------------------------------

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"


def failure(
    condition: FailureCondition = FailureCondition.RETRY_ATTEMPTS_EXHAUSTED, *, arn: str | None = None
) -> dict[str, Any]:
    context = FailureContext(
        request_id="316aa6d0-8154-4c1e-9af7-85d5f4a6bc81",
        function_arn=FUNCTION_ARN,
        condition=condition,
        approximate_invoke_count=3,
        outcome=FunctionFailed(error_type="Boom", error_message="boom"),
        timestamp_epoch_seconds=1732270506.021,
    )
    batch = KafkaBatchInfo(
        batch_size=2,
        bootstrap_servers=SERVERS,
        payload_size=2039,
        partitions=[KafkaPartitionRange("orders", 0, 15, 16, 1732270000.123, 1732270001.0)],
        event_source_arn=arn,
    )
    return kafka_failure_record(context, batch)


def test_destination_record_is_the_failure_narrowed_to_one_record_golden() -> None:
    """spec §6.5: batchSize 1, payloadSize, recordInfo (singular), payload as a JSON object."""
    message = kafka_failed_record(failure(), kafka_record(EXAMPLE))
    payload = (
        b'{"eventSource":"SelfManagedKafka","bootstrapServers":"'
        + SERVERS.encode()
        + (b'","records":{"orders-0":[' + EXAMPLE_BYTES + b"]}}")
    )
    assert message.key == b"order-42"
    assert message.value == (
        b'{"requestContext":{"requestId":"316aa6d0-8154-4c1e-9af7-85d5f4a6bc81",'
        b'"functionArn":"' + FUNCTION_ARN.encode() + b'","condition":"RetryAttemptsExhausted",'
        b'"approximateInvokeCount":3},'
        b'"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},'
        b'"version":"1.0","timestamp":"2024-11-22T10:15:06.021Z",'
        b'"KafkaBatchInfo":{"batchSize":1,"bootstrapServers":"' + SERVERS.encode() + b'",'
        b'"payloadSize":' + str(len(payload)).encode() + b","
        b'"recordInfo":{"offset":"15","timestamp":"2024-11-22T10:06:40.123Z"}},'
        b'"payload":' + payload + b"}"
    )


def test_destination_record_keeps_msk_arn_and_null_response_context() -> None:
    source = failure(FailureCondition.MAXIMUM_PAYLOAD_SIZE_EXCEEDED, arn=MSK_ARN)
    document = orjson.loads(kafka_failed_record(source, kafka_record(record(key=None))).value)
    assert document["responseContext"] is None
    assert document["requestContext"] == source["requestContext"]
    info = document["KafkaBatchInfo"]
    assert list(info) == ["batchSize", "eventSourceArn", "bootstrapServers", "payloadSize", "recordInfo"]
    assert info["eventSourceArn"] == MSK_ARN
    assert document["payload"]["eventSource"] == MSK_EVENT_SOURCE
    assert document["payload"]["eventSourceArn"] == MSK_ARN
    assert info["payloadSize"] == len(orjson.dumps(document["payload"]))


def test_destination_records_split_an_event_one_message_per_record() -> None:
    records = [record(offset=15), record(offset=16, key=None, value=None), record(partition=2, offset=4)]
    grouped = group_records((r.group, serialise_record(kafka_record(r))) for r in records)
    event = encode_kafka_event(SELF_MANAGED_EVENT_SOURCE, SERVERS, grouped)
    messages = kafka_failed_records(failure(), event)
    assert [m.key for m in messages] == [b"order-42", None, b"order-42"]
    assert messages == [kafka_failed_record(failure(), kafka_record(r)) for r in records]
    documents = [orjson.loads(m.value) for m in messages]
    assert [d["KafkaBatchInfo"]["recordInfo"]["offset"] for d in documents] == ["15", "16", "4"]
    assert [list(d["payload"]["records"]) for d in documents] == [["orders-0"], ["orders-0"], ["orders-2"]]
    assert documents[1]["payload"]["records"]["orders-0"] == [kafka_record(records[1])]


def test_encoded_record_is_embedded_as_given() -> None:
    item = kafka_item(EXAMPLE)
    assert kafka_failed_record(failure(), item.record, encoded=item.encoded) == kafka_failed_record(
        failure(), item.record
    )


@pytest.mark.parametrize("event", [b"[]", b'{"Records":[]}', b'{"records":{"t-0":[{"topic":"t"}]}}', b"{"])
def test_a_non_kafka_event_is_a_value_error(event: bytes) -> None:
    with pytest.raises(ValueError, match=r"Kafka event|JSON|unexpected|EOF"):
        kafka_failed_records(failure(), event)


consumer_records = st.builds(
    ConsumerRecord,
    topic=st.just("orders"),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**63 - 1),
    timestamp=st.one_of(st.integers(-1, 2**53), st.none()),
    timestamp_type=st.sampled_from([0, 1]),
    key=st.one_of(st.none(), st.binary(max_size=40)),
    value=st.one_of(st.none(), st.binary(max_size=200)),
    checksum=st.none(),
    serialized_key_size=st.just(-1),
    serialized_value_size=st.just(-1),
    headers=st.one_of(
        st.just(()),
        st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=8))), max_size=3),
    ),
)


@given(st.lists(consumer_records, max_size=8))
def test_direct_encoder_is_the_serialised_record_byte_for_byte(batch: list[Any]) -> None:
    """The source's hot path formats records without the dict; it must be the same JSON (spec §3.4)."""
    encoder = KafkaRecordEncoder("orders")
    expected = [serialise_record(kafka_record(from_consumer_record(r))) for r in batch]
    assert encoder.encode_many(batch) == expected
    assert [encoder.encode(r) for r in batch] == expected


def test_direct_encoder_escapes_the_topic_once_and_formats_the_spec_example() -> None:
    consumed = ConsumerRecord(
        "orders", 0, 15, 1732270000123, 0, b"order-42", b'{"orderId": 42}', None, 8, 15, [("traceId", b"abc")]
    )
    assert KafkaRecordEncoder("orders").encode_many([consumed]) == [EXAMPLE_BYTES]
    odd = ConsumerRecord('100%"t', 1, 2, 3, 1, None, b"v", None, -1, 1, ())
    assert KafkaRecordEncoder('100%"t').encode_many([odd]) == [
        serialise_record(kafka_record(from_consumer_record(odd)))
    ]
