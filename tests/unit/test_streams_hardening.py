"""The stream helper under failing stores, poison batches and restarts (DESIGN §3, spec §5.2).

A lease table or checkpoint store that cannot be reached for a moment, a batch that keeps failing
while the filter drops everything behind it, a mapping stopped with records queued: none of these
can be provoked on moto at the right moment, so the shared stream helper runs here against small
doubles of the `StreamApi` protocol and of the stores (not mocks of aiobotocore), with a real SQLite
store behind them, a real metrics registry and a real invoker.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from poller.core.clock import ManualClock, SystemClock
from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded
from poller.core.shard_lineage import ShardInfo
from poller.core.shard_progress import ShardProgress
from poller.core.stream_retry import Backoff, Invoke, RetryPolicy, StreamBatchProcess, StreamRecordRef
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Invoker
from poller.errors import SourceNotFound
from poller.observability.metrics import MappingMetrics, Metrics
from poller.observability.status import MappingStatus
from poller.sources.streams import StreamSource, scheduler
from poller.sources.streams.api import AfterSequence, ReadResult, StartAt, StreamItem, not_found
from poller.sources.streams.shard import ShardWorker
from poller.state import SqliteCheckpointStore
from poller.state.base import Checkpoint
from tests.unit.stream_mappings import ARN
from tests.unit.stream_mappings import kinesis_mapping as mapping
from tests.waiting import wait_until


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def throttled(operation: str) -> ClientError:
    return client_error("ProvisionedThroughputExceededException", "Rate exceeded", operation)


def item(sequence: int, key: str = "k") -> StreamItem:
    record = {
        "kinesis": {"sequenceNumber": str(sequence), "partitionKey": key, "data": ""},
        "eventSource": "aws:kinesis",
    }
    encoded = orjson.dumps(record)
    return StreamItem(StreamRecordRef(str(sequence), time.time(), len(encoded) + 1), record, encoded, key)


# -- ShardProgress: bounded behind an unfinished record ---------------------------------------------


def test_filtered_records_behind_an_unfinished_one_are_held_in_constant_memory() -> None:
    """A poison batch holds the checkpoint; the records the filter drops behind it pile up in
    ShardProgress unless finished neighbours are kept as one run."""
    progress = ShardProgress(watermark="0")
    blocked = progress.read("1")
    for sequence in range(2, 100_002):
        progress.complete(progress.read(str(sequence)))
        assert progress.held <= 2
    assert progress.watermark == "0"  # never past the unfinished record
    assert progress.outstanding == 100_001
    assert progress.complete(blocked) == "100001"
    assert (progress.held, progress.outstanding) == (0, 0)


def test_progress_holds_at_most_twice_the_unfinished_records_and_moves_like_a_prefix() -> None:
    """Any read/complete interleaving: the watermark is the end of the finished prefix (checked
    against a plain model), and memory follows the unfinished records, not the finished ones."""
    rng = random.Random(13)
    for _ in range(200):
        progress = ShardProgress()
        finished: list[bool] = []
        unfinished: list[int] = []
        for _ in range(rng.randint(1, 300)):
            if unfinished and rng.random() < 0.5:
                ticket = unfinished.pop(rng.randrange(len(unfinished)))
                moved = progress.complete(ticket)
                finished[ticket] = True
                prefix = finished.index(False) if False in finished else len(finished)
                expected = str(prefix) if prefix else None
                assert moved in (None, expected)
                assert progress.watermark == expected
            else:
                unfinished.append(progress.read(str(len(finished) + 1)))
                finished.append(False)
            assert progress.held <= 2 * len(unfinished) + 1


# -- Retry-After is capped -------------------------------------------------------------------------


def test_a_huge_retry_after_waits_no_longer_than_the_maximum_backoff() -> None:
    """A target saying "come back in a year" must not hold the shard for a year (spec §14 item 2)."""
    policy = RetryPolicy()
    process = StreamBatchProcess((StreamRecordRef("1", 0.0, 10),), policy)
    clock = ManualClock(now=0.0, epoch=1.0)
    assert isinstance(process.next_decision(clock.wall()), Invoke)
    process.record_result(NotInvoked("throttled", "503", retry_after_seconds=365 * 86_400.0))
    assert process.next_decision(clock.wall()) == Backoff(policy.backoff.max_seconds, "throttled", (1.0, 1.0))
    assert isinstance(process.next_decision(clock.wall()), Invoke)
    process.record_result(NotInvoked("throttled", "503", retry_after_seconds=2.5))
    assert process.next_decision(clock.wall()) == Backoff(2.5, "throttled", (1.0, 1.0))  # a sane one is kept


# -- ResourceNotFound names what is missing ----------------------------------------------------------


def not_found_error(message: str, code: str = "ResourceNotFoundException") -> ClientError:
    return client_error(code, message, "GetShardIterator")


@pytest.mark.parametrize(
    ("message", "shard", "expected"),
    [
        ("Stream s under account 123456789012 not found.", None, f"Stream not found: {ARN}"),
        # A stream whose name mentions shards or consumers is still the stream.
        ("Stream shard-consumer-feed under account 1 not found.", "shardId-0", f"Stream not found: {ARN}"),
        (
            "Shard shardId-000000000007 in stream s under account 123456789012 does not exist",
            "shardId-000000000007",
            f"Shard not found: shardId-000000000007 in {ARN}",
        ),
        (
            "Could not find shard shardId-9 in stream s under account 1.",
            "shardId-9",
            "Shard not found: shardId-9",
        ),
        (
            "Consumer arn:aws:kinesis:c, account 1 not found.",
            None,
            "Consumer not found: Consumer arn:aws:kinesis:c",
        ),
        ("Requested resource not found: Shard does not exist", "shardId-3", "Shard not found: shardId-3"),
        ("Requested resource not found: Stream: arn:x not found", "shardId-3", f"Stream not found: {ARN}"),
    ],
)
def test_resource_not_found_names_the_stream_shard_or_consumer(
    message: str, shard: str | None, expected: str
) -> None:
    error = not_found(not_found_error(message), ARN, shard)
    assert isinstance(error, SourceNotFound)
    assert str(error).startswith(expected)


def test_other_errors_are_not_turned_into_not_found() -> None:
    error = not_found_error("Stream s not found", code="AccessDeniedException")
    assert not_found(error, ARN, "shardId-0") is error


# -- the helper, against doubles ---------------------------------------------------------------------


@dataclass
class Stream:
    """Open shards of records (appendable while running); `endless` shards make records on demand."""

    records: dict[str, list[StreamItem]]
    endless: dict[str, Callable[[int], StreamItem]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    kind: Literal["kinesis"] = "kinesis"
    max_read_records: int = 100
    idle_poll_seconds: float = 0.01

    async def retention_seconds(self) -> float:
        return 86_400.0

    async def list_shards(self) -> list[ShardInfo]:
        shards = [*self.records, *self.endless]
        ends = {s: self.records[s][-1].ref.sequence_number for s in self.closed}
        return [ShardInfo(s, (), ends.get(s)) for s in shards]

    async def iterator(self, shard_id: str, start: StartAt) -> str:
        return start.sequence_number if isinstance(start, AfterSequence) else "0"

    async def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
        after = int(iterator)
        if (make := self.endless.get(shard_id)) is not None:
            batch = [make(n) for n in range(after + 1, after + 1 + limit)]
        else:
            batch = [r for r in self.records[shard_id] if int(r.ref.sequence_number) > after][:limit]
        position = batch[-1].ref.sequence_number if batch else iterator
        at_end = shard_id in self.closed and position == self.records[shard_id][-1].ref.sequence_number
        return ReadResult(batch, None if at_end else position, 0)


@dataclass
class Target:
    """Succeeds, except for records whose key is in `failing`; waits for `gate` when it is shut."""

    failing: set[str] = field(default_factory=set)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "python"

    def __post_init__(self) -> None:
        self.gate.set()

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        await self.gate.wait()
        records = [r["kinesis"] for r in orjson.loads(payload)["Records"]]
        if any(r["partitionKey"] in self.failing for r in records):
            return FunctionFailed("Error", "poison")
        self.delivered += [(r["partitionKey"], r["sequenceNumber"]) for r in records]
        return Succeeded(b"null")

    async def aclose(self) -> None:
        return None


@dataclass
class FlakyStore:
    """The test's SQLite store, refusing some calls first as an unreachable table would."""

    failing_gets: dict[str, int] = field(default_factory=dict)
    failing_puts: int = 0
    failing_shard_end_puts: int = 0
    written: list[Checkpoint] = field(default_factory=list)
    inner: SqliteCheckpointStore | None = None

    @property
    def store(self) -> SqliteCheckpointStore:
        assert self.inner is not None, "given to the source by the `start` fixture"
        return self.inner

    async def get(self, mapping: str, shard_id: str) -> Checkpoint | None:
        if self.failing_gets.get(shard_id, 0) > 0:
            self.failing_gets[shard_id] -= 1
            raise throttled("GetItem")
        return await self.store.get(mapping, shard_id)

    async def all_for(self, mapping: str) -> dict[str, Checkpoint]:
        return await self.store.all_for(mapping)

    async def put(self, checkpoint: Checkpoint) -> None:
        if checkpoint.shard_end and self.failing_shard_end_puts > 0:
            self.failing_shard_end_puts -= 1
            raise throttled("UpdateItem")
        if not checkpoint.shard_end and self.failing_puts > 0:
            self.failing_puts -= 1
            raise throttled("UpdateItem")
        await self.store.put(checkpoint)
        self.written.append(checkpoint)

    async def delete_mapping(self, mapping: str) -> int:
        return await self.store.delete_mapping(mapping)

    async def aclose(self) -> None:
        return None


