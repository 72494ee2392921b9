"""Several `poller run` replicas share a stream's shards through the DynamoDB lease table."""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import FunctionServer, PollerProcess, StartPoller, put_kinesis, stream_mapping
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

LEASE_SECONDS = 3.0


def held(poller: PollerProcess) -> int:
    return int(poller.metric("poller_leases_held", mapping="shared"))


def data_of(server: FunctionServer) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in server.records]


async def test_replicas_share_shards_take_over_after_crash_and_release_on_sigterm(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    stream = make_stream(shards=6)
    settings = {
        "state": {
            "backend": "dynamodb",
            "table": f"leases-{uuid.uuid4().hex[:8]}",
            "lease_seconds": LEASE_SECONDS,
        }
    }
    mapping = stream_mapping("shared", stream.arn, function_server.url, BatchSize=10, MaximumRetryAttempts=0)
    a = await start_poller([mapping], settings=settings)
    b = await start_poller([mapping], settings=settings)
    c = await start_poller([mapping], settings=settings)
    replicas = [a, b, c]
    await wait_until(lambda: [held(p) for p in replicas] == [2, 2, 2], timeout=60, what="two shards each")
    # Each replica lists its own leases and shards in /status.
    leases = [p.status()["mappings"][0]["Leases"] for p in replicas]
    assert len({lease["Owner"] for lease in leases}) == 3
    assert sorted(shard for lease in leases for shard in lease["Held"]) == sorted(
        s["ShardId"] for s in kinesis.list_shards(StreamName=stream.name)["Shards"]
    )
    await wait_until(
        lambda: sum(len(p.status()["mappings"][0]["Positions"]) for p in replicas) == 6,
        timeout=20,
        what="every shard read by its holder",
    )
    # a started first and took all six; b and c reached their share by stealing one at a time.
    assert a.metric("poller_lease_takes_total", mapping="shared", kind="take") == 6
    steals = sum(p.metric("poller_lease_takes_total", mapping="shared", kind="steal") for p in replicas)
    assert steals >= 4

    wave = 0

    async def write_wave() -> None:
        nonlocal wave
        wave += 1
        put_kinesis(kinesis, stream, [(f"key-{i}", f"w{wave}-{i}".encode()) for i in range(60)])
        expected = {f"w{wave}-{i}" for i in range(60)}
        await wait_until(lambda: expected <= set(data_of(function_server)), timeout=60, what=f"wave {wave}")

    await write_wave()

    c.kill()  # kill -9: its leases expire after LEASE_SECONDS and the others take them
    await wait_until(lambda: held(a) + held(b) == 6, timeout=30, what="c's shards taken over")
    assert {held(a), held(b)} == {3}
    await write_wave()

    assert b.terminate() == 0  # SIGTERM: b releases its leases, a takes them at once
    await wait_until(lambda: held(a) == 6, timeout=15, what="b's shards moved to a")
    await write_wave()

    d = await start_poller([mapping], settings=settings)
    await wait_until(lambda: held(d) == 3 and held(a) == 3, timeout=60, what="d takes its share")
    await write_wave()

    counts = Counter(data_of(function_server))
    assert set(counts) == {f"w{w}-{i}" for w in range(1, 5) for i in range(60)}
    # Duplicates only from batches in flight when a shard moved (at most one batch of 10 per shard).
    assert sum(n - 1 for n in counts.values()) <= 6 * 10


async def test_children_start_only_after_the_parent_finished_on_another_replica(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.2 resharding across replicas: a child's lease is taken only once its parent's lease
    says SHARD_END, whichever replica read the parent."""
    stream = make_stream(shards=1)
    put_kinesis(kinesis, stream, [(f"key-{i % 4}", f"parent-{i}".encode()) for i in range(12)])
    (parent,) = kinesis.list_shards(StreamName=stream.name)["Shards"]
    kinesis.split_shard(
        StreamName=stream.name, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(2**127)
    )
    put_kinesis(kinesis, stream, [(f"key-{i % 4}", f"child-{i}".encode()) for i in range(12)])
    settings = {
        "state": {
            "backend": "dynamodb",
            "table": f"leases-{uuid.uuid4().hex[:8]}",
            "lease_seconds": LEASE_SECONDS,
        }
    }
    mapping = stream_mapping("shared", stream.arn, function_server.url, BatchSize=3)
    first = await start_poller([mapping], settings=settings)
    second = await start_poller([mapping], settings=settings)
    await wait_until(lambda: len(function_server.records) >= 24, timeout=60, what="parent and child records")
    seen = data_of(function_server)
    assert sorted(seen) == sorted([f"parent-{i}" for i in range(12)] + [f"child-{i}" for i in range(12)])
    last_parent = max(i for i, d in enumerate(seen) if d.startswith("parent"))
    first_child = min(i for i, d in enumerate(seen) if d.startswith("child"))
    assert last_parent < first_child
    # Both children are leased (by either replica) once the parent is done; the parent is not.
    await wait_until(lambda: held(first) + held(second) == 2, timeout=30, what="children leased")
