"""The shard reader against an in-memory stream: expired iterators, throttling, iterator age.

These paths cannot be provoked on moto (its iterators never expire and it never throttles), so the
shared stream helper runs here against a small stream double that speaks the `StreamApi` protocol
(not a mock of aiobotocore), with a real SQLite store, metrics registry and invoker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
import pytest
from prometheus_client import CollectorRegistry

from poller.core.clock import SystemClock
from poller.core.outcome import InvokeOutcome, Succeeded
from poller.core.shard_lineage import ShardInfo
from poller.core.stream_retry import StreamRecordRef
from poller.observability.metrics import Metrics
from poller.observability.status import MappingStatus
from poller.sources.streams import StreamSource
from poller.sources.streams.api import (
    AfterSequence,
    IteratorExpired,
    ReadResult,
    ReadThrottled,
    StartAt,
    StreamItem,
    TrimHorizon,
)
from poller.state import SqliteCheckpointStore
from tests.unit.stream_mappings import ARN, stream_source
from tests.unit.stream_mappings import kinesis_mapping as mapping
from tests.waiting import wait_until


def item(sequence: int, arrival: float) -> StreamItem:
    record = {"kinesis": {"sequenceNumber": str(sequence), "data": ""}, "eventSource": "aws:kinesis"}
    encoded = orjson.dumps(record)
    return StreamItem(StreamRecordRef(str(sequence), arrival, len(encoded) + 1), record, encoded, "k")


@dataclass
class StreamDouble:
    """One shard of records 1..n; `failures[i]` is raised by the i-th read (0-based) instead."""

    records: list[StreamItem]
    failures: dict[int, Exception] = field(default_factory=dict)
    reads: int = 0
    iterators: list[StartAt] = field(default_factory=list)
    behind_ms: int = 0
    kind: Literal["kinesis"] = "kinesis"
    max_read_records: int = 3
    idle_poll_seconds: float = 0.01

    async def retention_seconds(self) -> float:
        return 86_400.0

    async def list_shards(self) -> list[ShardInfo]:
        return [ShardInfo("shard-0")]

    async def iterator(self, shard_id: str, start: StartAt) -> str:
        self.iterators.append(start)
        match start:
            case AfterSequence(sequence_number=n):
                return n
            case _:
                return "0"

    async def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
        self.reads += 1
        if (failure := self.failures.pop(self.reads - 1, None)) is not None:
            raise failure
        after = int(iterator)
        batch = [r for r in self.records if int(r.ref.sequence_number) > after][:limit]
        position = batch[-1].ref.sequence_number if batch else iterator
        return ReadResult(batch, position, self.behind_ms)


@dataclass
class RecordingTarget:
    kind: str = "python"
    sequences: list[str] = field(default_factory=list)

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        self.sequences += [r["kinesis"]["sequenceNumber"] for r in orjson.loads(payload)["Records"]]
        return Succeeded(b"null")

    async def aclose(self) -> None:
        return None


@dataclass
class Running:
    source: StreamSource
    target: RecordingTarget
    registry: CollectorRegistry
    status: MappingStatus

    def metric(self, name: str) -> float:
        return self.registry.get_sample_value(name, {"mapping": "m"}) or 0.0


@pytest.fixture
async def run_source(tmp_path: Path) -> AsyncIterator[object]:
    tasks: list[asyncio.Task[None]] = []
    stores: list[SqliteCheckpointStore] = []

    async def start(api: StreamDouble) -> Running:
        registry = CollectorRegistry()
        metrics = Metrics(registry).for_mapping("m")
        status = MappingStatus("m", "kinesis", ARN, "python:x.y", metrics)
        store = await SqliteCheckpointStore.open(tmp_path / "state.sqlite3")
        stores.append(store)
        target = RecordingTarget()
        stopping = asyncio.Event()
        clock = SystemClock()
        source = stream_source(
            mapping(),
            api=api,
            target=target,
            store=store,
            metrics=metrics,
            status=status,
            clock=clock,
            stopping=stopping,
        )
        tasks.append(asyncio.create_task(source.run()))
        return Running(source, target, registry, status)

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for store in stores:
        await store.aclose()


async def test_an_expired_iterator_is_recreated_after_the_last_record_read(run_source: object) -> None:
    """spec §5.2: iterators expire; re-create them from the last sequence number, never re-read."""
    api = StreamDouble([item(n, time.time()) for n in range(1, 8)], failures={1: IteratorExpired("expired")})
    running = await run_source(api)  # type: ignore[operator]
    await wait_until(lambda: len(running.target.sequences) >= 7, timeout=5)
    assert running.target.sequences == [str(n) for n in range(1, 8)]
    assert isinstance(api.iterators[0], TrimHorizon)
    assert len(api.iterators) == 2
    assert isinstance(api.iterators[1], AfterSequence)
    assert int(api.iterators[1].sequence_number) >= 3
    assert running.metric("poller_poll_errors_total") == 0  # an expiry is routine, not an error


async def test_throttled_reads_back_off_and_lose_nothing(run_source: object) -> None:
    """ProvisionedThroughputExceeded: back off, read again with the same iterator, count it."""
    api = StreamDouble(
        [item(n, time.time()) for n in range(1, 6)], failures={0: ReadThrottled("x"), 1: ReadThrottled("x")}
    )
    running = await run_source(api)  # type: ignore[operator]
    await wait_until(lambda: len(running.target.sequences) >= 5, timeout=5)
    assert running.target.sequences == [str(n) for n in range(1, 6)]
    assert running.metric("poller_poll_errors_total") == 2
    assert len(api.iterators) == 1  # a throttle keeps the iterator


async def test_iterator_age_is_the_age_of_the_last_record_read_then_zero_when_caught_up(
    run_source: object,
) -> None:
    """DESIGN §1.7 iterator_age_seconds; spec §10 IteratorAge."""
    api = StreamDouble([item(1, time.time() - 120)], behind_ms=0, idle_poll_seconds=1.0)
    running = await run_source(api)  # type: ignore[operator]
    await wait_until(lambda: running.metric("poller_iterator_age_seconds") >= 119, timeout=5)
    await wait_until(lambda: running.target.sequences == ["1"], timeout=5)
    await wait_until(lambda: running.metric("poller_iterator_age_seconds") == 0, timeout=5)
    position = running.status.positions["shard-0"]
    assert position["SequenceNumber"] == "1"
