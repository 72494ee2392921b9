"""Failed Kafka records as a source keeps them (`KafkaItem`), and the messages of a `kafka://`
on-failure destination: one per failed record (spec §6.5)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from poller.core.failure_records import iso_millis
from poller.core.kafka_event import (
    KafkaRecordInput,
    encode_kafka_event,
    event_source_for,
    from_consumer_record,
    group_key,
    kafka_record,
    serialise_record,
)
from poller.core.stream_retry_types import StreamRecordRef


def group_records(items: Iterable[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    """Serialised records grouped by `<topic>-<partition>`, groups in order of first appearance."""
    grouped: dict[str, list[bytes]] = {}
    for group, encoded in items:
        grouped.setdefault(group, []).append(encoded)
    return grouped


@dataclass(frozen=True, slots=True, eq=False)
class KafkaItem:
    """A consumed record as a source keeps it: the value, its event record, serialised once, and
    the reference the stream retry machine works with (offsets as sequence numbers)."""

    consumed: KafkaRecordInput
    record: dict[str, Any]
    """The event record (spec §3.4), e.g. for filtering."""
    encoded: bytes
    """`record` serialised, exactly as it goes into the event."""
    ref: StreamRecordRef
    """`size_bytes` counts the record and one comma: within one partition's event, the records of a
    batch add at most `sum(size_bytes)` to `KafkaEventShape.envelope_bytes`."""

    @property
    def group(self) -> str:
        return self.consumed.group


def kafka_item(consumed: Any) -> KafkaItem:
    """The item for an aiokafka `ConsumerRecord` (or a `KafkaRecordInput` already made)."""
    value = consumed if isinstance(consumed, KafkaRecordInput) else from_consumer_record(consumed)
    record = kafka_record(value)
    encoded = serialise_record(record)
    ref = StreamRecordRef(
        sequence_number=str(value.offset),
        arrival_epoch_seconds=value.timestamp_ms / 1000,
        size_bytes=len(encoded) + 1,
    )
    return KafkaItem(consumed=value, record=record, encoded=encoded, ref=ref)


@dataclass(frozen=True, slots=True)
class KafkaFailedRecord:
    """One message for a `kafka://` on-failure destination: one failed record (spec §6.5)."""

    key: bytes | None
    """The failed record's own key: the message is partitioned like the original (round-robin if None)."""
    value: bytes
    """The §6.5 document, serialised."""


def kafka_failed_record(
    failure_record: Mapping[str, Any], record: Mapping[str, Any], *, encoded: bytes | None = None
) -> KafkaFailedRecord:
    """The destination message for one failed record of a discarded batch (spec §6.5).

    `failure_record` is the batch's record from `kafka_failure_record` (spec §6.4); its
    `requestContext`, `responseContext`, `version` and `timestamp` are kept, and `KafkaBatchInfo`
    is narrowed to this record: `batchSize` 1, `payloadSize` of the one-record event, and
    `recordInfo` (singular) with the offset as a string and the record's timestamp in ISO-8601.
    `payload` is that one-record event as a JSON object (not a string, unlike S3's). `record` is
    the event record (spec §3.4); `encoded` its serialised bytes if already at hand.
    """
    info: Mapping[str, Any] = failure_record["KafkaBatchInfo"]
    arn: str | None = info.get("eventSourceArn")
    servers: str = info["bootstrapServers"]
    group = group_key(record["topic"], record["partition"])
    payload = encode_kafka_event(
        event_source_for(arn),
        servers,
        {group: [encoded if encoded is not None else serialise_record(record)]},
        event_source_arn=arn,
    )
    batch_info: dict[str, Any] = {"batchSize": 1}
    if arn is not None:
        batch_info["eventSourceArn"] = arn
    batch_info["bootstrapServers"] = servers
    batch_info["payloadSize"] = len(payload)
    batch_info["recordInfo"] = {
        "offset": str(record["offset"]),
        "timestamp": iso_millis(record["timestamp"] / 1000),
    }
    document = {
        name: value for name, value in failure_record.items() if name not in ("KafkaBatchInfo", "payload")
    }
    document["KafkaBatchInfo"] = batch_info
    # The event is embedded as it was serialised, so `payloadSize` is its exact length.
    document["payload"] = orjson.Fragment(payload)
    key = record.get("key")
    return KafkaFailedRecord(
        key=None if key is None else base64.b64decode(key, validate=True), value=orjson.dumps(document)
    )


def kafka_failed_records(failure_record: Mapping[str, Any], event: bytes) -> list[KafkaFailedRecord]:
    """One destination message per record of a discarded batch's invocation event, in event order.

    Raises ValueError if `event` is not a Kafka event.
    """
    parsed = orjson.loads(event)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("records"), dict):
        raise ValueError("not a Kafka event: no `records` object")
    try:
        return [
            kafka_failed_record(failure_record, record)
            for records in parsed["records"].values()
            for record in records
        ]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a Kafka event record: {exc!r}") from exc
