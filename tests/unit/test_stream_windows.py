"""Tumbling windows through the shared stream source (spec §8, §4.1, §5.2), against an in-memory
stream double that speaks the `StreamApi` protocol (as test_stream_reader.py), with a real SQLite
checkpoint store, metrics registry, invoker and driver. Arrival times are set per record, so windows
are exact; records that arrived minutes ago belong to windows that have ended, which close as soon
as a read finds the shard caught up."""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from poller.core.clock import Clock, SystemClock
from poller.core.outcome import FunctionFailed, InvokeOutcome, Succeeded
from poller.core.shard_lineage import ShardInfo
from poller.core.tumbling_window import IDLE_CLOSE_SECONDS
from poller.observability.metrics import Metrics
from poller.observability.status import MappingStatus
from poller.sources.streams import StreamSource
from poller.state import SqliteCheckpointStore
from tests.unit.stream_mappings import ARN, stream_source
from tests.unit.stream_mappings import kinesis_mapping as mapping
from tests.unit.test_stream_reader import StreamDouble, item
from tests.waiting import wait_for, wait_until

WINDOW = 60
# Two minutes ago, aligned: windows [BASE, BASE+60) and [BASE+60, BASE+120) have both ended.
BASE = (int(time.time()) // WINDOW - 3) * WINDOW

Reply = Callable[[dict[str, Any]], InvokeOutcome]


def counting(event: dict[str, Any]) -> InvokeOutcome:
    """The README's aggregation: a count per window, returned as state."""
    state = dict(event["state"])
    state["count"] = state.get("count", 0) + len(event["Records"])
    return Succeeded(orjson.dumps({"state": state}))


@dataclass
class WindowTarget:
    """Records every event it is invoked with, and whether the checkpoint was stored at that time."""

    reply: Reply = counting
    events: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "python"

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        event = orjson.loads(payload)
        self.events.append(event)
        return self.reply(event)

    async def aclose(self) -> None:
        return None

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["isFinalInvokeForWindow"]]


@dataclass
class Running:
    source: StreamSource
    target: WindowTarget
    registry: CollectorRegistry
    status: MappingStatus
    store: SqliteCheckpointStore
    stopping: asyncio.Event
    task: asyncio.Task[None]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"mapping": "m", **labels}) or 0.0

    async def checkpoint(self) -> str | None:
        stored = await self.store.get("m", "shard-0")
        return None if stored is None else stored.sequence_number


@pytest.fixture
async def run_windows(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runs: list[Running] = []

    async def start(
        api: StreamDouble,
        target: WindowTarget,
        destination: Any = None,
        *,
        clock: Clock | None = None,
        window_idle_close_seconds: float = IDLE_CLOSE_SECONDS,
        **settings: Any,
    ) -> Running:
        registry = CollectorRegistry()
        metrics = Metrics(registry).for_mapping("m")
        status = MappingStatus("m", "kinesis", ARN, "python:x.y", metrics)
        store = await SqliteCheckpointStore.open(tmp_path / "state.sqlite3")
        stopping = asyncio.Event()
        clock = clock or SystemClock()
        resolved = mapping(**{"tumbling_window_seconds": WINDOW, "batch_size": 10, **settings})
        source = stream_source(
            resolved,
            api=api,
            target=target,
            store=store,
            metrics=metrics,
            status=status,
            clock=clock,
            stopping=stopping,
            destination=destination,
            window_idle_close_seconds=window_idle_close_seconds,
        )
        running = Running(
            source, target, registry, status, store, stopping, asyncio.create_task(source.run())
        )
        runs.append(running)
        return running

    yield start
    for running in runs:
        running.stopping.set()
        running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)
        await running.store.aclose()


def sequences(event: dict[str, Any]) -> list[int]:
    return [int(r["kinesis"]["sequenceNumber"]) for r in event["Records"]]


