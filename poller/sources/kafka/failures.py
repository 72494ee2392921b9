"""What a Kafka batch's discarded records become at the on-failure destination (spec §6.4, §6.5).

SQS, SNS, S3 and file take one KafkaBatchInfo record per discarded batch (S3 with the invocation
event beside it); a `kafka://topic` destination takes one message per record, keyed with the
record's own key. The sending itself (retries, the drop counter) is `poller.dispatch.failures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from poller.core.failure_records import (
    FailureContext,
    KafkaBatchInfo,
    KafkaPartitionRange,
    kafka_failure_record,
)
from poller.core.kafka_event import KafkaEventShape
from poller.core.kafka_failure_messages import KafkaFailedRecord, kafka_failed_records, kafka_item
from poller.destinations.base import Destination, FailureDelivery, S3KeyParts
from poller.dispatch.failures import Delivery, DeliveryBuilder


class RecordsDestination(Protocol):
    """A destination that takes records one message each (the `kafka://` destination)."""

    kind: str

    async def deliver_records(self, records: Sequence[KafkaFailedRecord]) -> None: ...


def kafka_delivery(
    records: Sequence[Any], *, shape: KafkaEventShape, mapping_name: str, partition_key: str
) -> DeliveryBuilder:
    """The builder of the write of `records` (aiokafka `ConsumerRecord`s of one partition, in
    offset order): called only when there is a destination, so a dropped batch costs nothing."""

    def build(context: FailureContext, destination: Destination) -> Delivery:
        items = [kafka_item(record) for record in records]
        first, last = items[0].consumed, items[-1].consumed
        event = shape.encode(partition_key, [item.encoded for item in items])
        info = KafkaBatchInfo(
            batch_size=len(items),
            bootstrap_servers=shape.bootstrap_servers,
            payload_size=len(event),
            partitions=[
                KafkaPartitionRange(
                    topic=first.topic,
                    partition=first.partition,
                    first_offset=first.offset,
                    last_offset=last.offset,
                    first_timestamp_epoch_seconds=first.timestamp_ms / 1000,
                    last_timestamp_epoch_seconds=last.timestamp_ms / 1000,
                )
            ],
        )
        record = kafka_failure_record(context, info)
        if destination.kind == "kafka":
            messages = kafka_failed_records(record, event)
            records_destination: RecordsDestination = destination  # type: ignore[assignment]
            return lambda: records_destination.deliver_records(messages)
        delivery = FailureDelivery(
            record=record,
            payload=event if destination.kind == "s3" else None,
            s3_key_parts=S3KeyParts(
                esm_uuid=mapping_name,
                shard_id=partition_key,
                timestamp_epoch_seconds=context.timestamp_epoch_seconds,
            ),
        )
        return lambda: destination.deliver(delivery)

    return build
