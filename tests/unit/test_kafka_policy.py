"""Kafka's retry policy and item identifiers (spec §5.3, §4.2)."""

from __future__ import annotations

from dataclasses import replace

from poller.config import KafkaMapping, Location
from poller.sources.kafka import RETRIES_WITH_DESTINATION_CAP, kafka_identifier, kafka_retry_policy

MAPPING = KafkaMapping(
    name="orders",
    location=Location(None, None),
    event_source_arn="kafka://b1:9092/orders",
    topic="orders",
    bootstrap_servers=("b1:9092",),
    consumer_group_id="orders",
    function_name="f",
    function_timeout_seconds=3,
    enabled=True,
    batch_size=100,
    maximum_batching_window_ms=500,
    starting_position="TRIM_HORIZON",
    starting_position_timestamp=None,
    bisect_batch_on_function_error=True,
    maximum_retry_attempts=-1,
    maximum_record_age_seconds=-1,
    report_batch_item_failures=True,
    on_failure_destination=None,
)


def test_infinite_retries_with_a_destination_are_capped_at_ten() -> None:
    """spec §5.3: "With infinite retries and an on-failure destination, Lambda caps retries at 10"."""
    capped = kafka_retry_policy(replace(MAPPING, on_failure_destination="kafka://dlq"))
    assert capped.maximum_retry_attempts == RETRIES_WITH_DESTINATION_CAP == 10
    assert capped.bisect_on_function_error is True
    assert capped.report_batch_item_failures is True


def test_without_a_destination_or_with_a_bound_the_setting_stands() -> None:
    assert kafka_retry_policy(MAPPING).maximum_retry_attempts == -1
    bounded = replace(MAPPING, maximum_retry_attempts=3, on_failure_destination="kafka://dlq")
    assert kafka_retry_policy(bounded).maximum_retry_attempts == 3


def test_item_identifiers_name_a_partition_and_an_offset() -> None:
    """spec §4.2: Kafka's itemIdentifier is {"partition": "<topic>-<partition>", "offset": n}."""
    read = kafka_identifier("orders-0")
    assert read({"partition": "orders-0", "offset": 7}) == "7"
    assert read({"partition": "orders-0", "offset": "7"}) == "7"
    assert read({"partition": "orders-1", "offset": 7}) == "orders-1:7"  # not in this batch
    for unusable in ("7", 7, None, {"partition": "orders-0"}, {"partition": "orders-0", "offset": True}):
        assert read(unusable) is None
