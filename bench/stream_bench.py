"""Kinesis and DynamoDB Streams on moto: throughput (`kinesis`, `dynamodb`).

The stream is filled before either side reads (one writer: moto's Kinesis loses records under
concurrent PutRecords, DESIGN §4), so neither side is ever idle, then read from TRIM_HORIZON twice:
by the raw client — one plain GetRecords loop per shard, at the API's largest Limit (10,000 for
Kinesis, 1,000 for DynamoDB Streams), as fast as it can — and by the engine (BatchSize 100, an
in-process no-op handler). Both clocks start once the shards are listed and stop when the last
record is in hand (raw) or invoked (engine).

The engine must pace an idle shard (spec §9.2: one read a second on Kinesis, four on DynamoDB) and
does so when a read comes back empty or caught up; `max_gap_s` (the longest pause between two
invocations) shows whether that pacing cut in while records were still waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench import handlers
from bench.common import (
    PROBE,
    Measured,
    Result,
    best_of,
    cpu_seconds,
    running_engine,
    wait_until,
)
from bench.kafka_bench import throughput_result
from bench.servers import REGION, moto

DATA_BYTES = 100
KINESIS_SHARDS = 2
BATCH_SIZE = 100
ROUNDS = 2
GOAL, AIM = 0.8, 0.9


def client(service: str, endpoint: str) -> Any:
    config = AioConfig(
        retries={"mode": "standard", "max_attempts": 2}, read_timeout=60, max_pool_connections=32
    )
    return get_session().create_client(service, region_name=REGION, endpoint_url=endpoint, config=config)


def data(index: int) -> bytes:
    return f"{index:012d} ".encode().ljust(DATA_BYTES, b"x")


def max_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def engine_run(
    workdir: Path, endpoint: str, mapping: dict[str, Any], total: int
) -> tuple[Measured, float]:
    handlers.TALLY.reset()
    PROBE.forget("mapping_started")
    async with running_engine(workdir, [mapping], endpoint=endpoint):
        await wait_until(lambda: handlers.TALLY.records >= total, timeout=600, what="every record invoked")
        cpu = cpu_seconds()
    assert handlers.TALLY.last is not None
    start = "mapping_started"
    wall = handlers.TALLY.last - PROBE.first[start]
    return Measured.of(total, wall, cpu - PROBE.first_cpu[start], max_gap(handlers.TALLY.times))


async def compare(
    workdir: Path,
    endpoint: str,
    mapping: dict[str, Any],
    total: int,
    rounds: int,
    raw: Callable[[], Awaitable[Measured]],
) -> tuple[Measured, Measured]:
    """Best of `rounds` alternating raw and engine reads of the whole stream (each engine round with
    a fresh checkpoint store)."""
    return await best_of(
        rounds,
        lambda _: raw(),
        lambda i: engine_run(workdir / f"engine-{i}", endpoint, mapping, total),
    )


def result(name: str, engine: Measured, raw: Measured, total: int, **extras: Any) -> Result:
    return throughput_result(
        name, engine, raw, GOAL, AIM, records=total, **extras, max_gap_s=round(engine.max_gap_s, 2)
    )


# -- Kinesis ------------------------------------------------------------------------------------


async def fill_kinesis(kinesis: Any, stream: str, total: int) -> Counter[str]:
    per_shard: Counter[str] = Counter()
    for first in range(0, total, 250):
        entries = [
            {"Data": data(i), "PartitionKey": f"key-{i}"} for i in range(first, min(total, first + 250))
        ]
        reply = await kinesis.put_records(StreamName=stream, Records=entries)
        if reply.get("FailedRecordCount"):
            raise RuntimeError(f"moto refused {reply['FailedRecordCount']} records")
        per_shard.update(r["ShardId"] for r in reply["Records"])
    return per_shard


async def raw_kinesis(kinesis: Any, stream: str, total: int, limit: int) -> Measured:
    shards = [s["ShardId"] for s in (await kinesis.list_shards(StreamName=stream))["Shards"]]

    async def first_iterator(shard: str) -> str:
        reply = await kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )
        return str(reply["ShardIterator"])

    return await raw_read(shards, first_iterator, kinesis.get_records, total, limit)


async def raw_read(
    shards: list[str],
    first_iterator: Callable[[str], Awaitable[str]],
    get_records: Callable[..., Awaitable[Any]],
    total: int,
    limit: int,
) -> Measured:
    """A plain GetRecords loop per shard from TRIM_HORIZON until `total` records are in hand."""
    started, cpu = time.perf_counter(), cpu_seconds()
    seen = 0
    last = started

    async def read(shard: str) -> None:
        nonlocal seen, last
        iterator = await first_iterator(shard)
        while seen < total:
            reply = await get_records(ShardIterator=iterator, Limit=limit)
            if reply["Records"]:
                seen += len(reply["Records"])
                last = time.perf_counter()
            iterator = reply["NextShardIterator"]
            if not reply["Records"]:
                await asyncio.sleep(0.01)  # this shard is read out; the others finish

    await asyncio.gather(*(read(shard) for shard in shards))
    return Measured.of(total, last - started, cpu_seconds() - cpu)


async def kinesis(workdir: Path, *, quick: bool, function: str) -> list[Result]:
    total = 10_000 if quick else 50_000
    stream = "bench-stream"
    async with moto(workdir) as endpoint, client("kinesis", endpoint) as kinesis_client:
        await kinesis_client.create_stream(StreamName=stream, ShardCount=KINESIS_SHARDS)
        summary = await kinesis_client.describe_stream_summary(StreamName=stream)
        arn = summary["StreamDescriptionSummary"]["StreamARN"]
        await fill_kinesis(kinesis_client, stream, total)
        mapping = {
            "Name": "bench-kinesis",
            "EventSourceArn": arn,
            "FunctionName": function,
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": BATCH_SIZE,
        }
        raw, engine = await compare(
            workdir,
            endpoint,
            mapping,
            total,
            ROUNDS,
            lambda: raw_kinesis(kinesis_client, stream, total, limit=10_000),
        )
    return [result("kinesis", engine, raw, total, shards=KINESIS_SHARDS, rounds=ROUNDS)]


# -- DynamoDB Streams ---------------------------------------------------------------------------


async def fill_table(dynamodb: Any, table: str, total: int) -> None:
    for first in range(0, total, 25):
        requests = [
            {"PutRequest": {"Item": {"id": {"S": f"item-{i:08d}"}, "payload": {"S": data(i).decode()}}}}
            for i in range(first, min(total, first + 25))
        ]
        reply = await dynamodb.batch_write_item(RequestItems={table: requests})
        if reply.get("UnprocessedItems"):
            raise RuntimeError("moto left items unprocessed")


async def raw_dynamodb(streams: Any, stream_arn: str, total: int, limit: int) -> Measured:
    description = (await streams.describe_stream(StreamArn=stream_arn))["StreamDescription"]
    shards = [s["ShardId"] for s in description["Shards"]]

    async def first_iterator(shard: str) -> str:
        reply = await streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )
        return str(reply["ShardIterator"])

    return await raw_read(shards, first_iterator, streams.get_records, total, limit)


async def dynamodb(workdir: Path, *, quick: bool, function: str) -> list[Result]:
    total = 5_000 if quick else 25_000
    table = "bench-table"
    async with (
        moto(workdir) as endpoint,
        client("dynamodb", endpoint) as dynamodb_client,
        client("dynamodbstreams", endpoint) as streams_client,
    ):
        reply = await dynamodb_client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        stream_arn = reply["TableDescription"]["LatestStreamArn"]
        await fill_table(dynamodb_client, table, total)
        mapping = {
            "Name": "bench-dynamodb",
            "EventSourceArn": stream_arn,
            "FunctionName": function,
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": BATCH_SIZE,
        }
        raw, engine = await compare(
            workdir,
            endpoint,
            mapping,
            total,
            ROUNDS,
            lambda: raw_dynamodb(streams_client, stream_arn, total, limit=1_000),
        )
    return [result("dynamodb", engine, raw, total, rounds=ROUNDS)]
