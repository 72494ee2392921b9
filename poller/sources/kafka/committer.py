"""Offset commits: each partition's finished prefix, coalesced into one request per round.

Workers say when their finished offset moved (`wanted`); commits then go out at most once per
`COMMIT_INTERVAL_SECONDS`, each covering every partition that moved since its last commit, never
past an unfinished record. A failed commit is counted (`ack_failures["commit"]`) and left to the
next one, which covers the same offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from poller.observability.metrics import MappingMetrics
from poller.sources.kafka.partition import PartitionWorker

COMMIT_INTERVAL_SECONDS: Final = 1.0


class Committer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        workers: Mapping[TopicPartition, PartitionWorker],
        wanted: asyncio.Event,
        metrics: MappingMetrics,
        log: Any,
    ) -> None:
        self.consumer = consumer
        self.workers = workers
        self.wanted = wanted
        self.metrics = metrics
        self.log = log

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(COMMIT_INTERVAL_SECONDS):
                    await self.wanted.wait()
            except TimeoutError:
                pass
            self.wanted.clear()
            await self.commit(list(self.workers.values()))

    async def commit(self, workers: Sequence[PartitionWorker], *, timeout: float | None = None) -> None:
        """Commit each partition's finished prefix that moved; one request for all of them."""
        offsets = {w.tp: OffsetAndMetadata(w.commit_offset, "") for w in workers if w.uncommitted}
        if not offsets:
            return
        try:
            async with asyncio.timeout(timeout):
                await self.consumer.commit(offsets)
        except (KafkaError, TimeoutError) as exc:
            # A rebalance in progress refuses commits; revocation commits what was finished. The
            # next commit covers these offsets too, but a redelivery on a hand-over is counted.
            self.metrics.ack_failures["commit"].inc()
            self.log.warning(
                "commit_failed", error=str(exc)[:300] or type(exc).__name__, partitions=len(offsets)
            )
            return
        for worker in workers:
            worker.committed(offsets.get(worker.tp))