async def test_state_carries_within_a_window_and_each_window_ends_with_a_final_invoke(
    run_windows: Callable[..., Any],
) -> None:
    """spec §8: batches never span two windows; the first invocation of a window gets `{}`, later
    ones the state the function returned; the final invocation (no records) carries the last state
    with isFinalInvokeForWindow; the next window starts with fresh state."""
    records = [item(n, BASE + n) for n in range(1, 13)] + [item(n, BASE + WINDOW + n) for n in range(13, 18)]
    api = StreamDouble(records, max_read_records=5)  # reads of 5: windows are invoked in several batches
    running = await run_windows(api, WindowTarget(), batch_size=4)
    await wait_until(lambda: len(running.target.finals()) >= 2, timeout=10, what="two final invocations")
    events = running.target.events
    first_window = [e for e in events if e["window"]["start"] == _iso(BASE)]
    second_window = [e for e in events if e["window"]["start"] == _iso(BASE + WINDOW)]
    assert [sequences(e) for e in first_window] == [[1, 2, 3, 4], [5], [6, 7, 8, 9], [10], [11, 12], []]
    assert [e["state"] for e in first_window] == [
        {},
        {"count": 4},
        {"count": 5},
        {"count": 9},
        {"count": 10},
        {"count": 12},
    ]
    assert [e["isFinalInvokeForWindow"] for e in first_window] == [False] * 5 + [True]
    assert second_window[0]["state"] == {}
    assert second_window[-1]["isFinalInvokeForWindow"] is True
    assert second_window[-1]["state"] == {"count": 5}
    assert sum(len(sequences(e)) for e in second_window) == 5
    for event in events:
        assert event["shardId"] == "shard-0"
        assert event["eventSourceARN"] == ARN
        assert event["isWindowTerminatedEarly"] is False
        assert event["window"]["end"] == _iso(_epoch(event) + WINDOW)
    assert await _eventually(running.checkpoint, "17")


async def test_the_checkpoint_stays_before_the_open_window_until_its_final_invoke(
    run_windows: Callable[..., Any],
) -> None:
    """spec §8: "after it succeeds the checkpoint advances"; until then a restart would read the
    window again from its first record. Here the final invocation fails until the test allows it."""
    allow_final = asyncio.Event()

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        if event["isFinalInvokeForWindow"] and not allow_final.is_set():
            return FunctionFailed("Error", "not yet")
        return counting(event)

    api = StreamDouble([item(n, BASE + n) for n in range(1, 4)])
    running = await run_windows(api, WindowTarget(reply))
    await wait_until(lambda: len(running.target.finals()) >= 2, timeout=10, what="a retried final invocation")
    assert await running.checkpoint() is None
    assert running.status.positions["shard-0"]["SequenceNumber"] is None
    assert running.metric("poller_tumbling_windows_open") == 1
    window = running.status.positions["shard-0"]["TumblingWindow"]
    assert (window["Start"], window["Records"], window["Invocations"]) == (_iso(BASE), 3, 1)
    assert window["StateBytes"] == len(b'{"count":3}')
    allow_final.set()
    assert await _eventually(running.checkpoint, "3")
    await wait_until(lambda: running.metric("poller_tumbling_windows_open") == 0, timeout=5)
    assert running.status.positions["shard-0"]["TumblingWindow"] is None
    assert all(e["state"] == {"count": 3} for e in running.target.finals())


async def test_a_response_without_state_is_a_failure_retried_per_the_policy(
    run_windows: Callable[..., Any],
) -> None:
    """spec §4.1, §8: a response without `state` is a failed invocation: retried with the same
    records and state, then (MaximumRetryAttempts 1, no destination) dropped, and the window goes on."""

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        if 2 in sequences(event):
            return Succeeded(b'{"batchItemFailures": []}')
        return counting(event)

    api = StreamDouble([item(1, BASE + 1), item(2, BASE + 2), item(3, BASE + 3)], max_read_records=1)
    running = await run_windows(api, WindowTarget(reply), maximum_retry_attempts=1, batch_size=1)
    await wait_until(lambda: len(running.target.finals()) >= 1, timeout=10, what="the final invocation")
    events = running.target.events
    assert [sequences(e) for e in events] == [[1], [2], [2], [3], []]
    assert [e["state"] for e in events] == [{}, {"count": 1}, {"count": 1}, {"count": 1}, {"count": 2}]
    assert running.metric("poller_records_dropped_total", reason="retry_attempts_exhausted") == 1
    assert await _eventually(running.checkpoint, "3")


