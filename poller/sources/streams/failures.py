"""What a stream batch's discarded records look like at the on-failure destination (spec §6.2,
§6.3): one `KinesisBatchInfo` or `DDBStreamBatchInfo` record per discarded run, plus the invocation
event itself for S3. Sending, retrying and dropping are `poller.dispatch.failures`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from poller.config import StreamMapping
from poller.core.failure_records import (
    FailureContext,
    StreamBatchInfo,
    dynamodb_failure_record,
    kinesis_failure_record,
)
from poller.core.stream_event import encode_stream_event
from poller.core.stream_retry import StreamRecordRef
from poller.destinations.base import Destination, FailureDelivery, S3KeyParts
from poller.dispatch.failures import Delivery, DeliveryBuilder


def stream_delivery(
    mapping: StreamMapping,
    *,
    shard_id: str,
    records: Sequence[StreamRecordRef],
    events: Sequence[bytes],
    batch_size: int | None = None,
    event: bytes | None = None,
) -> DeliveryBuilder:
    """The builder for discarded `records` of `shard_id`, whose serialised Lambda records are
    `events` (in the same order).

    A tumbling window given up (spec §8) names only its first and last records: `batch_size` is then
    the window's record count, and `event` the final invocation's event (for S3)."""

    def build(context: FailureContext, destination: Destination) -> Delivery:
        info = StreamBatchInfo.from_records(records, shard_id=shard_id, stream_arn=mapping.event_source_arn)
        if batch_size is not None:
            info = replace(info, batch_size=batch_size)
        record = (
            kinesis_failure_record(context, info)
            if mapping.source_kind == "kinesis"
            else dynamodb_failure_record(context, info)
        )
        delivery = FailureDelivery(
            record=record,
            payload=(event or encode_stream_event(events)) if destination.kind == "s3" else None,
            s3_key_parts=S3KeyParts(
                esm_uuid=mapping.name,
                shard_id=shard_id,
                timestamp_epoch_seconds=context.timestamp_epoch_seconds,
            ),
        )

        async def deliver() -> None:
            await destination.deliver(delivery)

        return deliver

    return build
