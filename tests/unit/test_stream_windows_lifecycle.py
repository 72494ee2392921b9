"""Tumbling windows through the stream source (spec §8, §5.2, §2) at their edges: the 6 MB budget
against an oversized state, a lease moving mid-window, the close without new records on a
ManualClock, DynamoDB's caught-up judgement, and a record of an earlier window. Same in-memory
stream double and fixture as test_stream_windows.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from poller.core.batching import MAX_PAYLOAD_BYTES
from poller.core.clock import ManualClock
from poller.core.outcome import InvokeOutcome, Succeeded
from poller.core.stream_retry_types import StreamRecordRef
from poller.sources.streams import scheduler as scheduler_module
from poller.sources.streams.api import AfterSequence, ReadResult, ReadThrottled, StartAt, StreamItem
from poller.sources.streams.shard import ShardWorker
from tests.unit.test_stream_reader import StreamDouble, item
from tests.unit.test_stream_windows import (
    BASE,
    WINDOW,
    WindowTarget,
    _eventually,
    _iso,
    counting,
    run_windows,
    sequences,
)
from tests.waiting import wait_until

__all__ = ["run_windows"]  # the fixture, shared with test_stream_windows

OPEN_GAUGE = "poller_tumbling_windows_open"


def big_item(sequence: int, arrival: float, size: int) -> StreamItem:
    record = {"kinesis": {"sequenceNumber": str(sequence), "data": "x" * size}, "eventSource": "aws:kinesis"}
    encoded = orjson.dumps(record)
    return StreamItem(StreamRecordRef(str(sequence), arrival, len(encoded) + 1), record, encoded, "k")


async def test_a_5_mb_state_is_never_sent_so_every_event_stays_within_6_mb(
    run_windows: Callable[..., Any],
) -> None:
    """spec §8 (state max 1 MB; exceeding it terminates the window early), §2 (6 MB payload): a
    batch is cut leaving 1 MB for the state. A 5 MB state returned with a partial response is not
    carried into the remainder's retry nor into the final invocation: both get the last state within
    the limit, and every event stays within 6 MB."""
    mb = 1024 * 1024
    five_mb = orjson.dumps({"state": {"big": "x" * (5 * mb)}, "batchItemFailures": [{"itemIdentifier": "2"}]})

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        if sequences(event) == [1, 2, 3]:
            return Succeeded(five_mb)
        return counting(event)

    sizes: list[int] = []

    class Sizing(WindowTarget):
        async def invoke(self, payload: bytes) -> InvokeOutcome:
            sizes.append(len(payload))
            return await super().invoke(payload)

    records = [big_item(n, BASE + n, 1_600_000) for n in (1, 2, 3)]
    api = StreamDouble(records, max_read_records=3)
    running = await run_windows(api, Sizing(reply), report_batch_item_failures=True, batch_size=3)
    await wait_until(lambda: len(running.target.finals()) >= 1, timeout=10, what="the final invocation")
    events = running.target.events
    assert [sequences(e) for e in events] == [[1, 2, 3], [2, 3], []]
    assert [e["state"] for e in events] == [{}, {}, {"count": 2}]
    assert events[-1]["isWindowTerminatedEarly"] is True
    assert max(sizes) <= MAX_PAYLOAD_BYTES
    assert await _eventually(running.checkpoint, "3")


async def test_a_lease_moving_mid_window_abandons_it_and_the_next_worker_starts_it_with_empty_state(
    run_windows: Callable[..., Any],
) -> None:
    """spec §8 (state per shard; records may be reprocessed, at least once): the scheduler cancels a
    shard's worker when its lease moves. The open window is abandoned: the checkpoint stays before
    it, the open-window gauge goes back to 0, and the next worker reads the window again from its
    first record with state {}."""
    gate = asyncio.Event()

    class Gated(StreamDouble):
        async def iterator(self, shard_id: str, start: StartAt) -> str:
            if self.iterators:  # the next worker waits until the test has looked
                await gate.wait()
            return await super().iterator(shard_id, start)

    now = time.time()  # records 2 and 3: a window that is still open
    api = Gated([item(1, BASE + 1), item(2, now), item(3, now)])
    running = await run_windows(api, WindowTarget())
    await wait_until(lambda: [2, 3] in [sequences(e) for e in running.target.events], timeout=10)
    await wait_until(lambda: running.metric(OPEN_GAUGE) == 1, timeout=5, what="the window open")
    assert await _eventually(running.checkpoint, "1")  # the earlier window closed: stored
    worker = running.source.running["shard-0"]
    worker.cancel()  # what ShardScheduler._stop_shard does on a lost lease
    await asyncio.wait({worker})
    assert await running.checkpoint() == "1"
    assert running.metric(OPEN_GAUGE) == 0
    assert "shard-0" not in running.status.positions
    gate.set()
    await wait_until(
        lambda: [sequences(e) for e in running.target.events].count([2, 3]) == 2, timeout=10, what="re-read"
    )
    again = [e for e in running.target.events if sequences(e) == [2, 3]][1]
    assert again["state"] == {}
    assert api.iterators[-1] == AfterSequence("1")
    await wait_until(lambda: running.status.positions.get("shard-0", {}).get("TumblingWindow") is not None)
    assert running.metric(OPEN_GAUGE) == 1
    assert running.target.finals()[-1]["window"]["start"] == _iso(BASE)  # the open one never closed


@pytest.mark.parametrize("reads", ["empty", "failing"])
async def test_a_window_without_new_records_closes_after_the_idle_time_on_the_clock(
    run_windows: Callable[..., Any], reads: str
) -> None:
    """spec §8: "if no new records arrive, Lambda waits up to 2 minutes before closing the window";
    the wait comes from the stream context (30 s here, 120 s by default). Reads after the window's
    records find nothing while the stream says it is behind, or fail: only the idle time closes it,
    measured on the ManualClock from the last record read."""
    clock = ManualClock(now=0.0, epoch=BASE + 100)  # the window [BASE, BASE+60) has ended
    final_at: list[float] = []

    class Quiet(StreamDouble):
        async def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
            result = await super().read(shard_id, iterator, limit)
            if reads == "failing" and not result.items:
                raise ReadThrottled("ProvisionedThroughputExceededException")
            return result

    class Clocked(WindowTarget):
        async def invoke(self, payload: bytes) -> InvokeOutcome:
            final_at.extend([clock.wall()] if orjson.loads(payload)["isFinalInvokeForWindow"] else [])
            return await super().invoke(payload)

    api = Quiet([item(1, BASE + 1), item(2, BASE + 2)], behind_ms=5_000)  # never caught up
    running = await run_windows(api, Clocked(), clock=clock, window_idle_close_seconds=30)
    await wait_until(lambda: len(running.target.events) >= 1, timeout=10, what="the window's batch")
    clock.advance(29)
    seen = api.reads
    await wait_until(lambda: api.reads >= seen + (40 if reads == "empty" else 8), timeout=10)
    assert running.target.finals() == []
    clock.advance(1)
    await wait_until(lambda: len(running.target.finals()) == 1, timeout=10, what="the idle close")
    assert final_at == [BASE + 130]  # the last record was read at BASE+100
    assert running.target.finals()[0]["state"] == {"count": 2}
    assert await _eventually(running.checkpoint, "2")


async def test_dynamodb_is_caught_up_only_after_two_empty_reads_in_a_row(
    run_windows: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """spec §8, §5.2: DynamoDB Streams says nothing of how far behind a read is, and one empty page
    can come while catching up from TRIM_HORIZON; a window whose end has passed must not close on it
    (its later records would start over). Only two empty reads in a row count as caught up."""
    workers: list[ShardWorker] = []

    class Recorded(ShardWorker):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            workers.append(self)

    monkeypatch.setattr(scheduler_module, "ShardWorker", Recorded)
    gate = asyncio.Event()

    class DynamoDouble(StreamDouble):
        """Read 0: records 1-2; read 1: an empty page mid-stream; read 2: record 3 (held until the
        test has looked); then empty pages. No behind figure, as DynamoDB Streams."""

        async def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
            self.reads += 1
            if self.reads == 2:
                return ReadResult([], iterator, None)
            if self.reads == 3:
                await gate.wait()
            after = int(iterator)
            batch = [r for r in self.records if int(r.ref.sequence_number) > after][:limit]
            return ReadResult(batch, batch[-1].ref.sequence_number if batch else iterator, None)

    api = DynamoDouble([item(1, BASE + 1), item(2, BASE + 2), item(3, BASE + 3)], max_read_records=2)
    running = await run_windows(api, WindowTarget())
    await wait_until(lambda: api.reads >= 3, timeout=10, what="the read after the empty page")
    [worker] = workers
    assert worker.caught_up_at is None
    gate.set()
    await wait_until(lambda: worker.caught_up_at is not None, timeout=10, what="two empty reads")
    await wait_until(lambda: len(running.target.finals()) == 1, timeout=10, what="the final invocation")
    assert [sequences(e) for e in running.target.events] == [[1, 2], [3], []]
    assert running.target.finals()[0]["state"] == {"count": 3}


async def test_a_record_of_an_earlier_window_closes_the_open_one_first_and_starts_fresh(
    run_windows: Callable[..., Any],
) -> None:
    """spec §8 (every record belongs to exactly one window; state never mixed): arrival stamps are
    approximate, so a shard can hold a record of an earlier window after a later one's. The open
    window gets its final invocation first (logged as `earlier_record`), then the earlier window's
    records are invoked from state {}."""
    api = StreamDouble([item(1, BASE + WINDOW + 1), item(2, BASE + 1), item(3, BASE + 2)])
    with capture_logs() as logs:
        running = await run_windows(api, WindowTarget())
        await wait_until(lambda: len(running.target.finals()) == 2, timeout=10, what="two final invocations")
        assert await _eventually(running.checkpoint, "3")
    events = running.target.events
    assert [(e["window"]["start"], sequences(e), e["state"]) for e in events] == [
        (_iso(BASE + WINDOW), [1], {}),
        (_iso(BASE + WINDOW), [], {"count": 1}),
        (_iso(BASE), [2, 3], {}),
        (_iso(BASE), [], {"count": 2}),
    ]
    closed = [entry for entry in logs if entry["event"] == "window_closed"]
    assert [(c["window_start"], c["reason"]) for c in closed] == [
        (_iso(BASE + WINDOW), "earlier_record"),
        (_iso(BASE), "caught_up"),
    ]
