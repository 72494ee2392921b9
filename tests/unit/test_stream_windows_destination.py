"""A tumbling window given up at its final invocation, as the on-failure destination receives it
(spec §8, §5.2, §6.2): one KinesisBatchInfo record from the window's first to its last record, with
the window's record count, the exhaustion condition and the last failed run's response."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from poller.core.outcome import FunctionFailed, InvokeOutcome
from poller.destinations.file import FileDestination
from tests.unit.test_stream_reader import StreamDouble, item
from tests.unit.test_stream_windows import BASE, WindowTarget, _eventually, counting, run_windows
from tests.waiting import wait_until

__all__ = ["run_windows"]  # the fixture, shared with test_stream_windows


async def test_a_window_given_up_lands_as_one_record_spanning_the_window(
    run_windows: Callable[..., Any], tmp_path: Path
) -> None:
    """spec §8, §6.2: after MaximumRetryAttempts failed final invocations, the window's records are
    described to the destination (first to last, batchSize = the window's count), then checkpointed."""

    def reply(event: dict[str, Any]) -> InvokeOutcome:
        if event["isFinalInvokeForWindow"]:
            return FunctionFailed("Error", "cannot write the aggregate")
        return counting(event)

    path = tmp_path / "failures.jsonl"
    api = StreamDouble([item(n, BASE + n) for n in range(1, 5)])
    running = await run_windows(api, WindowTarget(reply), FileDestination(path), maximum_retry_attempts=2)
    assert await _eventually(running.checkpoint, "4")
    await wait_until(lambda: path.exists() and path.read_text().strip() != "", timeout=5, what="the record")
    [line] = path.read_text().splitlines()
    record = orjson.loads(line)
    info = record["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "shard-0",
        "1",
        "4",
        4,
    )
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert len(running.target.finals()) == 3
    assert running.metric("poller_records_sent_to_destination_total") == 4