async def test_state_over_1_mb_terminates_the_window_early(run_windows: Callable[..., Any]) -> None:
    """spec §8: state max 1 MB per shard; exceeding it terminates the window early: a final
    invocation with isWindowTerminatedEarly carrying the last state within the limit (the oversized
    one is never sent), and the window's later records start with fresh state."""

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        if 1 in sequences(event):
            return Succeeded(orjson.dumps({"state": {"big": "x" * (1024 * 1024)}}))
        return counting(event)

    api = StreamDouble([item(1, BASE + 1), item(2, BASE + 2)], max_read_records=1)
    running = await run_windows(api, WindowTarget(reply), batch_size=1)
    await wait_until(lambda: len(running.target.finals()) >= 2, timeout=10, what="two final invocations")
    first_final, second_final = running.target.finals()
    assert first_final["isWindowTerminatedEarly"] is True
    assert first_final["Records"] == []
    assert first_final["state"] == {}
    after = [e for e in running.target.events if sequences(e) == [2]]
    assert after[0]["state"] == {}
    assert after[0]["window"] == first_final["window"]
    assert second_final["isWindowTerminatedEarly"] is False
    assert second_final["state"] == {"count": 1}


async def test_a_closed_shard_closes_its_window_at_its_end(run_windows: Callable[..., Any]) -> None:
    """spec §8, §5.2: no resharding support: when a shard ends, its window closes (final invoke)."""

    class ClosedShard(StreamDouble):
        async def list_shards(self) -> list[ShardInfo]:
            return [ShardInfo("shard-0", ending_sequence_number="2")]

        async def read(self, shard_id: str, iterator: str, limit: int) -> Any:
            result = await super().read(shard_id, iterator, limit)
            done = result.items and result.items[-1].ref.sequence_number == "2"
            return type(result)(result.items, None if done else result.next_iterator, result.behind_ms)

    # Records of a window that has not ended: only the shard's end can close it.
    now = time.time()
    api = ClosedShard([item(1, now), item(2, now)])
    running = await run_windows(api, WindowTarget())
    await wait_until(lambda: len(running.target.finals()) >= 1, timeout=10, what="the final invocation")
    assert running.target.finals()[0]["state"] == {"count": 2}
    stored = await _eventually_finished(running)
    assert stored


async def test_a_restart_mid_window_starts_the_window_again_with_empty_state(
    run_windows: Callable[..., Any],
) -> None:
    """spec §8 (at least once): state is held in memory; a worker that stops mid-window leaves the
    checkpoint before the window, and the next run reads it again from its first record, state {}."""
    now = time.time()
    records = [item(1, now), item(2, now)]  # a window that is still open
    first = await run_windows(StreamDouble(records), WindowTarget())
    await wait_until(lambda: len(first.target.events) >= 1, timeout=10, what="the first batch")
    first.stopping.set()
    await asyncio.wait_for(first.task, timeout=10)
    assert await first.checkpoint() is None
    assert first.target.finals() == []
    await first.store.aclose()
    second = await run_windows(StreamDouble(records), WindowTarget())
    await wait_until(lambda: len(second.target.events) >= 1, timeout=10, what="the window read again")
    assert sequences(second.target.events[0]) == [1, 2]
    assert second.target.events[0]["state"] == {}


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _epoch(event: dict[str, Any]) -> int:
    return calendar.timegm(time.strptime(event["window"]["start"], "%Y-%m-%dT%H:%M:%SZ"))


async def _eventually(read: Callable[[], Any], expected: str) -> bool:
    await wait_for(read, lambda seen: seen == expected, timeout=10, what=f"checkpoint {expected}")
    return True


async def _eventually_finished(running: Running) -> bool:
    stored = await wait_for(
        lambda: running.store.get("m", "shard-0"),
        lambda seen: seen is not None and seen.shard_end,
        timeout=10,
        what="the shard marked finished",
    )
    return stored.sequence_number == "2"


