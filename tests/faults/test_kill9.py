"""kill -9 of `poller run` mid-stream, for each source kind (DESIGN §3): a crash at any point loses
nothing, and redelivers at most the batches that were in flight.

Each test writes N records, lets the service make some progress, kills it with SIGKILL (no drain,
no last checkpoint), starts a new `poller run` on the same state (the SQLite checkpoints for the
streams, the consumer group's committed offsets for Kafka, the queue itself for SQS), and checks
that every record reached the function at least once and that the duplicates fit in the batches
that could have been in flight: BatchSize × concurrency.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.faults.conftest import assert_alive, moto_receive_races
from tests.integration.conftest import (
    FunctionServer,
    StartPoller,
    put_kinesis,
    queue_depth,
    stream_mapping,
)
from tests.integration.test_kafka_source import FAST_GROUP, create_topic, kafka_mapping, produce, values
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

WORK_SECONDS = 0.05
"""The function's simulated work per batch: slow enough that a kill lands with batches in flight."""


def working(server: FunctionServer, seconds: float = WORK_SECONDS) -> None:
    async def behaviour(_: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(seconds)  # the function's work, not synchronisation
        return web.json_response(None)

    server.behaviour = behaviour


def check_at_least_once(seen: list[str], expected: set[str], bound: int) -> int:
    """Every record delivered; duplicates within `bound`. Returns the number of duplicates."""
    counts = Counter(seen)
    assert set(counts) == expected, f"missing: {sorted(expected - set(counts))[:10]}"
    duplicates = len(seen) - len(expected)
    assert 0 <= duplicates <= bound, f"{duplicates} duplicates, more than the {bound} records in flight"
    return duplicates


async def test_sqs_kill_9_loses_nothing_and_redelivers_at_most_the_batches_in_flight(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """SQS: what was received and not deleted reappears after the visibility timeout (2 s here,
    FunctionTimeout 1 s), so the new service picks it up; messages still being written while the
    service is down wait in the queue."""
    queue = make_queue(visibility=2)
    total, batch = 120, 5
    deliveries: dict[str, list[tuple[str, float]]] = defaultdict(list)

    async def behaviour(event: dict[str, Any]) -> web.StreamResponse:
        now = time.monotonic()
        for record in event["Records"]:
            deliveries[record["body"]].append((record["receiptHandle"], now))
        await asyncio.sleep(WORK_SECONDS)  # the function's work
        return web.json_response(None)

    function_server.behaviour = behaviour
    mapping = {"Name": "sqs-crash", "EventSourceArn": queue.arn, "FunctionName": function_server.url}
    mapping |= {"BatchSize": batch, "FunctionTimeout": 1}

    async def write() -> None:
        # A steady trickle keeps the queue shallow (moto slows down as a queue deepens, DESIGN §4)
        # and the poller's buffer short, so messages do not wait long enough to be extended.
        for start in range(0, total, 10):
            entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)]
            await asyncio.to_thread(sqs.send_message_batch, QueueUrl=queue.url, Entries=entries)
            await asyncio.sleep(0.15)  # the writer's pace

    writer = asyncio.create_task(write())
    poller = await start_poller([mapping])
    await wait_until(lambda: len(set(function_server.bodies())) >= 30, timeout=30, what="some progress")
    poller.kill()
    assert not writer.done(), "the kill should land mid-stream, while messages are still written"
    await start_poller([mapping])
    await writer
    expected = {f"m{i}" for i in range(total)}
    await wait_until(lambda: set(function_server.bodies()) == expected, timeout=90, what="every message")
    await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), timeout=30, what="every message deleted")
    bound = batch * function_server.max_concurrent
    races = moto_receive_races(deliveries)
    duplicates = check_at_least_once(function_server.bodies(), expected, bound + races)
    print(
        f"sqs: {duplicates} duplicates ({races} from moto's receive race), bound {bound} "
        f"(max concurrency {function_server.max_concurrent})"
    )


def kinesis_data(server: FunctionServer) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in server.records]


