"""The Kafka source's edges (issue 13): group timeouts that outlast a revocation, the service's
producers, records without a timestamp, a consumer that fails to start, the buffered-records gauge
across restarts, and failed commits.

The source runs against a fake consumer here (just the calls `KafkaSource` makes); the real
broker's side is in tests/integration/test_kafka_hardening.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaError, RebalanceInProgressError
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from poller.config import KafkaMapping, Location, load_config
from poller.core.clock import SystemClock
from poller.core.kafka_event import (
    NO_TIMESTAMP,
    KafkaRecordEncoder,
    arrival_epoch_seconds,
    from_consumer_record,
    kafka_record,
    serialise_record,
)
from poller.core.kafka_failure_messages import kafka_failed_record, kafka_item
from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded
from poller.core.stream_retry import BackoffPolicy
from poller.destinations.kafka import DEFAULT_MAX_REQUEST_SIZE
from poller.dispatch.driver import Driver
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Invoker
from poller.observability.metrics import MappingMetrics, Metrics
from poller.observability.status import MappingStatus
from poller.runtime.app import Service
from poller.runtime.kafka_clients import DEFAULT_MAX_POLL_INTERVAL_MS, group_timeouts
from poller.sources.kafka import KafkaSource
from poller.sources.kafka.partition import PartitionWorker
from tests.waiting import wait_until

TOPIC = "orders"
TP = TopicPartition(TOPIC, 0)
MAPPING = KafkaMapping(
    name="orders",
    location=Location(None, None),
    event_source_arn="kafka://b1:9092/orders",
    topic=TOPIC,
    bootstrap_servers=("b1:9092",),
    consumer_group_id="orders",
    function_name="f",
    function_timeout_seconds=3,
    enabled=True,
    batch_size=10,
    maximum_batching_window_ms=0,
    starting_position="TRIM_HORIZON",
    starting_position_timestamp=None,
    bisect_batch_on_function_error=False,
    maximum_retry_attempts=-1,
    maximum_record_age_seconds=-1,
    report_batch_item_failures=False,
    on_failure_destination=None,
)


def record(offset: int, *, timestamp: int | None = 1_732_270_000_000 - 1, value: bytes = b"v") -> Any:
    return ConsumerRecord(
        topic=TOPIC,
        partition=0,
        offset=offset,
        timestamp=timestamp,  # type: ignore[arg-type]  # a v0 message's record has None
        timestamp_type=None if timestamp is None else 0,  # type: ignore[arg-type]
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=len(value),
        headers=[],
    )


class FakeConsumer:
    """The part of `AIOKafkaConsumer` the source uses, with one partition assigned at start."""

    def __init__(
        self,
        records: Iterable[Any] = (),
        *,
        start_error: BaseException | None = None,
        start_blocks: bool = False,
        commit_error: KafkaError | None = None,
        commit_blocks: bool = False,
    ) -> None:
        self.pending = list(records)
        self.start_error = start_error
        self.start_blocks = start_blocks
        self.commit_error = commit_error
        self.commit_blocks = commit_blocks
        self.listener: Any = None
        self.starting = asyncio.Event()
        self.stops = 0
        self.commits: list[dict[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        self._never = asyncio.Event()

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        self.listener = listener

    async def start(self) -> None:
        self.starting.set()
        if self.start_blocks:
            await self._never.wait()
        if self.start_error is not None:
            raise self.start_error
        await self.listener.on_partitions_assigned({TP})

    async def stop(self) -> None:
        self.stops += 1

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        if self.pending and TP in (partitions or (TP,)) and TP not in self.paused:
            taken, self.pending = self.pending[:max_records], self.pending[max_records:]
            return {TP: taken}
        # A broker's long poll with nothing to return.
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout_ms / 1000):
                await self._never.wait()
        return {}

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        if self.commit_blocks:
            await self._never.wait()
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append({tp: o.offset for tp, o in offsets.items()})

    async def committed(self, tp: TopicPartition) -> int | None:
        return None

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)


class FakeTarget:
    """A function that, while `gate` is closed, holds every invocation; records each event."""

    kind = "python"

    def __init__(
        self, *, fail: bool = False, gated: bool = False, outcome: InvokeOutcome | None = None
    ) -> None:
        self.fail = fail
        self.outcome = outcome
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.events: list[dict[str, Any]] = []

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        self.events.append(orjson.loads(payload))
        await self.gate.wait()
        if self.outcome is not None:
            return self.outcome
        if self.fail:
            return FunctionFailed(error_type="Boom", error_message="boom")
        return Succeeded(b"null")

    async def aclose(self) -> None:
        return None


def mapping_metrics() -> MappingMetrics:
    return Metrics(CollectorRegistry()).for_mapping(MAPPING.name)


def make_source(
    consumer: FakeConsumer,
    target: FakeTarget,
    metrics: MappingMetrics,
    *,
    revoke_commit_seconds: float = 10.0,
    **changes: Any,
) -> KafkaSource:
    mapping = replace(MAPPING, **changes)
    stopping = asyncio.Event()
    clock = SystemClock()
    status = MappingStatus(
        name=mapping.name,
        source_kind="kafka",
        event_source=mapping.event_source_arn,
        function_name=mapping.function_name,
        metrics=metrics,
    )
    return KafkaSource(
        mapping,
        consumer_factory=lambda _: consumer,  # type: ignore[arg-type,return-value]
        invoker=Invoker(
            target=target, metrics=metrics, source_kind="kafka", report_batch_item_failures=False
        ),
        driver=Driver(clock=clock, status=status),
        failures=FailureSender(
            mapping_name=mapping.name,
            destination=None,
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
            metrics=metrics,
            clock=clock,
            stopping=stopping,
        ),
        metrics=metrics,
        status=status,
        clock=clock,
        stopping=stopping,
        revoke_budget_seconds=1.0,
        revoke_commit_seconds=revoke_commit_seconds,
    )


def buffered(metrics: MappingMetrics) -> float:
    return float(metrics.buffered_records._value.get())


def invoked_offsets(target: FakeTarget) -> list[int]:
    return [r["offset"] for event in target.events for rs in event["records"].values() for r in rs]


# -- 1. group timeouts that outlast a revocation ---------------------------------------------------


def test_group_timeouts_leave_room_for_a_revocation_of_a_fifteen_second_function() -> None:
    timeouts = group_timeouts(15, session_timeout_ms=10_000)
    assert timeouts.revoke_wait_seconds == 20.0  # the function timeout and the invoke's overrun
    # aiokafka's default (the 10 s session timeout) would evict the member mid-revocation.
    assert timeouts.rebalance_timeout_ms >= (timeouts.revoke_seconds + 10) * 1000
    assert timeouts.max_poll_interval_ms == DEFAULT_MAX_POLL_INTERVAL_MS


@given(function_timeout=st.integers(1, 900), session_timeout_ms=st.integers(6_000, 300_000))
def test_the_revocation_always_fits_inside_the_group_timeouts(
    function_timeout: int, session_timeout_ms: int
) -> None:
    timeouts = group_timeouts(function_timeout, session_timeout_ms)
    revocation_ms = timeouts.revoke_seconds * 1000
    assert timeouts.revoke_wait_seconds >= function_timeout
    assert timeouts.rebalance_timeout_ms >= revocation_ms + 10_000
    assert timeouts.rebalance_timeout_ms >= session_timeout_ms
    assert timeouts.max_poll_interval_ms >= timeouts.rebalance_timeout_ms
    assert timeouts.max_poll_interval_ms >= DEFAULT_MAX_POLL_INTERVAL_MS


@pytest.fixture
async def service_stack(tmp_path: Path) -> AsyncIterator[tuple[Service, AsyncExitStack]]:
    mapping = {
        "Name": "slow",
        "Topics": [TOPIC],
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["127.0.0.1:1"]}},
        "FunctionName": "http://127.0.0.1:1/invoke",
        "FunctionTimeout": 15,
        "StartingPosition": "TRIM_HORIZON",
        "DestinationConfig": {"OnFailure": {"Destination": "kafka://failures"}},
    }
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "slow.yaml").write_text(json.dumps(mapping))
    settings = {"mappings": ["mappings/"], "kafka": {"session_timeout_ms": 10_000}}
    (tmp_path / "poller.yaml").write_text(json.dumps(settings))
    loaded = load_config(tmp_path / "poller.yaml", environ={}, cwd=tmp_path)
    assert not loaded.errors, loaded.errors
    service = Service(loaded)
    async with AsyncExitStack() as stack:
        yield service, stack
        if service.kafka_producers is not None:
            await service.kafka_producers.aclose()


async def test_the_service_builds_consumers_whose_group_waits_out_the_revocation(
    service_stack: tuple[Service, AsyncExitStack],
) -> None:
    """Through the service's own factory: the consumer aiokafka gets, and the source's budget."""
    service, stack = service_stack
    [mapping] = service.loaded.mappings
    status = MappingStatus(
        name=mapping.name,
        source_kind="kafka",
        event_source=mapping.event_source_arn,
        function_name=mapping.function_name,
        metrics=service.metrics.for_mapping(mapping.name),
    )
    source = await service._source_factory(mapping, status)(stack)
    assert isinstance(source, KafkaSource)
    consumer = source.consumer_factory(source)
    try:
        revocation_ms = (source.revoke_budget_seconds + source.revoke_commit_seconds) * 1000
        assert source.revoke_budget_seconds >= 15  # the batch in flight may run its whole timeout
        assert consumer._session_timeout_ms == 10_000
        assert consumer._rebalance_timeout_ms >= revocation_ms + 10_000
        assert consumer._max_poll_interval_ms >= consumer._rebalance_timeout_ms
    finally:
        await consumer.stop()


# -- 2. the service's kafka:// producers ------------------------------------------------------------


async def test_the_service_producers_take_messages_over_one_megabyte(
    service_stack: tuple[Service, AsyncExitStack],
) -> None:
    service, _ = service_stack
    producer = service._producers()._factory("127.0.0.1:1")  # what the service builds
    try:
        assert producer._max_request_size == DEFAULT_MAX_REQUEST_SIZE > 1024 * 1024
        assert producer.client._client_id == "poller"  # the settings' connection options still apply
    finally:
        await producer.stop()


# -- 3. records without a timestamp -----------------------------------------------------------------


def test_a_record_without_a_timestamp_is_encoded_with_minus_one() -> None:
    """A v0 message has no timestamp (aiokafka: None): `-1` as Kafka's Java client reports it."""
    rec = record(7, timestamp=None)
    encoder = KafkaRecordEncoder(TOPIC)
    [encoded] = encoder.encode_many([rec])
    assert encoded == encoder.encode(rec) == serialise_record(kafka_record(from_consumer_record(rec)))
    document = orjson.loads(encoded)
    assert document["timestamp"] == NO_TIMESTAMP == -1
    assert document["timestampType"] == "CREATE_TIME"
    # The failure records built from it stay well-formed (spec §6.4, §6.5).
    item = kafka_item(rec)
    assert item.consumed.timestamp_ms == -1
    failure = {"KafkaBatchInfo": {"bootstrapServers": "b1:9092"}, "version": "1.0"}
    message = orjson.loads(kafka_failed_record(failure, item.record).value)
    assert message["KafkaBatchInfo"]["recordInfo"]["timestamp"] == "1969-12-31T23:59:59.999Z"


