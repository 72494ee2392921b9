"""One batch of a partition, and what the driver's decisions mean for it (`KafkaBatchPort`).

Invoking sends the batch's records (or the core's segment of them) as one partition's event;
waiting pauses the partition, so the consumer keeps polling and stays in its group; discarded
records go to the on-failure destination as spec §6.4/§6.5 describe them; a checkpoint finishes
the partition through an offset, which the committer then commits. Kafka acknowledges by offset
only, so the SQS-only decisions (acknowledge, give back) never reach a Kafka batch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from poller.core.kafka_event import arrival_epoch_seconds
from poller.core.sqs_batch import Acknowledge, GiveBack, InvokeAll
from poller.core.stream_retry import (
    Backoff,
    Invoke,
    SendToDestination,
    StreamRecordRef,
)
from poller.dispatch.invoker import Attempt
from poller.sources.kafka.failures import kafka_delivery

if TYPE_CHECKING:
    from poller.sources.kafka.partition import PartitionWorker


@dataclass(slots=True)
class Gathered:
    """One batch taken from a partition's buffer."""

    records: list[Any]
    """aiokafka `ConsumerRecord`s in offset order; the ones the filters dropped are not here."""
    encoded: list[bytes]
    """Each record's event JSON (`KafkaRecordEncoder`)."""
    through: int
    """The last offset taken, filtered records included: the batch's final checkpoint."""
    size: int
    """Bytes of the one-partition event, envelope included (an upper bound: `envelope_bytes`)."""


class OffsetIds(Collection[str]):
    """A batch's item ids (its offsets as strings) for `classify`, which only needs them when the
    function reports item failures: made on first use, not for every batch."""

    __slots__ = ("_ids", "_records")

    def __init__(self, records: Sequence[Any]) -> None:
        self._records = records
        self._ids: frozenset[str] | None = None

    def _set(self) -> frozenset[str]:
        if self._ids is None:
            self._ids = frozenset(str(r.offset) for r in self._records)
        return self._ids

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, item: object) -> bool:
        return item in self._set()

    def __iter__(self) -> Iterator[str]:
        return (str(r.offset) for r in self._records)


class KafkaBatchPort:
    """The `BatchPort` of one batch of `worker`'s partition."""

    def __init__(self, worker: PartitionWorker, batch: Gathered) -> None:
        self.worker = worker
        self.batch = batch
        self._index: dict[str, int] | None = None

    def refs(self, now_epoch: float) -> list[StreamRecordRef]:
        """The core's view of the records; one without a timestamp arrived when it was read."""
        return [
            StreamRecordRef(str(r.offset), arrival_epoch_seconds(r.timestamp, now_epoch), len(data) + 1)
            for r, data in zip(self.batch.records, self.batch.encoded, strict=True)
        ]

    def _positions(self, refs: Sequence[StreamRecordRef]) -> list[int]:
        if self._index is None:
            self._index = {str(r.offset): i for i, r in enumerate(self.batch.records)}
        index = self._index
        return [index[r.sequence_number] for r in refs]

    def may_invoke(self) -> bool:
        return not self.worker.done()

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt:
        batch = self.batch
        if isinstance(decision, InvokeAll):
            return await self.worker.invoke(batch.records, batch.encoded, attempt=decision.attempt)
        positions = self._positions(decision.records)
        return await self.worker.invoke(
            [batch.records[i] for i in positions],
            [batch.encoded[i] for i in positions],
            attempt=decision.attempt,
        )

    async def wait(self, seconds: float, backoff: Backoff) -> bool:
        worker = self.worker
        # Paused while waiting, so the consumer keeps polling and stays in its group.
        worker.pause("retry backoff")
        try:
            return not await worker._sleep_unless_leaving(seconds)
        finally:
            worker.resume("retry backoff")

    async def send_to_destination(self, decision: SendToDestination) -> bool:
        worker, context = self.worker, self.worker.context
        records = [self.batch.records[i] for i in self._positions(decision.records)]
        build = kafka_delivery(
            records, shape=context.shape, mapping_name=context.mapping_name, partition_key=worker.key
        )
        fields = {"partition": worker.key, "first": records[0].offset, "last": records[-1].offset}
        return await context.failures.send(decision, build=build, log_fields=fields)

    async def checkpoint(self, after_sequence_number: str) -> None:
        self.worker.finish_through(int(after_sequence_number))

    async def acknowledge(self, decision: Acknowledge) -> None:
        raise RuntimeError("a Kafka batch is committed by offset, never acknowledged by message")

    async def give_back(self, decision: GiveBack) -> None:
        raise RuntimeError("a Kafka batch has no messages to give back: it is read again from its offset")
