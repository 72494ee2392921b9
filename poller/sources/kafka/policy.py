"""What the mapping's settings mean for a Kafka batch: its retry policy (spec §5.3) and how the
function's `itemIdentifier`s name its records (spec §4.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from poller.config import KafkaMapping
from poller.core.stream_retry import RetryPolicy

RETRIES_WITH_DESTINATION_CAP: Final = 10
"""spec §5.3: with infinite retries and an on-failure destination, Lambda caps retries at 10."""


def kafka_identifier(partition_key: str) -> Callable[[object], str | None]:
    """spec §4.2: a Kafka `itemIdentifier` is `{"partition": "<topic>-<partition>", "offset": n}`;
    batches here hold one partition, so an identifier maps to its offset, else it is not in the batch."""

    def read(value: object) -> str | None:
        if not isinstance(value, dict):
            return None
        offset = value.get("offset")
        if isinstance(offset, str) and offset.isdigit():
            offset = int(offset)
        if not isinstance(offset, int) or isinstance(offset, bool):
            return None
        return (
            str(offset) if value.get("partition") == partition_key else f"{value.get('partition')}:{offset}"
        )

    return read


def kafka_retry_policy(mapping: KafkaMapping) -> RetryPolicy:
    """The mapping's error handling; spec §5.3: with infinite retries and an on-failure destination,
    Lambda caps retries at 10."""
    retries = mapping.maximum_retry_attempts
    if retries == -1 and mapping.on_failure_destination is not None:
        retries = RETRIES_WITH_DESTINATION_CAP
    return RetryPolicy(
        maximum_retry_attempts=retries,
        maximum_record_age_seconds=mapping.maximum_record_age_seconds,
        bisect_on_function_error=mapping.bisect_batch_on_function_error,
        report_batch_item_failures=mapping.report_batch_item_failures,
    )
