"""`kafka://topic` (spec §6.5): one message per failed record, on the source's own cluster.

Each failed record becomes one message keyed with the record's own key (null keys are spread
round-robin over the partitions), whose value is the §6.5 document: the failure metadata narrowed
to that record, with the one-record event as `payload`. How a source uses it:

* through the `Destination` protocol, like any destination: `deliver(FailureDelivery(record,
  payload))` with `record` from `kafka_failure_record` (spec §6.4) describing the discarded batch
  and `payload` its invocation event, which a Kafka destination requires. The event is split
  into its records here, so the caller needs no Kafka-specific path;
* or, holding the records already, `deliver_records([kafka_failed_record(failure, item.record,
  encoded=item.encoded) for item in items])`, which skips parsing the event back.

Producers are shared: one `AIOKafkaProducer` per bootstrap-servers string (`KafkaProducers`),
started at the first delivery, so a cluster that is down is reported then and not at start-up.
Messages are written with `acks=all`. Idempotence is off by default because Tansu (the test
broker) does not implement InitProducerId; a retried delivery may therefore duplicate messages,
which at-least-once allows.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    BrokerResponseError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from aiokafka.partitioner import DefaultPartitioner

from poller.core.kafka_failure_messages import KafkaFailedRecord, kafka_failed_records
from poller.destinations.base import DeliveryFailed, DeliveryRejected, FailureDelivery

__all__ = ["KafkaDestination", "KafkaFailedRecord", "KafkaProducers", "ProducersClosed", "RoundRobinNullKeys"]

DEFAULT_REQUEST_TIMEOUT_MS: Final = 10_000
"""How long aiokafka waits for metadata and for a produce reply before failing a send."""
DEFAULT_MAX_REQUEST_SIZE: Final = 8 * 1024 * 1024
"""A §6.5 message carries the record base64'd plus metadata, so it outgrows aiokafka's 1 MB
default; the broker's own `message.max.bytes` still decides, and its refusal is a rejection."""
DEFAULT_DELIVERY_TIMEOUT_SECONDS: Final = 30.0

REJECTED_ERRORS: Final = (MessageSizeTooLargeError, RecordListTooLargeError)
"""The message itself is at fault: the same message is refused on every retry."""


class RoundRobinNullKeys:
    """Kafka's key-hash partitioning, but null keys take the partitions in turn (spec §6.5) rather
    than at random as aiokafka's default does."""

    def __init__(self) -> None:
        self._turn = itertools.count()
        self._by_key = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            pool = sorted(available) if available else all_partitions
            return pool[next(self._turn) % len(pool)]
        partition: int = self._by_key(key, all_partitions, available)
        return partition


ProducerFactory = Callable[[str], Any]


class ProducersClosed(RuntimeError):
    """A delivery raced the shutdown that closed the shared producers."""


class KafkaProducers:
    """One started producer per bootstrap-servers string, shared by every Kafka destination.

    Owned by whoever builds the mappings (the runtime), which closes it once at shutdown.
    `connection` adds aiokafka's client and security options (`runtime.kafka_clients.
    connection_options`); the delivery settings here (acks, request size) are not theirs to change.
    """

    def __init__(
        self,
        *,
        request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        enable_idempotence: bool = False,
        client_id: str = "poller",
        connection: Mapping[str, Any] | None = None,
        factory: ProducerFactory | None = None,
    ) -> None:
        self._settings: dict[str, Any] = {
            "client_id": client_id,
            **(connection or {}),
            "acks": "all",
            "request_timeout_ms": request_timeout_ms,
            "max_request_size": max_request_size,
            "enable_idempotence": enable_idempotence,
        }
        self._factory = factory or self._new_producer
        self._started: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    def _new_producer(self, bootstrap_servers: str) -> Any:
        # Made here, inside the running loop: aiokafka binds a producer to the loop it is made in.
        return AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, partitioner=RoundRobinNullKeys(), **self._settings
        )

    async def get(self, bootstrap_servers: str) -> Any:
        """The started producer for `bootstrap_servers`, starting it on first use.

        Raises aiokafka's error if the cluster cannot be reached; nothing is kept then, so the
        next call tries again.
        """
        producer = self._started.get(bootstrap_servers)
        if producer is not None:
            return producer
        lock = self._locks.setdefault(bootstrap_servers, asyncio.Lock())
        async with lock:
            producer = self._started.get(bootstrap_servers)
            if producer is not None:
                return producer
            if self._closed:
                raise ProducersClosed("Kafka producers are closed")
            producer = self._factory(bootstrap_servers)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            if self._closed:  # closed while starting
                await producer.stop()
                raise ProducersClosed("Kafka producers are closed")
            self._started[bootstrap_servers] = producer
            return producer

    async def aclose(self) -> None:
        """Flush and stop every producer; idempotent."""
        self._closed = True
        started, self._started = list(self._started.values()), {}
        for producer in started:
            await producer.stop()


