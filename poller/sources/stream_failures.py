"""Where a stream batch's discarded records go: the on-failure destination, or the drop counter.

A destination that cannot be written holds the shard: delivery is retried with capped backoff until
it succeeds (DESIGN §3), and the records are checkpointed only after that. Only a destination that
can never take the record (`DeliveryRejected`, e.g. too large) is given up on, loudly.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from poller.config import StreamMapping
from poller.core.clock import Clock
from poller.core.failure_records import (
    FailureCondition,
    FailureContext,
    StreamBatchInfo,
    dynamodb_failure_record,
    kinesis_failure_record,
    request_id_of,
)
from poller.core.stream_event import encode_stream_event
from poller.core.stream_retry import SendToDestination
from poller.destinations.base import (
    DeliveryFailed,
    DeliveryRejected,
    Destination,
    FailureDelivery,
    S3KeyParts,
)
from poller.observability.metrics import MappingMetrics

MAX_DELIVERY_BACKOFF_SECONDS = 30.0

DROP_REASONS = {
    FailureCondition.RETRY_ATTEMPTS_EXHAUSTED: "retry_attempts_exhausted",
    FailureCondition.RECORD_AGE_EXCEEDED: "record_age_exceeded",
    FailureCondition.MAXIMUM_PAYLOAD_SIZE_EXCEEDED: "maximum_payload_size_exceeded",
}
"""The bounded `reason` label of records_dropped_total."""


class FailureSender:
    def __init__(
        self,
        mapping: StreamMapping,
        *,
        destination: Destination | None,
        function_arn: str,
        metrics: MappingMetrics,
        clock: Clock,
        stopping: asyncio.Event,
    ) -> None:
        self.mapping = mapping
        self.destination = destination
        self.function_arn = function_arn
        self.metrics = metrics
        self.clock = clock
        self.stopping = stopping
        self.log = structlog.get_logger("poller.destination").bind(mapping=mapping.name)

    async def send(self, decision: SendToDestination, *, shard_id: str, events: Sequence[bytes]) -> bool:
        """Deliver (or drop, without a destination) the records of `decision`, whose serialised
        Lambda records are `events`. False when stopping interrupted a blocked delivery: the caller
        must then abandon the batch without checkpointing it."""
        refs = decision.records
        fields = {
            "shard": shard_id,
            "records": len(refs),
            "first": refs[0].sequence_number,
            "last": refs[-1].sequence_number,
            "condition": str(decision.condition),
        }
        destination = self.destination
        if destination is None:
            self.metrics.dropped(DROP_REASONS[decision.condition], len(refs))
            self.log.warning("records_dropped", reason="no on-failure destination", **fields)
            return True
        now = self.clock.wall()
        context = failure_context(decision, function_arn=self.function_arn, now=now)
        info = StreamBatchInfo.from_records(refs, shard_id=shard_id, stream_arn=self.mapping.event_source_arn)
        build = kinesis_failure_record if self.mapping.source_kind == "kinesis" else dynamodb_failure_record
        delivery = FailureDelivery(
            record=build(context, info),
            payload=encode_stream_event(events) if destination.kind == "s3" else None,
            s3_key_parts=S3KeyParts(
                esm_uuid=self.mapping.name, shard_id=shard_id, timestamp_epoch_seconds=now
            ),
        )
        return await deliver_until_done(
            lambda: destination.deliver(delivery),
            kind=destination.kind,
            records=len(refs),
            metrics=self.metrics,
            stopping=self.stopping,
            log=self.log.bind(**fields),
        )


def failure_context(decision: SendToDestination, *, function_arn: str, now: float) -> FailureContext:
    """The requestContext inputs of spec §6.2/§6.4: the last run's request id, or a fresh one."""
    return FailureContext(
        request_id=request_id_of(decision.last_outcome) or str(uuid.uuid4()),
        function_arn=function_arn,
        condition=decision.condition,
        approximate_invoke_count=decision.approximate_invoke_count,
        outcome=decision.last_outcome,
        timestamp_epoch_seconds=now,
    )


async def deliver_until_done(
    deliver: Callable[[], Awaitable[None]],
    *,
    kind: str,
    records: int,
    metrics: MappingMetrics,
    stopping: asyncio.Event,
    log: Any,
) -> bool:
    """Run `deliver` until it succeeds (DESIGN §3: hold the shard, never drop), backing off between
    tries; a `DeliveryRejected` is given up on and counted. False if stopping cut the wait short."""
    failures = 0
    while True:
        try:
            await deliver()
        except DeliveryRejected as exc:
            metrics.destination_delivery_failures.inc()
            metrics.dropped("destination_rejected", records)
            log.error("destination_rejected", destination=kind, error=str(exc))
            return True
        except DeliveryFailed as exc:
            failures += 1
            metrics.destination_delivery_failures.inc()
            delay = min(MAX_DELIVERY_BACKOFF_SECONDS, 0.5 * 2.0 ** min(failures, 10)) * random.uniform(
                0.8, 1.2
            )
            log.warning(
                "destination_delivery_failed",
                destination=kind,
                error=str(exc)[:300],
                failures=failures,
                retry_in_s=round(delay, 2),
            )
            try:
                async with asyncio.timeout(delay):
                    await stopping.wait()
                return False
            except TimeoutError:
                continue
        metrics.records_sent_to_destination.inc(records)
        log.info("records_sent_to_destination", destination=kind)
        return True
