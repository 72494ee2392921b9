"""`kafka-functions`: `kafka`'s throughput run with its handler in execution environments.

The same topic, raw loop and engine as bench/kafka_bench.py's `kafka` (a Kafka mapping, BatchSize
100, built by `running_engine` from a mapping file), but the mapping's FunctionName names a function
declared under `Functions:` in the same file (DESIGN §1.5.1): a plain `def` handler run by
awslambdaric in at most 2 environments (ReservedConcurrentExecutions 2). Both environments are
started while the consumer group forms, so the clock sees warm ones (cold starts are
`function-cold-start`'s). The in-process engine (`kafka`'s own side, the `python:` handler) is
measured in the same run (`inprocess_ratio`), and so is the contract's floor with environments
(`floor_ratio`, `floor_throughput`): what any engine must pay to run the handler in them.

The handler's invocations happen in other processes, so the clock stops at the last successful
`batch_attempt` log line (`InvokedRecords`), the line the engine writes once the invocation has
returned; the environments' CPU is reported apart (`engine_env_cpu_us_per_record`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from bench import kafka_bench
from bench.common import (
    NOT_MEASURED,
    PROBE,
    Measured,
    Result,
    cpu_seconds,
    running_engine,
    unmeasured,
    wait_until,
)
from bench.function_bench import environment_cpu_seconds, succeeded, write_code
from bench.runtime_floor import RUNTIME, FloorEnvironment
from bench.servers import tansu
from poller.core.kafka_event import KafkaEventShape, KafkaRecordEncoder

KAFKA_ENVIRONMENTS = 2
KAFKA_CODE = (
    "def handler(event, context):\n    return sum(len(records) for records in event['records'].values())\n"
)


class InvokedRecords:
    """A structlog processor (in front of poller's own) that tallies the records of every
    successful `batch_attempt` line and stamps the last: how the benchmark sees a mapping's
    progress when its function runs in environments, out of this process's reach."""

    def __init__(self) -> None:
        self.records = 0
        self.last: float | None = None

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("event") == "batch_attempt" and event.get("outcome") == "success":
            self.records += int(event["records"])
            self.last = time.perf_counter()
        return event


INVOKED = InvokedRecords()


def tally_invoked_records() -> None:
    """Put `INVOKED` in front of the logging `configure_engine_logging` set up (before any logger
    is first used: structlog caches each logger's processors then)."""
    processors = list(structlog.get_config()["processors"])
    if INVOKED not in processors:
        structlog.configure(processors=[INVOKED, *processors])


def declared_function(code: Path) -> dict[str, Any]:
    """The `Functions:` entry of the mapping file: the Kafka handler, in at most 2 environments."""
    return {
        "Runtime": RUNTIME,
        "Handler": "app.handler",
        "CodeUri": str(code),
        "Timeout": 60,
        "ReservedConcurrentExecutions": KAFKA_ENVIRONMENTS,
    }


async def environments_throughput(
    workdir: Path, bootstrap: str, topic: str, count: int, group: str
) -> Measured:
    INVOKED.records, INVOKED.last = 0, None
    PROBE.forget("partitions_assigned")
    code = write_code(workdir / "code", KAFKA_CODE)
    mapping = {
        **kafka_bench.kafka_mapping(topic, bootstrap, group, "bench-kafka"),
        "Functions": {"bench-kafka": declared_function(code)},
    }
    settings = kafka_bench.kafka_settings(kafka_bench.THROUGHPUT_FETCH_WAIT_MS)
    async with running_engine(workdir, [mapping], kafka=settings) as run:
        # Both environments started while the group forms (Tansu answers JoinGroup after 3 s),
        # so the clock sees warm ones: a cold start is `function-cold-start`'s figure.
        pool = run.service.functions.pool("bench-kafka")
        empty = b'{"records":{}}'
        for outcome in await asyncio.gather(*(pool.invoke(empty) for _ in range(KAFKA_ENVIRONMENTS))):
            succeeded(outcome)
        if "partitions_assigned" in PROBE.first:
            raise RuntimeError("the partitions came before the environments were warm")
        env_cpu = environment_cpu_seconds()
        await wait_until(lambda: INVOKED.records >= count, timeout=300, what="every record invoked")
        cpu, env_cpu = cpu_seconds(), environment_cpu_seconds() - env_cpu
    assert INVOKED.last is not None
    start = "partitions_assigned"
    return Measured.of(
        count,
        INVOKED.last - PROBE.first[start],
        cpu - PROBE.first_cpu[start],
        env_cpu_us_per_record=round(env_cpu * 1e6 / count, 1),
    )


async def floor_throughput(workdir: Path, bootstrap: str, topic: str, count: int, group: str) -> Measured:
    """The contract's floor with environments: kafka_bench's floor (the raw loop, each fetch cut into
    BatchSize events of the exact JSON, partitions concurrently, one commit per fetch) handing each
    event to one of 2 awslambdaric children behind the bare Runtime API of bench/runtime_floor.py."""
    code = write_code(workdir / "floor-code", KAFKA_CODE)
    envs = [FloorEnvironment(code, workdir / f"floor-tmp-{i}") for i in range(KAFKA_ENVIRONMENTS)]
    free: asyncio.Queue[FloorEnvironment] = asyncio.Queue()
    shape = KafkaEventShape(bootstrap_servers=bootstrap)
    encoder = KafkaRecordEncoder(topic)

    async def invoke_all(key: str, records: list[Any]) -> None:
        for start in range(0, len(records), kafka_bench.BATCH_SIZE):
            payload = shape.encode(key, encoder.encode_many(records[start : start + kafka_bench.BATCH_SIZE]))
            env = await free.get()
            try:
                succeeded(await env.invoke(payload))
            finally:
                free.put_nowait(env)

    async def invoke_fetch(batches: kafka_bench.Fetched) -> None:
        async with asyncio.TaskGroup() as partitions:
            for tp, records in batches.items():
                partitions.create_task(invoke_all(f"{tp.topic}-{tp.partition}", records))

    try:
        for env in envs:
            await env.start()
            free.put_nowait(env)
        env_cpu = environment_cpu_seconds()
        measured = await kafka_bench.raw_throughput(bootstrap, topic, count, group, invoke_fetch)
        env_cpu = environment_cpu_seconds() - env_cpu
    finally:
        for env in envs:
            await env.aclose()
    return Measured(measured.rate, measured.cpu_us, details={"env_cpu_us": round(env_cpu * 1e6 / count, 1)})


async def kafka_throughput(workdir: Path, *, quick: bool, function: str) -> list[Result]:
    tally_invoked_records()
    count = 40_000 if quick else 200_000
    rounds = 2
    sides: dict[str, list[Measured]] = {"raw": [], "inprocess": [], "engine": [], "floor": []}
    async with tansu(workdir) as bootstrap:
        topic = await kafka_bench.create_topic(bootstrap)
        await kafka_bench.produce_all(bootstrap, topic, count)
        for i in range(rounds):  # each side reads the whole topic in a consumer group of its own
            if not unmeasured("raw"):
                sides["raw"].append(await kafka_bench.raw_throughput(bootstrap, topic, count, f"raw-{i}"))
            if not unmeasured("engine"):
                sides["inprocess"].append(
                    await kafka_bench.engine_throughput(
                        workdir / f"inprocess-{i}", bootstrap, topic, count, function, f"inprocess-{i}"
                    )
                )
                sides["engine"].append(
                    await environments_throughput(workdir / f"env-{i}", bootstrap, topic, count, f"env-{i}")
                )
            if not unmeasured("floor"):
                sides["floor"].append(
                    await floor_throughput(workdir / f"floor-{i}", bootstrap, topic, count, f"floor-{i}")
                )
    best = {side: max(got, key=lambda m: m.rate) if got else NOT_MEASURED for side, got in sides.items()}
    raw, inproc, engine, floor = best["raw"], best["inprocess"], best["engine"], best["floor"]
    return [
        kafka_bench.throughput_result(
            "kafka-functions",
            engine,
            raw,
            kafka_bench.THROUGHPUT_GOAL,
            kafka_bench.THROUGHPUT_AIM,
            records=count,
            rounds=rounds,
            environments=KAFKA_ENVIRONMENTS,
            inprocess_ratio=round(inproc.rate / raw.rate, 3),
            inprocess_cpu_us_per_record=round(inproc.cpu_us, 1),
            floor_ratio=round(floor.rate / raw.rate, 3),
            floor_cpu_us_per_record=round(floor.cpu_us, 1),
            floor_env_cpu_us_per_record=floor.details.get("env_cpu_us", math.nan),
        )
    ]