def test_a_record_without_a_timestamp_arrives_when_it_is_read() -> None:
    assert arrival_epoch_seconds(None, 1_700_000_000.5) == 1_700_000_000.5
    assert arrival_epoch_seconds(NO_TIMESTAMP, 1_700_000_000.5) == 1_700_000_000.5
    assert arrival_epoch_seconds(1_700_000_000_123, 0.0) == 1_700_000_000.123


async def test_a_failing_batch_without_timestamps_is_retried_and_discarded_not_crashed() -> None:
    """The retry machine and the discard both read record timestamps (MaximumRecordAge on)."""
    consumer = FakeConsumer([record(n, timestamp=None) for n in range(3)])
    target = FakeTarget(fail=True)
    metrics = mapping_metrics()
    source = make_source(consumer, target, metrics, maximum_retry_attempts=0, maximum_record_age_seconds=60)
    run = asyncio.create_task(source.run())
    await wait_until(lambda: consumer.commits[-1:] == [{TP: 3}] or run.done(), timeout=10, what="commit")
    assert not run.done(), run.exception()
    await source.stop()
    await run
    assert invoked_offsets(target) == [0, 1, 2]
    dropped = metrics.family.records_dropped.labels(MAPPING.name, "retry_attempts_exhausted")._value.get()
    assert dropped == 3