async def test_kinesis_kill_9_resumes_from_the_checkpoints_of_every_shard(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """Kinesis, two shards read concurrently: one batch in flight per shard, so at most
    BatchSize × shards duplicates; per-shard order holds across the crash."""
    stream = make_stream(shards=2)
    total, batch = 80, 5
    written = put_kinesis(kinesis, stream, [(f"key-{i}", f"r{i}".encode()) for i in range(total)])
    shards = {w["ShardId"] for w in written}
    assert len(shards) == 2, "the keys should spread over both shards"
    working(function_server)
    state = {"state": {"path": str(tmp_path / "state.sqlite3")}}
    mapping = stream_mapping("kinesis-crash", stream.arn, function_server.url, BatchSize=batch)
    poller = await start_poller([mapping], settings=state)
    await wait_until(lambda: len(function_server.records) >= 25, timeout=30, what="some progress")
    poller.kill()
    delivered_before = len(set(kinesis_data(function_server)))
    assert delivered_before < total, "the kill should land mid-stream"
    second = await start_poller([mapping], settings=state)
    expected = {f"r{i}" for i in range(total)}
    await wait_until(lambda: set(kinesis_data(function_server)) == expected, timeout=60, what="every record")
    duplicates = check_at_least_once(kinesis_data(function_server), expected, batch * len(shards))
    shard_of = {f"r{i}": w["ShardId"] for i, w in enumerate(written)}
    seen = kinesis_data(function_server)
    for shard in shards:
        firsts = [seen.index(d) for d in sorted(expected, key=lambda d: int(d[1:])) if shard_of[d] == shard]
        assert firsts == sorted(firsts), f"shard {shard} out of order across the crash"
    assert_alive(second)
    print(f"kinesis: {duplicates} duplicates, bound {batch * len(shards)}")


async def test_dynamodb_streams_kill_9_resumes_from_the_checkpoint(
    make_table: Any, dynamodb: Any, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """DynamoDB Streams: the same checkpoint store as Kinesis, one batch in flight per shard."""
    table = make_table("KEYS_ONLY")
    total, batch = 48, 4
    for i in range(total):
        dynamodb.put_item(TableName=table.name, Item={"id": {"S": f"i{i}"}})
    working(function_server)

    def keys() -> list[str]:
        return [str(r["dynamodb"]["Keys"]["id"]["S"]) for r in function_server.records]

    state = {"state": {"path": str(tmp_path / "state.sqlite3")}}
    mapping = stream_mapping("ddb-crash", table.stream_arn, function_server.url, BatchSize=batch)
    poller = await start_poller([mapping], settings=state)
    await wait_until(lambda: len(function_server.records) >= 16, timeout=30, what="some progress")
    poller.kill()
    assert len(set(keys())) < total, "the kill should land mid-stream"
    second = await start_poller([mapping], settings=state)
    expected = {f"i{i}" for i in range(total)}
    await wait_until(lambda: set(keys()) == expected, timeout=60, what="every record")
    positions = second.status()["mappings"][0]["Positions"]
    bound = batch * max(1, len(positions))
    duplicates = check_at_least_once(keys(), expected, bound)
    firsts = [keys().index(f"i{i}") for i in range(total)]
    assert firsts == sorted(firsts), "stream order must hold across the crash"
    print(f"dynamodb: {duplicates} duplicates, bound {bound} ({len(positions)} shard(s))")


async def test_kafka_kill_9_resumes_from_the_committed_offsets(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """Kafka: offsets are committed to the consumer group; the new member resumes from them once
    the dead member's session expires. One batch in flight per partition."""
    partitions, per_partition, batch = 3, 30, 5
    topic = await create_topic(kafka_bootstrap, partitions)
    records: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (p, None, f"{p}:{n}".encode(), []) for n in range(per_partition) for p in range(partitions)
    ]
    await produce(kafka_bootstrap, topic, records)
    working(function_server)
    name = f"kafka-crash-{uuid.uuid4().hex[:8]}"
    mapping = kafka_mapping(name, topic, kafka_bootstrap, function_server.url, BatchSize=batch)
    poller = await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(lambda: len(values(function_server)) >= 30, timeout=60, what="some progress")
    poller.kill()
    total = partitions * per_partition
    assert len(set(values(function_server))) < total, "the kill should land mid-stream"
    second = await start_poller([mapping], settings=FAST_GROUP)
    expected = {v.decode() for _, _, v, _ in records}
    await wait_until(lambda: set(values(function_server)) == expected, timeout=90, what="every record")
    duplicates = check_at_least_once(values(function_server), expected, batch * partitions)
    seen = values(function_server)
    for p in range(partitions):
        firsts = [seen.index(f"{p}:{n}") for n in range(per_partition)]
        assert firsts == sorted(firsts), f"partition {p} out of order across the crash"
    assert_alive(second)
    print(f"kafka: {duplicates} duplicates, bound {batch * partitions}")
