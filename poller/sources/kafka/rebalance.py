"""The consumer group's rebalances: partitions assigned get a worker, partitions revoked give theirs up.

A revoked partition stops taking batches and finishes what is in flight within the revoke budget
(past it, the batch is abandoned and read again by the next owner); then its finished offsets are
committed, bounded too, so the whole revocation fits the group's rebalance timeout
(`runtime.kafka_clients.group_timeouts`), before the partition is released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from poller.config import KafkaMapping
from poller.sources.kafka.committer import Committer
from poller.sources.kafka.partition import PartitionWorker


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        mapping: KafkaMapping,
        workers: dict[TopicPartition, PartitionWorker],
        new_worker: Callable[[TopicPartition], PartitionWorker],
        committer: Committer,
        positions: dict[str, Any],
        room: asyncio.Event,
        revoke_budget_seconds: float,
        revoke_commit_seconds: float,
        log: Any,
    ) -> None:
        self.consumer = consumer
        self.mapping = mapping
        self.workers = workers
        self.new_worker = new_worker
        """Makes a partition's worker, started if the source is running."""
        self.committer = committer
        self.positions = positions
        """The status model's Positions: a revoked partition's entry goes."""
        self.room = room
        self.revoke_budget_seconds = revoke_budget_seconds
        self.revoke_commit_seconds = revoke_commit_seconds
        self.log = log

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.assigned(set(assigned))

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.revoked(set(revoked))

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in sorted(partitions, key=lambda p: p.partition):
            if tp in self.workers:
                continue
            committed = await self.consumer.committed(tp)
            if committed is None and self.mapping.starting_position == "AT_TIMESTAMP":
                await self._seek_to_timestamp(tp)
            self.workers[tp] = self.new_worker(tp)
        self.log.info("partitions_assigned", partitions=sorted(tp.partition for tp in partitions))

    async def _seek_to_timestamp(self, tp: TopicPartition) -> None:
        # An extension over AWS (which documents AT_TIMESTAMP for MSK): offsets_for_times.
        stamp = self.mapping.starting_position_timestamp
        assert stamp is not None  # the loader requires it with AT_TIMESTAMP
        found = await self.consumer.offsets_for_times({tp: int(stamp * 1000)})
        position = found.get(tp)
        if position is None:
            await self.consumer.seek_to_end(tp)
        else:
            self.consumer.seek(tp, position.offset)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        leaving = [self.workers[tp] for tp in partitions if tp in self.workers]
        for worker in leaving:
            worker.stop()
        if leaving:
            try:
                async with asyncio.timeout(self.revoke_budget_seconds):
                    await asyncio.gather(*(w.finished() for w in leaving))
            except TimeoutError:
                self.log.warning("revoke_budget_exceeded", partitions=[w.tp.partition for w in leaving])
            # Bounded too: the whole revocation stays within the group's rebalance timeout.
            await self.committer.commit(leaving, timeout=self.revoke_commit_seconds)
        for worker in leaving:
            worker.cancel()
            self.workers.pop(worker.tp, None)
            self.positions.pop(worker.key, None)
        self.room.set()
        if partitions:
            self.log.info("partitions_revoked", partitions=sorted(tp.partition for tp in partitions))