async def test_a_final_invocation_that_keeps_failing_gives_the_window_up(
    run_windows: Callable[..., Any],
) -> None:
    """spec §8, §5.2: the final invocation follows MaximumRetryAttempts; exhausted, the window's
    records are given up (here without a destination: dropped, counted as the window's 3 records)
    and the checkpoint moves past them."""

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        return FunctionFailed("Error", "final") if event["isFinalInvokeForWindow"] else counting(event)

    api = StreamDouble([item(n, BASE + n) for n in range(1, 4)])
    running = await run_windows(api, WindowTarget(reply), maximum_retry_attempts=1)
    assert await _eventually(running.checkpoint, "3")
    assert len(running.target.finals()) == 2
    assert running.metric("poller_records_dropped_total", reason="retry_attempts_exhausted") == 3


async def test_bisect_halves_carry_the_window_state(run_windows: Callable[..., Any]) -> None:
    """spec §5.2, §8: BisectBatchOnFunctionError splits a failing window batch; each half is a
    normal invocation of the window with the state so far."""

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        if 4 in sequences(event) and len(event["Records"]) > 1:
            return FunctionFailed("Error", "poison in the batch")
        return counting(event)

    api = StreamDouble([item(n, BASE + n) for n in range(1, 5)], max_read_records=4)
    running = await run_windows(api, WindowTarget(reply), bisect_batch_on_function_error=True, batch_size=4)
    await wait_until(lambda: len(running.target.finals()) >= 1, timeout=10, what="the final invocation")
    events = running.target.events
    assert [sequences(e) for e in events] == [[1, 2, 3, 4], [1, 2], [3, 4], [3], [4], []]
    assert [e["state"] for e in events] == [{}, {}, {"count": 2}, {"count": 2}, {"count": 3}, {"count": 4}]


async def test_a_partial_response_keeps_its_state_and_retries_from_the_lowest_failure(
    run_windows: Callable[..., Any],
) -> None:
    """spec §4.2, §8: `{"state": ..., "batchItemFailures": [...]}` with ReportBatchItemFailures: the
    records from the lowest failed one are retried, with the state that response returned."""
    failed: set[int] = set()

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        seen = sequences(event)
        if 3 in seen and 3 not in failed:
            failed.add(3)
            state = {"count": event["state"].get("count", 0) + seen.index(3)}
            return Succeeded(orjson.dumps({"state": state, "batchItemFailures": [{"itemIdentifier": "3"}]}))
        return counting(event)

    api = StreamDouble([item(n, BASE + n) for n in range(1, 5)], max_read_records=4)
    running = await run_windows(api, WindowTarget(reply), report_batch_item_failures=True, batch_size=4)
    await wait_until(lambda: len(running.target.finals()) >= 1, timeout=10, what="the final invocation")
    events = running.target.events
    assert [sequences(e) for e in events] == [[1, 2, 3, 4], [3, 4], []]
    assert [e["state"] for e in events] == [{}, {"count": 2}, {"count": 4}]
    assert await _eventually(running.checkpoint, "4")


async def test_records_past_their_maximum_age_are_discarded_and_the_window_still_closes(
    run_windows: Callable[..., Any],
) -> None:
    """spec §5.2, §8: MaximumRecordAgeInSeconds applies to a window's batches: expired records are
    not invoked (RecordAgeExceeded), the fresh ones are, and the window closes as usual."""
    now = time.time()
    old = [item(1, now - 400), item(2, now - 400)]
    api = StreamDouble([*old, item(3, now - WINDOW - 5)])
    running = await run_windows(api, WindowTarget(), maximum_record_age_seconds=300)
    await wait_until(lambda: len(running.target.finals()) >= 2, timeout=10, what="two final invocations")
    invoked = [n for e in running.target.events for n in sequences(e)]
    assert invoked == [3]
    assert running.metric("poller_records_dropped_total", reason="record_age_exceeded") == 2
    assert await _eventually(running.checkpoint, "3")
