"""Kafka on Tansu: throughput (`kafka`) and produce→invoke latency (`latency-kafka-p50/-p99`).

Throughput: records pre-produced to a 4-partition topic, then read from the beginning twice by
two consumer groups: the raw client (a plain aiokafka `getmany` loop committing once per fetch) and
the engine (a Kafka mapping, BatchSize 100, invoking an in-process no-op handler). Both clocks start
when the group hands the consumer its partitions — Tansu answers JoinGroup only after half the
session timeout (3 s), which neither side can help — and stop when the last record is in hand
(raw) or invoked (engine).

Latency: records produced one at a time at a low rate, each carrying its send time; the raw client
reads them with `getmany`, the engine (MaximumBatchingWindowInSeconds 0) invokes them. Both fetch
with the same `fetch_max_wait_ms`: Tansu answers a waiting fetch only when that expires (DESIGN §4),
so it sets both floors; it is kept low (20 ms) so the difference, our added latency, shows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import handlers
from bench.common import (
    NOT_MEASURED,
    PROBE,
    Measured,
    Result,
    best_of,
    cpu_seconds,
    percentile,
    running_engine,
    unmeasured,
    wait_until,
)
from bench.servers import tansu
from poller.core.kafka_event import KafkaEventShape, KafkaRecordEncoder
from poller.targets.context import ContextFactory
from poller.targets.python_handler import PythonTarget

PARTITIONS = 4
RECORD_BYTES = 100
BATCH_SIZE = 100
SESSION_TIMEOUT_MS = 6000
"""Kafka's minimum; Tansu answers JoinGroup after half of it."""
THROUGHPUT_FETCH_WAIT_MS = 100
"""poller's default `kafka.fetch_max_wait_ms`; used by both sides."""
LATENCY_FETCH_WAIT_MS = 20
LATENCY_RATE = 20.0
THROUGHPUT_GOAL, THROUGHPUT_AIM = 0.5, 0.7
ADDED_P99_GOAL_MS = 5.0