# -- 4. a consumer that fails to start ----------------------------------------------------------------


async def test_a_consumer_whose_start_fails_with_any_error_is_closed() -> None:
    consumer = FakeConsumer(start_error=OSError("no route to host"))
    source = make_source(consumer, FakeTarget(), mapping_metrics())
    with pytest.raises(OSError, match="no route"):
        await source.run()
    assert consumer.stops == 1


async def test_a_consumer_whose_start_is_cancelled_is_closed() -> None:
    consumer = FakeConsumer(start_blocks=True)
    source = make_source(consumer, FakeTarget(), mapping_metrics())
    run = asyncio.create_task(source.run())
    await wait_until(consumer.starting.is_set, what="start() called")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert consumer.stops == 1


async def test_a_kafka_error_at_start_still_reads_as_unreachable() -> None:
    consumer = FakeConsumer(start_error=KafkaError("broker down"))
    source = make_source(consumer, FakeTarget(), mapping_metrics())
    with pytest.raises(ConnectionError, match="b1:9092"):
        await source.run()
    assert consumer.stops == 1


# -- 5. buffered_records across restarts ------------------------------------------------------------


async def test_buffered_records_return_to_the_true_count_after_a_stop_and_a_restart() -> None:
    metrics = mapping_metrics()
    first_consumer = FakeConsumer(record(n) for n in range(50))
    first_target = FakeTarget(gated=True)
    first = make_source(first_consumer, first_target, metrics)
    run = asyncio.create_task(first.run())
    await wait_until(lambda: len(first_target.events) == 1 and buffered(metrics) == 40, what="40 held")
    await first.stop()
    first_target.gate.set()
    await run
    assert buffered(metrics) == 0  # nothing is held once the source has stopped

    # The restart reads from the commit (offset 10): 40 records, 10 of them in flight.
    second_consumer = FakeConsumer(record(n) for n in range(10, 50))
    second_target = FakeTarget(gated=True)
    second = make_source(second_consumer, second_target, metrics)
    run = asyncio.create_task(second.run())
    await wait_until(lambda: len(second_target.events) == 1, what="the restart's first batch")
    await wait_until(lambda: buffered(metrics) == 30, what="30 held")
    # A shutdown past its drain budget cancels the source mid-invoke.
    run.cancel()
    with suppress(asyncio.CancelledError):
        await run
    assert buffered(metrics) == 0