@dataclass
class ScriptedLeases:
    """A lease coordinator granting what `script` says, one entry per scheduling pass (the last one
    repeats); an exception entry is raised, as an unreachable lease table would."""

    script: list[set[str] | Exception]
    failover_seconds: float = 0.2
    stop_shard: Any = None
    passes: int = 0

    async def read(self) -> list[Any]:
        return []

    def finished(self) -> set[str]:
        return set()

    async def ensure_rows(self, shards: Sequence[ShardInfo], *, anchor_at: float | None) -> None:
        return None

    async def acquire(self, eligible: set[str]) -> set[str]:
        self.passes += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step & eligible

    async def renew_loop(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    async def release(self, shard: str) -> None:
        return None

    async def release_all(self) -> None:
        return None


@dataclass
class Running:
    source: StreamSource
    task: asyncio.Task[None]
    registry: CollectorRegistry
    store: SqliteCheckpointStore

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"mapping": "m", **labels}) or 0.0

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait for `predicate`; a source that died meanwhile fails the test at once, with its error."""

        def met() -> bool:
            if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
                raise AssertionError(f"the source failed: {self.task.exception()!r}")
            return predicate()

        await wait_until(met, timeout=10, what=what)


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    tasks: list[asyncio.Task[None]] = []
    stores: list[SqliteCheckpointStore] = []
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    async def starter(
        api: Stream,
        target: Target,
        *,
        store: FlakyStore | None = None,
        leases: ScriptedLeases | None = None,
        **overrides: Any,
    ) -> Running:
        config = mapping(**overrides)
        mapping_metrics: MappingMetrics = metrics.for_mapping("m")
        status = MappingStatus("m", "kinesis", ARN, "python:x.y", mapping_metrics)
        sqlite = await SqliteCheckpointStore.open(tmp_path / "state.sqlite3")
        stores.append(sqlite)
        if store is not None:
            store.inner = sqlite
        stopping = asyncio.Event()
        clock = SystemClock()
        source = StreamSource(
            config,
            api=api,
            invoker=Invoker(
                target=target,
                metrics=mapping_metrics,
                source_kind="kinesis",
                report_batch_item_failures=False,
            ),
            store=sqlite if store is None else store,
            failures=FailureSender(
                mapping_name=config.name,
                destination=None,
                function_arn="arn",
                metrics=mapping_metrics,
                clock=clock,
                stopping=stopping,
            ),
            metrics=mapping_metrics,
            status=status,
            clock=clock,
            stopping=stopping,
            refresh_seconds=0.05,
            read_backoff=lambda failures: 0.01 * failures,
            leases=leases,  # type: ignore[arg-type]
        )
        task = asyncio.create_task(source.run())
        tasks.append(task)
        return Running(source, task, registry, sqlite)

    yield starter
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for sqlite in stores:
        await sqlite.aclose()


def delivered(target: Target, key: str) -> list[int]:
    return [int(sequence) for k, sequence in target.delivered if k == key]


async def test_a_failed_checkpoint_read_delays_only_that_shard(start: Start) -> None:
    """A transient store error while starting one shard: that shard starts on a later pass, the
    others are read on, and the mapping is not restarted."""
    api = Stream(
        {"shard-0": [item(n, "a") for n in range(1, 5)], "shard-1": [item(n, "b") for n in range(1, 5)]}
    )
    target = Target()
    running = await start(api, target, store=FlakyStore(failing_gets={"shard-1": 2}))
    await running.until(lambda: delivered(target, "a") == [1, 2, 3, 4], "shard-0 delivered")
    shard_0 = running.source.running["shard-0"]
    await running.until(lambda: delivered(target, "b") == [1, 2, 3, 4], "shard-1 delivered on a later pass")
    api.records["shard-0"].append(item(5, "a"))
    await running.until(lambda: delivered(target, "a") == [1, 2, 3, 4, 5], "shard-0 still read")
    assert running.source.running["shard-0"] is shard_0  # never restarted
    assert running.metric("poller_poll_errors_total") == 2


async def test_a_failed_lease_acquire_keeps_running_shards_and_starts_the_rest_later(start: Start) -> None:
    api = Stream(
        {"shard-0": [item(n, "a") for n in range(1, 3)], "shard-1": [item(n, "b") for n in range(1, 3)]}
    )
    target = Target()
    leases = ScriptedLeases([{"shard-0"}, {"shard-0"}, throttled("UpdateItem"), {"shard-0", "shard-1"}])
    running = await start(api, target, leases=leases)
    await running.until(lambda: delivered(target, "a") == [1, 2], "shard-0 delivered")
    shard_0 = running.source.running["shard-0"]
    await running.until(lambda: delivered(target, "b") == [1, 2], "shard-1 started after the failed pass")
    api.records["shard-0"].append(item(3, "a"))
    await running.until(lambda: delivered(target, "a") == [1, 2, 3], "shard-0 still read")
    assert running.source.running["shard-0"] is shard_0
    assert running.metric("poller_poll_errors_total") == 1


async def test_filtered_records_behind_a_poison_batch_do_not_pile_up(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filter passes one record, which always fails; the reader goes on reading what the
    filter drops. The checkpoint stays before the poison record, memory stays flat."""
    workers: list[ShardWorker] = []

    class Watched(ShardWorker):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            workers.append(self)

    monkeypatch.setattr(scheduler, "ShardWorker", Watched)
    api = Stream(
        {}, endless={"shard-0": lambda n: item(n, "poison" if n == 1 else "other")}, max_read_records=1000
    )
    running = await start(api, Target(failing={"poison"}), filter_patterns=('{"partitionKey": ["poison"]}',))
    await running.until(lambda: running.metric("poller_records_filtered_total") >= 20_000, "filtered reads")
    progress = workers[0].progress
    assert progress.outstanding >= 20_000
    assert progress.held <= 3
    assert progress.watermark is None
    assert await running.store.get("m", "shard-0") is None  # at least once: the poison record is kept


