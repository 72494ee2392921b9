"""Fetching: `getmany` into the partition workers' buffers, flow control, and the lag.

A partition whose buffer is full is left out of `getmany` (its fetched records wait in the client);
only when every partition stays full are they paused, so the consumer keeps polling behind a slow
function and never drops out of its group. After each fetch the offset lag is published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from poller.observability.metrics import MappingMetrics
from poller.observability.status import StatusReport
from poller.sources.kafka.partition import PartitionWorker

FETCH_TIMEOUT_MS: Final = 500
FULL_WAIT_SECONDS: Final = 5.0
"""How long every partition may stay full before they are paused (see `_partitions_with_room`)."""


class Fetcher:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        workers: Mapping[TopicPartition, PartitionWorker],
        capacity: int,
        room: asyncio.Event,
        stopping: asyncio.Event,
        metrics: MappingMetrics,
        status: StatusReport,
    ) -> None:
        self.consumer = consumer
        self.workers = workers
        self.capacity = capacity
        self.room = room
        """Set when a partition's buffer drops below `capacity` (or the assignment changes)."""
        self.stopping = stopping
        self.metrics = metrics
        self.status = status

    async def run(self) -> None:
        while not self.stopping.is_set():
            room = await self._partitions_with_room()
            self.room.clear()
            if len(room) == len(self.workers):
                batches = await self.consumer.getmany(
                    *room, timeout_ms=FETCH_TIMEOUT_MS, max_records=self.capacity
                )
            else:
                batches = await self._fetch_until_room(room)
            for tp, records in batches.items():
                worker = self.workers.get(tp)
                if worker is None:
                    continue  # revoked meanwhile: the next owner fetches them from the commit
                worker.add(records)
            self._publish_lag()

    async def _fetch_until_room(self, room: list[TopicPartition]) -> dict[TopicPartition, list[Any]]:
        """`getmany` of the partitions in `room`, cut short when another partition gets room (so a
        full partition is not left waiting for the fetch timeout)."""
        fetch = asyncio.ensure_future(
            self.consumer.getmany(*room, timeout_ms=FETCH_TIMEOUT_MS, max_records=self.capacity)
        )
        more_room = asyncio.ensure_future(self.room.wait())
        try:
            await asyncio.wait({fetch, more_room}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            more_room.cancel()
            # aiokafka takes records off its buffer only once it stops waiting, so a cancelled
            # getmany has taken none; one that finished first keeps its result.
            fetch.cancel()
        try:
            batches: dict[TopicPartition, list[Any]] = await fetch
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this loop itself is being cancelled, not just the fetch
            return {}
        return batches

    async def _partitions_with_room(self) -> list[TopicPartition]:
        """The partitions to take records of now: those whose buffer is not full.

        A full partition is left out of `getmany` rather than paused: aiokafka keeps its fetched
        records (at most one fetch, `max_partition_fetch_bytes`) until they are asked for, where
        pausing would drop them and fetch them again on resume. Only when every partition stays
        full for `FULL_WAIT_SECONDS` are they paused, so that `getmany` can go on being called and
        the consumer stays in its group (`max_poll_interval_ms`) behind a slow function.
        """
        room = [tp for tp, worker in self.workers.items() if worker.buffered < self.capacity]
        if room or not self.workers:
            for tp in room:
                self.workers[tp].resume("buffer full")
            return room
        self.room.clear()
        try:
            async with asyncio.timeout(FULL_WAIT_SECONDS):
                await self.room.wait()
        except TimeoutError:
            for worker in self.workers.values():
                worker.pause("buffer full")
            return []
        return await self._partitions_with_room()

    def _publish_lag(self) -> None:
        lag = 0
        for tp, worker in self.workers.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None and worker.next_offset is not None:
                lag += max(highwater - worker.next_offset, 0)
            self.status.positions[worker.key] = worker.position(highwater)
        self.metrics.offset_lag.set(lag)