async def test_records_gathered_within_the_window_leave_the_gauge_when_cancelled() -> None:
    metrics = mapping_metrics()
    consumer = FakeConsumer(record(n) for n in range(5))
    target = FakeTarget()
    # BatchSize 100 and a long window: the five records wait in the batch being formed.
    source = make_source(consumer, target, metrics, batch_size=100, maximum_batching_window_ms=60_000)
    run = asyncio.create_task(source.run())
    await wait_until(
        lambda: not consumer.pending and TP in source.workers and source.workers[TP].buffered == 0,
        what="the records taken into the batch being formed",
    )
    assert buffered(metrics) == 5  # received and not yet invoked
    run.cancel()
    with suppress(asyncio.CancelledError):
        await run
    assert buffered(metrics) == 0
    assert target.events == []


# -- 6. failed commits are counted --------------------------------------------------------------------


async def test_a_refused_commit_is_counted() -> None:
    metrics = mapping_metrics()
    consumer = FakeConsumer([record(n) for n in range(3)], commit_error=RebalanceInProgressError())
    source = make_source(consumer, FakeTarget(), metrics)
    run = asyncio.create_task(source.run())
    await wait_until(lambda: metrics.ack_failures["commit"]._value.get() >= 1, timeout=10, what="count")
    await source.stop()
    await run
    assert consumer.commits == []


async def test_a_revocation_gives_up_on_a_hung_commit_within_its_budget_and_counts_it() -> None:
    metrics = mapping_metrics()
    consumer = FakeConsumer([record(n) for n in range(3)], commit_blocks=True)
    target = FakeTarget()
    source = make_source(consumer, target, metrics, revoke_commit_seconds=0.2)
    run = asyncio.create_task(source.run())
    await wait_until(lambda: source.workers.get(TP) is not None and source.workers[TP].uncommitted)
    async with asyncio.timeout(5):
        await source.revoked({TP})
    assert metrics.ack_failures["commit"]._value.get() >= 1
    assert TP not in source.workers
    consumer.commit_blocks = False  # the last commit of the shutdown below
    run.cancel()
    with suppress(asyncio.CancelledError):
        await run


# -- 7. Retry-After: Kafka waits as the shared retry machine decides ------------------------------


async def test_a_huge_retry_after_holds_a_partition_no_longer_than_the_longest_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kafka has no throttle wait of its own: it sleeps the machine's `Backoff` (plus jitter), which
    caps a Retry-After at the longest backoff (poller/core/stream_retry.py)."""
    waits: list[float] = []

    async def leave_instead_of_sleeping(_: PartitionWorker, seconds: float) -> bool:
        waits.append(seconds)
        return True  # as if revoked meanwhile: the batch is abandoned, uncommitted

    monkeypatch.setattr(PartitionWorker, "_sleep_unless_leaving", leave_instead_of_sleeping)
    consumer = FakeConsumer([record(0)])
    target = FakeTarget(outcome=NotInvoked("throttled", "429", retry_after_seconds=3600))
    source = make_source(consumer, target, mapping_metrics())
    run = asyncio.create_task(source.run())
    await wait_until(lambda: bool(waits), what="the throttle backoff")
    await source.stop()
    await run
    longest = BackoffPolicy().max_seconds
    assert waits == [pytest.approx(waits[0])]
    assert longest * 0.8 <= waits[0] <= longest * 1.2
    assert consumer.commits == []
