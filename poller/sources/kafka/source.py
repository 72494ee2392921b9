"""`KafkaSource`, the facade: the consumer's lifecycle and the tasks that share it.

One consumer per mapping joins the mapping's consumer group. `run` subscribes and starts it, then
runs the fetcher, the committer and one worker per assigned partition in one task group; stopping
lets the workers finish their batches in flight, commits once more and closes the consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from poller.config import KafkaMapping
from poller.core.batching import MAX_PAYLOAD_BYTES, BatchLimits
from poller.core.clock import Clock
from poller.core.filtering import compile_filters
from poller.core.kafka_event import KafkaEventShape
from poller.dispatch.driver import Driver
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Invoker
from poller.errors import first_error
from poller.observability.metrics import MappingMetrics
from poller.observability.status import StatusReport
from poller.sources.kafka.committer import Committer
from poller.sources.kafka.fetcher import Fetcher
from poller.sources.kafka.partition import PartitionContext, PartitionWorker
from poller.sources.kafka.policy import kafka_retry_policy
from poller.sources.kafka.rebalance import Rebalance

PARTITION_CAPACITY_MIN: Final = 500
"""Records buffered per partition before it is left out of fetching (at least 2 x BatchSize)."""

ConsumerFactory = Callable[["KafkaSource"], AIOKafkaConsumer]


class KafkaSource:
    kind = "kafka"

    def __init__(
        self,
        mapping: KafkaMapping,
        *,
        consumer_factory: ConsumerFactory,
        invoker: Invoker,
        driver: Driver,
        failures: FailureSender,
        metrics: MappingMetrics,
        status: StatusReport,
        clock: Clock,
        stopping: asyncio.Event,
        revoke_budget_seconds: float,
        revoke_commit_seconds: float,
    ) -> None:
        self.mapping = mapping
        self.consumer_factory = consumer_factory
        self.metrics = metrics
        self.status = status
        self.stopping = stopping
        self.revoke_budget_seconds = revoke_budget_seconds
        """How long a revoked partition's batch in flight may run on; then it is abandoned."""
        self.revoke_commit_seconds = revoke_commit_seconds
        """How long the revocation's commit may take: together within the rebalance timeout
        (`runtime.kafka_clients.group_timeouts`)."""
        self.log = structlog.get_logger("poller.kafka").bind(mapping=mapping.name)
        self.shape = KafkaEventShape(bootstrap_servers=",".join(mapping.bootstrap_servers))
        patterns = mapping.filter_patterns
        self.commit_wanted = asyncio.Event()
        self.room = asyncio.Event()
        """Set when a partition's buffer drops below its capacity."""
        self.context = PartitionContext(
            mapping_name=mapping.name,
            shape=self.shape,
            limits=BatchLimits(
                batch_size=mapping.batch_size,
                window_seconds=mapping.maximum_batching_window_ms / 1000,
                envelope_bytes=self.shape.envelope_bytes,
            ),
            filters=compile_filters(patterns, source="kafka") if patterns else None,
            policy=kafka_retry_policy(mapping),
            payload_limit=MAX_PAYLOAD_BYTES - self.shape.envelope_bytes,
            capacity=max(2 * mapping.batch_size, PARTITION_CAPACITY_MIN),
            invoker=invoker,
            driver=driver,
            failures=failures,
            metrics=metrics,
            clock=clock,
            stopping=stopping,
            room=self.room,
            commit_wanted=self.commit_wanted,
            log=self.log,
        )
        self.workers: dict[TopicPartition, PartitionWorker] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.committer: Committer | None = None
        self.rebalance: Rebalance | None = None
        self.group: asyncio.TaskGroup | None = None

    async def stop(self) -> None:
        self.stopping.set()
        self.commit_wanted.set()
        self.room.set()

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        assert self.rebalance is not None, "partitions are assigned only to a running source"
        await self.rebalance.assigned(partitions)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        assert self.rebalance is not None, "partitions are revoked only from a running source"
        await self.rebalance.revoked(partitions)

    def _new_worker(self, tp: TopicPartition) -> PartitionWorker:
        assert self.consumer is not None
        worker = PartitionWorker(self.context, self.consumer, tp)
        if self.group is not None:
            worker.start(self.group)
        return worker

    async def run(self) -> None:
        consumer = self.consumer_factory(self)
        self.consumer = consumer
        committer = Committer(
            consumer, workers=self.workers, wanted=self.commit_wanted, metrics=self.metrics, log=self.log
        )
        self.committer = committer
        self.rebalance = Rebalance(
            consumer,
            mapping=self.mapping,
            workers=self.workers,
            new_worker=self._new_worker,
            committer=committer,
            positions=self.status.positions,
            room=self.room,
            revoke_budget_seconds=self.revoke_budget_seconds,
            revoke_commit_seconds=self.revoke_commit_seconds,
            log=self.log,
        )
        fetcher = Fetcher(
            consumer,
            workers=self.workers,
            capacity=self.context.capacity,
            room=self.room,
            stopping=self.stopping,
            metrics=self.metrics,
            status=self.status,
        )
        try:
            consumer.subscribe([self.mapping.topic], listener=self.rebalance)
            await consumer.start()
        except BaseException as exc:
            # Whatever stopped the start (a cancellation too), the client's connections and
            # background tasks must go with it: the supervisor builds a new consumer next time.
            await self._close(consumer)
            if isinstance(exc, KafkaError):
                raise ConnectionError(f"Kafka at {self.shape.bootstrap_servers}: {exc}") from exc
            raise
        self.status.running()
        self.log.info("mapping_started", topic=self.mapping.topic, group=self.mapping.consumer_group_id)
        try:
            async with asyncio.TaskGroup() as group:
                self.group = group
                for worker in self.workers.values():
                    worker.start(group)
                fetching = group.create_task(fetcher.run())
                committing = group.create_task(committer.run())
                await fetching
                # Stopping: workers finish their batch in flight, then the last commit.
                await asyncio.gather(*(w.finished() for w in list(self.workers.values())))
                self.commit_wanted.set()
                committing.cancel()
        except ExceptionGroup as group_error:
            raise first_error(group_error) from group_error
        finally:
            self.group = None
            # What is still buffered is read again by the next owner: it no longer counts here.
            for worker in self.workers.values():
                worker.drop_buffer()
            await committer.commit(list(self.workers.values()))
            await consumer.stop()

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await consumer.stop()
        except Exception as exc:
            self.log.warning("consumer_close_failed", error=str(exc)[:300])
