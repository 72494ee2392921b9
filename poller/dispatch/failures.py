"""Where a batch's discarded records go: the on-failure destination, or the drop counter. One
sender for every source; each source passes the builder that describes its records (spec §6).

A destination that cannot be written holds the shard or partition: delivery is retried with the
delivery backoff until it succeeds (DESIGN §3), and the records are checkpointed only after that.
Only a destination that can never take the record (`DeliveryRejected`, e.g. too large) is given up
on, loudly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from poller.core.backoff import DELIVERY_BACKOFF
from poller.core.clock import Clock
from poller.core.failure_records import FailureCondition, FailureContext, request_id_of
from poller.core.stream_retry import SendToDestination
from poller.destinations.base import DeliveryFailed, DeliveryRejected, Destination
from poller.dispatch.pause import sleep_unless
from poller.observability.metrics import MappingMetrics

DROP_REASONS = {
    FailureCondition.RETRY_ATTEMPTS_EXHAUSTED: "retry_attempts_exhausted",
    FailureCondition.RECORD_AGE_EXCEEDED: "record_age_exceeded",
    FailureCondition.MAXIMUM_PAYLOAD_SIZE_EXCEEDED: "maximum_payload_size_exceeded",
}
"""The bounded `reason` label of records_dropped_total."""

Delivery = Callable[[], Awaitable[None]]
DeliveryBuilder = Callable[[FailureContext, Destination], Delivery]
"""Builds the write of one discarded batch to `destination`: the source's failure record (spec
§6.2–§6.5), and the event itself where the destination keeps it (S3, Kafka)."""


class FailureSender:
    def __init__(
        self,
        *,
        mapping_name: str,
        destination: Destination | None,
        function_arn: str,
        metrics: MappingMetrics,
        clock: Clock,
        stopping: asyncio.Event,
    ) -> None:
        self.destination = destination
        self.function_arn = function_arn
        self.metrics = metrics
        self.clock = clock
        self.stopping = stopping
        self.log = structlog.get_logger("poller.destination").bind(mapping=mapping_name)

    async def send(
        self,
        decision: SendToDestination,
        *,
        build: DeliveryBuilder,
        log_fields: Mapping[str, Any],
        count: int | None = None,
    ) -> bool:
        """Deliver (or drop, without a destination) the records of `decision`. False when stopping
        cut a blocked delivery short: the caller then abandons the batch without checkpointing it.

        `count`: how many records the delivery stands for when `decision` names only the first and
        last (a tumbling window given up, spec §8)."""
        records = len(decision.records) if count is None else count
        fields = {**log_fields, "records": records, "condition": str(decision.condition)}
        destination = self.destination
        if destination is None:
            self.metrics.dropped(DROP_REASONS[decision.condition], records)
            self.log.warning("records_dropped", reason="no on-failure destination", **fields)
            return True
        context = failure_context(decision, function_arn=self.function_arn, now=self.clock.wall())
        return await self._deliver_until_done(
            build(context, destination), kind=destination.kind, records=records, log=self.log.bind(**fields)
        )

    async def _deliver_until_done(self, deliver: Delivery, *, kind: str, records: int, log: Any) -> bool:
        failures = 0
        while True:
            try:
                await deliver()
            except DeliveryRejected as exc:
                self.metrics.destination_delivery_failures.inc()
                self.metrics.dropped("destination_rejected", records)
                log.error("destination_rejected", destination=kind, error=str(exc))
                return True
            except DeliveryFailed as exc:
                failures += 1
                self.metrics.destination_delivery_failures.inc()
                delay = DELIVERY_BACKOFF.jittered(failures)
                log.warning(
                    "destination_delivery_failed",
                    destination=kind,
                    error=str(exc)[:300],
                    failures=failures,
                    retry_in_s=round(delay, 2),
                )
                if await sleep_unless(self.stopping, delay):
                    return False
                continue
            self.metrics.records_sent_to_destination.inc(records)
            log.info("records_sent_to_destination", destination=kind)
            return True


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