async def create_topic(bootstrap: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
        for _ in range(200):
            [described] = await admin.describe_topics([name])
            led = [p for p in described["partitions"] if p["error_code"] == 0 and p["leader"] >= 0]
            if described["error_code"] == 0 and len(led) == PARTITIONS:
                return name
            await asyncio.sleep(0.05)
        raise TimeoutError(f"topic {name} has no leaders")
    finally:
        await admin.close()


async def produce_all(bootstrap: str, topic: str, count: int, size: int = RECORD_BYTES) -> None:
    """`count` records of `size` bytes, round-robin over the partitions, acknowledged by the broker."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        pending = []
        for index in range(count):
            value = f"{index:012d} ".encode().ljust(size, b"x")
            pending.append(await producer.send(topic, value, partition=index % PARTITIONS))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


class AssignedAt(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.at: float | None = None
        self.cpu = 0.0

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and self.at is None:
            self.at, self.cpu = time.perf_counter(), cpu_seconds()


def raw_consumer(bootstrap: str, group: str, fetch_wait_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_wait_ms,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
    )


Fetched = dict[Any, list[Any]]


async def raw_throughput(
    bootstrap: str,
    topic: str,
    count: int,
    group: str,
    invoke: Callable[[Fetched], Awaitable[None]] | None = None,
) -> Measured:
    """The raw loop; with `invoke`, each fetch is handed to it before the commit (the floor)."""
    consumer = raw_consumer(bootstrap, group, THROUGHPUT_FETCH_WAIT_MS)
    listener = AssignedAt()
    consumer.subscribe([topic], listener=listener)
    await consumer.start()
    try:
        seen = 0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500)
            if batches:
                if invoke is not None:
                    await invoke(batches)
                seen += sum(len(records) for records in batches.values())
                await consumer.commit()
        done, cpu = time.perf_counter(), cpu_seconds()
    finally:
        await consumer.stop()
    assert listener.at is not None
    return Measured.of(count, done - listener.at, cpu - listener.cpu)


def kafka_mapping(topic: str, bootstrap: str, group: str, function: str, **extra: Any) -> dict[str, Any]:
    return {
        "Name": "bench-kafka",
        "Topics": [topic],
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [bootstrap]}},
        "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": group},
        "FunctionName": function,
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": BATCH_SIZE,
        **extra,
    }


def kafka_settings(fetch_wait_ms: int) -> dict[str, Any]:
    return {"session_timeout_ms": SESSION_TIMEOUT_MS, "fetch_max_wait_ms": fetch_wait_ms}


async def engine_throughput(
    workdir: Path, bootstrap: str, topic: str, count: int, function: str, group: str
) -> Measured:
    handlers.TALLY.reset()
    PROBE.forget("partitions_assigned")
    mapping = kafka_mapping(topic, bootstrap, group, function)
    async with running_engine(workdir, [mapping], kafka=kafka_settings(THROUGHPUT_FETCH_WAIT_MS)):
        await wait_until(lambda: handlers.TALLY.records >= count, timeout=300, what="every record invoked")
        cpu = cpu_seconds()
    assert handlers.TALLY.last is not None
    start = "partitions_assigned"
    return Measured.of(count, handlers.TALLY.last - PROBE.first[start], cpu - PROBE.first_cpu[start])


async def floor_throughput(bootstrap: str, topic: str, count: int, group: str, function: str) -> Measured:
    """The least any engine keeping DESIGN §1.5's contract must add to the raw loop: each fetch's
    records cut into BatchSize events of the exact JSON (`KafkaRecordEncoder`, the engine's own),
    each handed to the same `python:` target (the handler off the engine's loop, on a parsed event),
    partitions concurrently, one commit per fetch. No retry machine, metrics, logs or status."""
    handler = function.removeprefix("python:")
    contexts = ContextFactory.for_function(
        "bench",
        "arn:aws:lambda:us-east-1:000000000000:function:bench",
        memory_limit_in_mb=128,
        timeout_seconds=60,
    )
    target = await PythonTarget.open(handler, contexts=contexts, timeout_seconds=60)
    shape = KafkaEventShape(bootstrap_servers=bootstrap)
    encoder = KafkaRecordEncoder(topic)

    async def invoke_all(group_key: str, records: list[Any]) -> None:
        for start in range(0, len(records), BATCH_SIZE):
            chunk = records[start : start + BATCH_SIZE]
            await target.invoke(shape.encode(group_key, encoder.encode_many(chunk)))

    async def invoke_fetch(batches: Fetched) -> None:
        async with asyncio.TaskGroup() as partitions:
            for tp, records in batches.items():
                partitions.create_task(invoke_all(f"{tp.topic}-{tp.partition}", records))

    try:
        return await raw_throughput(bootstrap, topic, count, group, invoke_fetch)
    finally:
        await target.aclose()


async def throughput(workdir: Path, *, quick: bool, function: str) -> list[Result]:
    count = 40_000 if quick else 200_000
    rounds = 2
    async with tansu(workdir) as bootstrap:
        topic = await create_topic(bootstrap)
        await produce_all(bootstrap, topic, count)
        # Each round reads the whole topic again, in a consumer group of its own.
        raw, engine = await best_of(
            rounds,
            lambda i: raw_throughput(bootstrap, topic, count, f"bench-raw-{i}"),
            lambda i: engine_throughput(
                workdir / f"engine-{i}", bootstrap, topic, count, function, f"bench-engine-{i}"
            ),
        )
        floor = NOT_MEASURED
        if not unmeasured("floor"):
            floors = [
                await floor_throughput(bootstrap, topic, count, f"bench-floor-{i}", function)
                for i in range(rounds)
            ]
            floor = max(floors, key=lambda m: m.rate)
    return [
        throughput_result(
            "kafka",
            engine,
            raw,
            THROUGHPUT_GOAL,
            THROUGHPUT_AIM,
            records=count,
            rounds=rounds,
            floor_ratio=round(floor.rate / raw.rate, 3),
            floor_cpu_us_per_record=round(floor.cpu_us, 1),
        )
    ]


def throughput_result(
    name: str, engine: Measured, raw: Measured, goal: float, aim: float, **extras: Any
) -> Result:
    return Result(
        name,
        engine.rate,
        raw.rate,
        "records/s",
        goal="ratio_at_least",
        threshold=goal,
        aim=aim,
        extras={
            **extras,
            "engine_cpu_us_per_record": round(engine.cpu_us, 1),
            "raw_cpu_us_per_record": round(raw.cpu_us, 1),
            **{f"engine_{key}": value for key, value in engine.details.items()},
            **{f"raw_{key}": value for key, value in raw.details.items()},
        },
    )


# -- latency ------------------------------------------------------------------------------------


async def _paced_producer(producer: AIOKafkaProducer, topic: str, count: int) -> None:
    interval = 1 / LATENCY_RATE
    start = time.perf_counter()
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
        value = f"{time.perf_counter():.9f} ".encode().ljust(RECORD_BYTES, b"x")
        await producer.send_and_wait(topic, value, partition=index % PARTITIONS)


async def raw_latency(bootstrap: str, topic: str, count: int) -> list[float]:
    consumer = raw_consumer(bootstrap, "bench-raw-latency", LATENCY_FETCH_WAIT_MS)
    listener = AssignedAt()
    consumer.subscribe([topic], listener=listener)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await asyncio.gather(consumer.start(), producer.start())
    latencies: list[float] = []
    try:
        await wait_until(lambda: listener.at is not None, timeout=30, what="partitions assigned")
        feeder = asyncio.create_task(_paced_producer(producer, topic, count))
        while len(latencies) < count:
            batches = await consumer.getmany(timeout_ms=500)
            now = time.perf_counter()
            for records in batches.values():
                latencies.extend(now - float(r.value.split(b" ", 1)[0]) for r in records)
            if batches:
                await consumer.commit()
        await feeder
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())
    return latencies


async def engine_latency(workdir: Path, bootstrap: str, topic: str, count: int) -> list[float]:
    handlers.TALLY.reset()
    PROBE.forget("partitions_assigned")
    mapping = kafka_mapping(
        topic,
        bootstrap,
        "bench-engine-latency",
        "python:bench.handlers.latency",
        MaximumBatchingWindowInSeconds=0,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        async with running_engine(workdir, [mapping], kafka=kafka_settings(LATENCY_FETCH_WAIT_MS)):
            await wait_until(
                lambda: "partitions_assigned" in PROBE.first, timeout=30, what="partitions assigned"
            )
            await asyncio.sleep(1.0)  # its first fetches have set the positions at the end
            await _paced_producer(producer, topic, count)
            await wait_until(lambda: handlers.TALLY.records >= count, timeout=30, what="every record")
    finally:
        await producer.stop()
    return list(handlers.TALLY.latencies)


def latency_results(
    prefix: str, engine: list[float], raw: list[float], extras: dict[str, Any]
) -> list[Result]:
    out = []
    for q in (50, 99):
        e_ms, r_ms = percentile(engine, q) * 1000, percentile(raw, q) * 1000
        out.append(
            Result(
                f"{prefix}-p{q}",
                e_ms,
                r_ms,
                "ms",
                goal="added_at_most" if q == 99 else "info",
                threshold=ADDED_P99_GOAL_MS,
                extras={"added_ms": round(e_ms - r_ms, 2), **extras},
            )
        )
    return out


async def latency(workdir: Path, *, quick: bool) -> list[Result]:
    seconds = 15 if quick else 60
    count = int(LATENCY_RATE * seconds)
    async with tansu(workdir) as bootstrap:
        raw = await raw_latency(bootstrap, await create_topic(bootstrap), count)
        engine = await engine_latency(workdir / "engine", bootstrap, await create_topic(bootstrap), count)
    return latency_results(
        "latency-kafka",
        engine,
        raw,
        {"records": count, "rate": LATENCY_RATE, "fetch_max_wait_ms": LATENCY_FETCH_WAIT_MS},
    )