@pytest.mark.parametrize("how", ["stop", "cancel", "cancel while the window is open"])
async def test_buffered_records_return_to_the_true_count_after_a_restart(start: Start, how: str) -> None:
    """Records queued in lanes when the mapping stops are dropped with them (they are read again
    from the checkpoint): the gauge must drop them too, or it creeps up at every restart."""
    windowed = how == "cancel while the window is open"
    api = Stream({"shard-0": [item(n) for n in range(1, 4 if windowed else 51)]})
    target = Target()
    target.gate.clear()
    settings: dict[str, Any] = {"batch_size": 100, "maximum_batching_window_seconds": 60} if windowed else {}
    first = await start(api, target, **settings)
    queued = 3 if windowed else 48  # the lane holds the first two in the batch being invoked
    await first.until(lambda: first.metric("poller_buffered_records") == queued, "records queued")
    if how == "stop":
        await first.source.stop()
        target.gate.set()  # the batch being invoked finishes
        await asyncio.wait_for(first.task, 10)
    else:
        first.task.cancel()
        await asyncio.gather(first.task, return_exceptions=True)
    assert first.metric("poller_buffered_records") == 0
    target.gate.set()
    second = await start(api, target)
    total = 3 if windowed else 50
    await second.until(
        lambda: {int(s) for _, s in target.delivered} == set(range(1, total + 1)), "all delivered"
    )
    await second.until(lambda: second.metric("poller_buffered_records") == 0, "nothing left buffered")


