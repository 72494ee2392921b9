"""Where a Kafka batch's discarded records go (spec §6.4, §6.5): the on-failure destination, or the
drop counter. SQS, SNS, S3 and file take one KafkaBatchInfo record per discarded batch; a
`kafka://topic` destination takes one message per record, keyed with the record's own key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from poller.config import KafkaMapping
from poller.core.clock import Clock
from poller.core.failure_records import (
    KafkaBatchInfo,
    KafkaPartitionRange,
    kafka_failure_record,
)
from poller.core.kafka_event import KafkaEventShape, KafkaFailedRecord, KafkaItem, kafka_failed_records
from poller.core.stream_retry import SendToDestination
from poller.destinations.base import Destination, FailureDelivery, S3KeyParts
from poller.observability.metrics import MappingMetrics
from poller.sources.stream_failures import DROP_REASONS, deliver_until_done, failure_context


class RecordsDestination(Protocol):
    """A destination that takes records one message each (the `kafka://` destination)."""

    kind: str

    async def deliver_records(self, records: Sequence[KafkaFailedRecord]) -> None: ...


class KafkaFailureSender:
    def __init__(
        self,
        mapping: KafkaMapping,
        *,
        destination: Destination | None,
        shape: KafkaEventShape,
        function_arn: str,
        metrics: MappingMetrics,
        clock: Clock,
        stopping: asyncio.Event,
    ) -> None:
        self.mapping = mapping
        self.destination = destination
        self.shape = shape
        self.function_arn = function_arn
        self.metrics = metrics
        self.clock = clock
        self.stopping = stopping
        self.log = structlog.get_logger("poller.destination").bind(mapping=mapping.name)

    async def send(
        self, decision: SendToDestination, *, partition_key: str, items: Sequence[KafkaItem]
    ) -> bool:
        """Deliver (or drop) the records of `decision`; False when stopping cut a blocked delivery
        short, and the caller must abandon the batch without committing it."""
        first, last = items[0].consumed, items[-1].consumed
        fields = {
            "partition": partition_key,
            "records": len(items),
            "first": first.offset,
            "last": last.offset,
            "condition": str(decision.condition),
        }
        destination = self.destination
        if destination is None:
            self.metrics.dropped(DROP_REASONS[decision.condition], len(items))
            self.log.warning("records_dropped", reason="no on-failure destination", **fields)
            return True
        now = self.clock.wall()
        context = failure_context(decision, function_arn=self.function_arn, now=now)
        event = self.shape.encode(partition_key, [item.encoded for item in items])
        info = KafkaBatchInfo(
            batch_size=len(items),
            bootstrap_servers=self.shape.bootstrap_servers,
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
        deliver: Callable[[], Awaitable[None]]
        if destination.kind == "kafka":
            messages = kafka_failed_records(record, event)
            records_destination: RecordsDestination = destination  # type: ignore[assignment]
            deliver = lambda: records_destination.deliver_records(messages)  # noqa: E731
        else:
            delivery = FailureDelivery(
                record=record,
                payload=event if destination.kind == "s3" else None,
                s3_key_parts=S3KeyParts(
                    esm_uuid=self.mapping.name, shard_id=partition_key, timestamp_epoch_seconds=now
                ),
            )
            deliver = lambda: destination.deliver(delivery)  # noqa: E731
        return await deliver_until_done(
            deliver,
            kind=destination.kind,
            records=len(items),
            metrics=self.metrics,
            stopping=self.stopping,
            log=self.log.bind(**fields),
        )
