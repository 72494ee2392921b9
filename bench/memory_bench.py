"""Memory and idle cost: `memory` (RSS with 10k 1 KB records held) and `idle` (100 SQS mappings).

`memory`: a Kafka mapping (4 partitions, BatchSize 1250, so each partition may buffer 2,500 records
beside its batch in flight) whose handler never returns, so every record produced stays in the
engine: up to 1,250 per partition in the invocation in flight (`in_flight` says how many), the rest
in the partition buffers. The baseline is the RSS of this process once the mapping runs idle on the
empty topic; then 10,000 records of 1 KB are produced from another process (so no producer buffers
are counted) and the RSS is read again once the engine holds all of them. Reported: RSS minus
baseline, against the budget 2 × payload + 60 MiB. The in-process handler's own copy of its event
(the target parses the event for it) is part of that figure, as in any deployment with `python:`
targets.

`idle`: 100 SQS mappings on 100 empty queues of the SQS stub (moto's long poll holds a server thread
per poll and would load this 2-core machine, not this process), each with the receive loops the
engine keeps while idle; CPU of this process (every thread) from /proc/self/stat over the window,
in % of one core. The ceiling is what the same long polls cost a plain aiobotocore client (one
empty ReceiveMessage timed, times the rate at which the idle loops make them).

`idle-rss`: what one more idle mapping costs. The engine starts with one mapping (so the service
itself, its imports, botocore's data files and the first SQS client are in the baseline), then the
other 99 are added by a hot reload, as new mapping files; the RSS growth from that baseline, per
added mapping, once the CPU window is over, against the budget of 0.3 MiB per mapping (issue 14).
`per_mapping_with_service_kib` is the growth from before the engine started divided by 100, the
figure this line reported before (bench/README.md's older runs).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from bench import handlers
from bench.common import PROBE, Result, cpu_seconds, rss_mib, running_engine, wait_until, write_mappings
from bench.kafka_bench import create_topic, kafka_mapping, kafka_settings, produce_all
from bench.servers import ACCOUNT, REGION, ROOT, sqs_stub, tansu
from bench.sqs_bench import RECEIVE_ARGS, sqs_client, stub_calls

TRACE = os.environ.get("BENCH_TRACEMALLOC") == "1"
"""Print where the held memory was allocated (tracemalloc, to the log); slows the run down."""
HELD_RECORDS = 10_000
RECORD_BYTES = 1024
MEMORY_BATCH_SIZE = 1250
BUDGET_OVERHEAD_MIB = 60.0
IDLE_MAPPINGS = 100
IDLE_CPU_GOAL = 5.0
IDLE_RECEIVERS = 5
"""Receive loops an idle SQS mapping keeps: the scaler's initial target (spec §9.1)."""
IDLE_RSS_BUDGET_MIB = 0.3
"""What one more idle SQS mapping may add to the RSS (issue 14: clients shared, not per mapping)."""


async def buffered(workdir: Path, *, quick: bool) -> list[Result]:
    handlers.TALLY.reset()
    PROBE.forget("partitions_assigned")
    async with tansu(workdir) as bootstrap:
        topic = await create_topic(bootstrap)
        mapping = kafka_mapping(
            topic,
            bootstrap,
            "bench-memory",
            "python:bench.handlers.hold",
            Name="bench-memory",
            BatchSize=MEMORY_BATCH_SIZE,
            FunctionTimeout=840,
        )
        async with running_engine(
            workdir / "engine", [mapping], kafka=kafka_settings(100), drain_seconds=1
        ) as run:
            await wait_until(lambda: "partitions_assigned" in PROBE.first, timeout=60, what="partitions")
            await asyncio.sleep(3.0)  # a few idle fetches, a commit round: the steady idle state
            baseline = rss_mib()
            if TRACE:
                tracemalloc.start(25)
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "bench.memory_bench", "produce", bootstrap, topic],
                check=True,
                cwd=ROOT,
            )

            def held() -> int:
                return handlers.TALLY.records + int(
                    run.metric("poller_buffered_records", mapping="bench-memory")
                )

            await wait_until(
                lambda: held() >= HELD_RECORDS,
                timeout=300 if TRACE else 60,
                what="every record held",
                interval=0.1,
            )
            await asyncio.sleep(2.0)  # the fetcher has settled (partitions paused or drained)
            loaded = rss_mib()
            in_flight = handlers.TALLY.records
            if TRACE:
                _print_allocations(tracemalloc.take_snapshot())
                tracemalloc.stop()
    payload_mib = HELD_RECORDS * RECORD_BYTES / 2**20
    budget = 2 * payload_mib + BUDGET_OVERHEAD_MIB
    return [
        Result(
            "memory",
            loaded - baseline,
            budget,
            "MiB",
            goal="at_most",
            threshold=round(budget, 1),
            extras={
                "payload_mib": round(payload_mib, 2),
                "baseline_mib": round(baseline, 1),
                "rss_mib": round(loaded, 1),
                "held": HELD_RECORDS,
                "in_flight": in_flight,
                "per_record_kib": round((loaded - baseline) * 1024 / HELD_RECORDS, 2),
            },
        )
    ]


