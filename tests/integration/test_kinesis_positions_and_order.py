"""Kinesis starting positions, ordering, concurrency, resharding and crashes, through `poller run`."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import FunctionServer, StartPoller, put_kinesis, stream_mapping
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def data_of(server: FunctionServer) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in server.records]


async def test_latest_skips_what_was_written_before_the_mapping_was_enabled(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §1.4: LATEST starts just after the newest record when the mapping becomes Enabled."""
    stream = make_stream()
    put_kinesis(kinesis, stream, [("k", b"before")])
    poller = await start_poller(
        [stream_mapping("latest", stream.arn, function_server.url, StartingPosition="LATEST")]
    )
    await wait_until(lambda: poller.status()["mappings"][0]["Positions"], timeout=10, what="reading")
    put_kinesis(kinesis, stream, [("k", b"after-1"), ("k", b"after-2")])
    await wait_until(lambda: len(function_server.records) >= 2, timeout=20, what="new records")
    assert data_of(function_server) == ["after-1", "after-2"]


async def test_latest_restart_before_any_record_still_delivers_what_came_meanwhile(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """At-least-once (DESIGN §3): the LATEST position is fixed when the mapping is first enabled,
    so records written while the service was down are not skipped by a later tip."""
    stream = make_stream()
    state = {"state": {"path": str(tmp_path / "state.sqlite3")}}
    mapping = stream_mapping("latest-restart", stream.arn, function_server.url, StartingPosition="LATEST")
    poller = await start_poller([mapping], settings=state)
    await wait_until(lambda: poller.status()["mappings"][0]["Positions"], timeout=10, what="reading")
    assert poller.terminate() == 0
    put_kinesis(kinesis, stream, [("k", b"while-down")])
    await start_poller([mapping], settings=state)
    await wait_until(
        lambda: len(function_server.records) >= 1, timeout=20, what="the record written while down"
    )
    assert data_of(function_server) == ["while-down"]


async def test_at_timestamp_starts_at_the_first_record_written_at_or_after_it(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §1.3: AT_TIMESTAMP with StartingPositionTimestamp in Unix seconds."""
    stream = make_stream()
    put_kinesis(kinesis, stream, [("k", b"old-1"), ("k", b"old-2")])
    (shard,) = kinesis.list_shards(StreamName=stream.name)["Shards"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream.name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    last_old = kinesis.get_records(ShardIterator=iterator)["Records"][-1]["ApproximateArrivalTimestamp"]
    cut = last_old.timestamp() + 0.001
    # The next records must arrive after the cut: wait for the clock, not for a fixed time.
    await wait_until(lambda: time.time() > cut + 0.01, timeout=5, what="the clock to pass the cut")
    put_kinesis(kinesis, stream, [("k", b"new-1"), ("k", b"new-2")])
    mapping = stream_mapping(
        "at-ts",
        stream.arn,
        function_server.url,
        StartingPosition="AT_TIMESTAMP",
        StartingPositionTimestamp=cut,
    )
    await start_poller([mapping])
    await wait_until(lambda: len(function_server.records) >= 2, timeout=20, what="records after the cut")
    assert data_of(function_server) == ["new-1", "new-2"]


def per_shard_concurrency(server: FunctionServer, work_seconds: float) -> dict[str, int]:
    """Make `server` slow, and record the most batches of one shard it ever ran at once."""
    running: Counter[str] = Counter()
    most: dict[str, int] = defaultdict(int)

    async def behaviour(event: dict[str, Any]) -> web.StreamResponse:
        shard = event["Records"][0]["eventID"].split(":")[0]
        running[shard] += 1
        most[shard] = max(most[shard], running[shard])
        try:
            await asyncio.sleep(work_seconds)  # the function's work
        finally:
            running[shard] -= 1
        return web.json_response(None)

    server.behaviour = behaviour
    return most


async def test_shards_run_concurrently_with_one_batch_in_flight_each(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §9.2: one concurrent batch per shard by default; shards are read concurrently."""
    stream = make_stream(shards=3)
    written = put_kinesis(kinesis, stream, [(f"key-{i}", f"r{i}".encode()) for i in range(60)])
    shards = {w["ShardId"] for w in written}
    assert len(shards) >= 2, "the keys should spread over several shards"
    most = per_shard_concurrency(function_server, 0.2)
    await start_poller([stream_mapping("shards", stream.arn, function_server.url, BatchSize=4)])
    await wait_until(lambda: len(function_server.records) >= 60, timeout=60, what="all records")
    assert sorted(data_of(function_server), key=lambda d: int(d[1:])) == [f"r{i}" for i in range(60)]
    assert set(most) == shards
    assert max(most.values()) == 1
    assert function_server.max_concurrent >= 2
    for shard in shards:
        in_shard = [
            int(r["kinesis"]["sequenceNumber"])
            for r in function_server.records
            if r["eventID"].startswith(shard)
        ]
        assert in_shard == sorted(in_shard), f"shard {shard} out of order"


async def test_parallelization_factor_runs_lanes_concurrently_and_keeps_each_key_in_order(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §9.2: N concurrent batches per shard, ordering kept per partition key."""
    stream = make_stream(shards=1)
    keys = [f"device-{k}" for k in range(12)]
    records = [(key, f"{key}:{n}".encode()) for n in range(6) for key in keys]
    put_kinesis(kinesis, stream, records)
    most = per_shard_concurrency(function_server, 0.15)
    await start_poller(
        [stream_mapping("lanes", stream.arn, function_server.url, BatchSize=3, ParallelizationFactor=4)]
    )
    await wait_until(lambda: len(function_server.records) >= len(records), timeout=60, what="all records")
    seen = data_of(function_server)
    assert sorted(seen) == sorted(d.decode() for _, d in records)
    for key in keys:
        numbers = [int(d.split(":")[1]) for d in seen if d.split(":")[0] == key]
        assert numbers == list(range(6)), f"{key} out of order: {numbers}"
    (shard_most,) = most.values()
    assert 2 <= shard_most <= 4


async def test_two_mappings_on_one_stream_are_independent(
    make_stream: Any,
    kinesis: Any,
    function_server: FunctionServer,
    other_function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    """Checkpoints are per mapping: one mapping blocked on a failing function does not hold the other."""

    async def always_fail(_: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"errorMessage": "down"}, status=500)

    function_server.behaviour = always_fail
    stream = make_stream()
    put_kinesis(kinesis, stream, [("k", f"r{i}".encode()) for i in range(5)])
    poller = await start_poller(
        [
            stream_mapping("blocked", stream.arn, function_server.url),
            stream_mapping("flowing", stream.arn, other_function_server.url, BatchSize=2),
        ]
    )
    await wait_until(lambda: len(other_function_server.records) >= 5, timeout=20, what="the free mapping")
    assert data_of(other_function_server) == [f"r{i}" for i in range(5)]
    await wait_until(lambda: len(function_server.events) >= 1, timeout=20, what="the blocked mapping tried")
    positions = {m["Name"]: m["Positions"] for m in poller.status()["mappings"]}
    (blocked,) = positions["blocked"].values()
    assert blocked["SequenceNumber"] is None
    assert all(e["Records"][0]["kinesis"]["partitionKey"] == "k" for e in function_server.events)


async def test_kill_9_mid_stream_loses_nothing_and_redelivers_at_most_the_batch_in_flight(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """DESIGN §3: a crash at any point loses nothing; it may redeliver the batches in flight."""
    stream = make_stream()
    total, batch = 60, 5
    put_kinesis(kinesis, stream, [("k", f"r{i}".encode()) for i in range(total)])
    per_shard_concurrency(function_server, 0.05)
    state = {"state": {"path": str(tmp_path / "state.sqlite3")}}
    mapping = stream_mapping("crash", stream.arn, function_server.url, BatchSize=batch)
    poller = await start_poller([mapping], settings=state)
    await wait_until(lambda: len(function_server.records) >= 20, timeout=30, what="some progress")
    poller.kill()
    await start_poller([mapping], settings=state)
    await wait_until(lambda: set(data_of(function_server)) == {f"r{i}" for i in range(total)}, timeout=60)
    seen = data_of(function_server)
    duplicates = len(seen) - total
    assert 0 <= duplicates <= batch, f"{duplicates} duplicates for one batch in flight"
    # Redelivery restarts at the checkpoint: the stream order holds across the crash.
    firsts = [seen.index(f"r{i}") for i in range(total)]
    assert firsts == sorted(firsts)


async def test_a_split_parent_is_read_to_its_end_before_its_children(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.2 resharding: parent shards before child shards, so each key stays in order."""
    stream = make_stream(shards=1)
    put_kinesis(kinesis, stream, [(f"key-{i % 4}", f"parent-{i}".encode()) for i in range(8)])
    (parent,) = kinesis.list_shards(StreamName=stream.name)["Shards"]
    kinesis.split_shard(
        StreamName=stream.name, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(2**127)
    )
    put_kinesis(kinesis, stream, [(f"key-{i % 4}", f"child-{i}".encode()) for i in range(8)])
    poller = await start_poller([stream_mapping("reshard", stream.arn, function_server.url, BatchSize=3)])
    await wait_until(lambda: len(function_server.records) >= 16, timeout=60, what="parent and child records")
    seen = data_of(function_server)
    assert sorted(seen) == sorted([f"parent-{i}" for i in range(8)] + [f"child-{i}" for i in range(8)])
    last_parent = max(i for i, d in enumerate(seen) if d.startswith("parent"))
    first_child = min(i for i, d in enumerate(seen) if d.startswith("child"))
    assert last_parent < first_child
    await wait_until(
        lambda: poller.status()["mappings"][0]["Positions"][parent["ShardId"]]["Finished"] is True,
        timeout=10,
        what="the parent marked finished",
    )


async def test_reading_pauses_while_the_shard_queue_is_full(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """Bounded memory (DESIGN §3): a slow function pauses reading instead of buffering the shard."""
    stream = make_stream()
    total = 400
    put_kinesis(kinesis, stream, [("k", f"r{i}".encode()) for i in range(total)])
    per_shard_concurrency(function_server, 0.1)
    poller = await start_poller([stream_mapping("slow", stream.arn, function_server.url, BatchSize=10)])
    await wait_until(lambda: len(function_server.records) >= 50, timeout=30, what="a few batches")
    polled = poller.metric("poller_records_polled_total", mapping="slow")
    invoked = len(function_server.records)
    buffered = poller.metric("poller_buffered_records", mapping="slow")
    # The lane holds max(2 x BatchSize, 100) records; the reader waits for room beyond that.
    assert buffered <= 100
    assert polled <= invoked + 100 + 10, f"read {polled} with {invoked} invoked"
    assert polled < total