async def test_failed_checkpoint_writes_are_counted_and_written_later(start: Start) -> None:
    """A checkpoint write the store refuses is counted; the position stays in memory and the next
    commit writes it, without restarting the mapping."""
    api = Stream({"shard-0": [item(n) for n in range(1, 6)]})
    target = Target()
    store = FlakyStore(failing_puts=2)
    running = await start(api, target, store=store)
    await running.until(lambda: len(target.delivered) == 5, "records delivered")
    await running.until(
        lambda: [c.sequence_number for c in store.written][-1:] == ["5"], "checkpoint written"
    )
    assert running.metric("poller_ack_failures_total", kind="checkpoint") == 2
    assert not running.task.done()


async def test_a_failed_shard_end_write_is_retried_before_children_may_start(start: Start) -> None:
    api = Stream({"shard-0": [item(n) for n in range(1, 4)]}, closed={"shard-0"})
    target = Target()
    running = await start(api, target, store=FlakyStore(failing_shard_end_puts=2))
    await running.until(lambda: "shard-0" in running.source.status.positions, "shard read")
    await running.until(
        lambda: running.source.status.positions["shard-0"]["Finished"] is True, "shard finished"
    )
    checkpoint = await running.store.get("m", "shard-0")
    assert checkpoint is not None
    assert checkpoint.shard_end
    assert running.metric("poller_ack_failures_total", kind="checkpoint") == 2
    assert [int(s) for _, s in target.delivered] == [1, 2, 3]