def _print_allocations(snapshot: tracemalloc.Snapshot) -> None:
    """Where the memory held since the baseline was allocated (to this child's log)."""
    stats = snapshot.statistics("traceback")
    total = sum(stat.size for stat in stats)
    print(f"tracemalloc: {total / 2**20:.1f} MiB traced since the baseline; the largest:")
    for stat in stats[:12]:
        frames = [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}" for f in stat.traceback]
        print(f"  {stat.size / 2**20:7.1f} MiB {stat.count:7d} blocks  " + " < ".join(reversed(frames[-6:])))


async def _cpu_percent(seconds: float) -> float:
    wall, cpu = time.monotonic(), cpu_seconds()
    await asyncio.sleep(seconds)
    return 100 * (cpu_seconds() - cpu) / (time.monotonic() - wall)


async def idle(workdir: Path, *, quick: bool) -> list[Result]:
    seconds = 30.0 if quick else 120.0
    PROBE.forget("mapping_started")
    async with sqs_stub(workdir) as endpoint:
        names = [f"idle-{i:03d}" for i in range(IDLE_MAPPINGS)]
        async with sqs_client(endpoint, 1) as client:
            for name in names:
                await client.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})
        mappings = [
            {
                "Name": name,
                "EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "FunctionName": "python:bench.handlers.count",
                "BatchSize": 10,
            }
            for name in names
        ]
        before = rss_mib()
        engine_dir = workdir / "engine"
        async with running_engine(engine_dir, mappings[:1], endpoint=endpoint) as run:
            await _started(1)
            await asyncio.sleep(3.0)  # its receive loops are in their long polls
            baseline = rss_mib()
            if TRACE:
                tracemalloc.start(25)
            write_mappings(engine_dir, mappings[1:], first=1)
            run.service.request_reload()
            await _started(IDLE_MAPPINGS)
            await asyncio.sleep(3.0)  # every receive loop is in its long poll
            polls = await _receives(endpoint)
            engine_cpu = await _cpu_percent(seconds)
            polls = await _receives(endpoint) - polls
            engine_rss = rss_mib()
            if TRACE:
                _print_allocations(tracemalloc.take_snapshot())
                tracemalloc.stop()
        raw_cpu = await _raw_idle(endpoint, names, polls / seconds)
    per_mapping = (engine_rss - baseline) / (IDLE_MAPPINGS - 1)
    return [
        Result(
            "idle-cpu",
            engine_cpu,
            raw_cpu,
            "%core",
            goal="at_most",
            threshold=IDLE_CPU_GOAL,
            extras={
                "mappings": IDLE_MAPPINGS,
                "receivers": IDLE_RECEIVERS,
                "seconds": seconds,
                "receives_per_s": round(polls / seconds, 1),
            },
        ),
        Result(
            "idle-rss",
            per_mapping,
            IDLE_RSS_BUDGET_MIB,
            "MiB/mapping",
            goal="at_most",
            threshold=IDLE_RSS_BUDGET_MIB,
            extras={
                "mappings": IDLE_MAPPINGS,
                "per_mapping_kib": round(per_mapping * 1024, 1),
                "baseline_mib": round(baseline, 1),
                "rss_mib": round(engine_rss, 1),
                "service_mib": round(baseline - before, 1),
                "per_mapping_with_service_kib": round((engine_rss - before) * 1024 / IDLE_MAPPINGS, 1),
            },
        ),
    ]


async def _started(mappings: int) -> None:
    await wait_until(
        lambda: PROBE.counts.get("mapping_started", 0) >= mappings,
        timeout=120,
        what=f"{mappings} mappings started",
        interval=0.1,
    )


async def _receives(endpoint: str) -> int:
    """ReceiveMessage requests the stub has answered so far."""
    return (await stub_calls(endpoint)).get("ReceiveMessage", 0)


async def _raw_idle(endpoint: str, names: list[str], polls_per_second: float) -> float:
    """What the same long polls cost a plain client, in % of a core.

    Each of an idle mapping's receive loops makes one ReceiveMessage per WaitTimeSeconds (20 s),
    which comes back empty; the stub counted how many the engine made in the window. A window of
    real long polls from a raw client would take minutes to be comparable, so the CPU cost of one
    empty ReceiveMessage is measured (WaitTimeSeconds 0, the engine's client settings and
    attribute names) and multiplied by the engine's rate.
    """
    calls = 300
    async with sqs_client(endpoint, IDLE_RECEIVERS) as client:
        url = (await client.get_queue_url(QueueName=names[0]))["QueueUrl"]
        args = {**RECEIVE_ARGS, "WaitTimeSeconds": 0}
        for _ in range(20):  # warm: connections, endpoint resolution, caches
            await client.receive_message(QueueUrl=url, **args)
        cpu = cpu_seconds()
        for _ in range(calls):
            await client.receive_message(QueueUrl=url, **args)
        per_call = (cpu_seconds() - cpu) / calls
    return 100 * per_call * polls_per_second


if __name__ == "__main__":
    if sys.argv[1:2] == ["produce"]:
        asyncio.run(produce_all(sys.argv[2], sys.argv[3], HELD_RECORDS, RECORD_BYTES))