class KafkaDestination:
    kind: str = "kafka"

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str,
        producers: KafkaProducers | None = None,
        timeout_seconds: float = DEFAULT_DELIVERY_TIMEOUT_SECONDS,
    ) -> None:
        self._topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._owns_producers = producers is None
        self._producers = producers if producers is not None else KafkaProducers()
        self._timeout_seconds = timeout_seconds

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def uri(self) -> str:
        return f"kafka://{self._topic}"

    async def deliver(self, delivery: FailureDelivery) -> None:
        """Write one message per record of the discarded batch; `delivery.payload` is required."""
        if delivery.payload is None:
            raise ValueError(f"{self.uri} writes the failed records themselves: deliver the invocation event")
        try:
            records = kafka_failed_records(delivery.record, delivery.payload)
        except ValueError as exc:
            raise DeliveryRejected(f"failure for {self.uri} does not carry a Kafka event: {exc}") from exc
        await self.deliver_records(records)

    async def deliver_records(self, records: Sequence[KafkaFailedRecord]) -> None:
        """Write these messages; returns once the cluster acknowledged every one (acks=all).

        Raises `DeliveryRejected` if a message can never be written (too large), else
        `DeliveryFailed`. Messages acknowledged before a failure stay written, so a retry may
        write them again.
        """
        if not records:
            return
        try:
            async with asyncio.timeout(self._timeout_seconds):
                errors = await self._produce(records)
        except TimeoutError as exc:
            raise DeliveryFailed(
                f"producing to {self.uri} at {self._bootstrap_servers} did not finish "
                f"within {self._timeout_seconds:g}s"
            ) from exc
        except KafkaError as exc:  # the producer could not start: the cluster is unreachable
            raise self._translate(exc) from exc
        except ProducersClosed as exc:
            raise DeliveryFailed(f"producing to {self.uri}: {exc}") from exc
        if errors:
            first = next((e for e in errors if isinstance(e, REJECTED_ERRORS)), errors[0])
            raise self._translate(first) from first

    async def _produce(self, records: Sequence[KafkaFailedRecord]) -> list[KafkaError]:
        producer = await self._producers.get(self._bootstrap_servers)
        errors: list[KafkaError] = []
        pending: list[asyncio.Future[Any]] = []
        # Queue every message, then wait for all: aiokafka batches them into few requests.
        for record in records:
            try:
                pending.append(await producer.send(self._topic, record.value, key=record.key))
            except KafkaError as exc:  # refused before sending (too large, no metadata)
                errors.append(exc)
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, KafkaError):
                errors.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        return errors

    def _translate(self, exc: KafkaError) -> DeliveryFailed:
        code = exc.message if isinstance(exc, BrokerResponseError) else None
        text = f"producing to {self.uri} at {self._bootstrap_servers} failed: {exc}"
        if isinstance(exc, REJECTED_ERRORS):
            return DeliveryRejected(text, code=code)
        return DeliveryFailed(text, code=code)

    async def aclose(self) -> None:
        if self._owns_producers:
            await self._producers.aclose()
