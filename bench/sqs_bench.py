"""SQS: throughput on moto (`sqs`) and on the in-memory stub (`sqs-stub`), latency on moto.

Throughput: the engine (an SQS mapping, BatchSize 10, no window, MaximumConcurrency 10, invoking an
in-process no-op handler) against the raw client: 10 concurrent aiobotocore loops, each
ReceiveMessage (10, long poll, the same attribute names the engine asks for) then
DeleteMessageBatch. Both clocks start once the queue is known (the engine's `mapping_started`) and
stop when the last message is in hand (received, or invoked).

moto's SQS slows as a queue deepens (DESIGN §4): a feeder process keeps it shallow, topping it up
to FEED_DEPTH messages ahead of what has been consumed. The stub costs the same at any depth, so
its queue is filled before the clock starts.

Latency: one message at a time at a low rate, its send time in its body; the engine (5 receivers,
its default, no batching window) invokes it, the raw client (5 long-poll loops) receives it.
"""

from __future__ import annotations

import asyncio
import functools
import math
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from bench import handlers
from bench.common import (
    NOT_MEASURED,
    PROBE,
    Measured,
    Result,
    best_of,
    cpu_seconds,
    running_engine,
    unmeasured,
    wait_until,
)
from bench.kafka_bench import latency_results, throughput_result
from bench.servers import ACCOUNT, REGION, moto, sqs_stub
from poller.core.sqs_event import build_record, encode_event, from_record
from poller.targets.context import ContextFactory
from poller.targets.python_handler import PythonTarget

BODY_BYTES = 100
CONCURRENCY = 10
FEED_DEPTH = 100
GOAL, AIM = 0.8, 0.9
LATENCY_RATE = 20.0
LATENCY_RECEIVERS = 5
"""The engine starts an SQS mapping with 5 receive loops (spec §9.1)."""
RECEIVE_ARGS: dict[str, Any] = {
    "MaxNumberOfMessages": 10,
    "WaitTimeSeconds": 20,
    "MessageSystemAttributeNames": ["All"],
    "MessageAttributeNames": ["All"],
}


@functools.cache
def _session() -> AioSession:
    """One session for every raw client, as the engine has (a session loads botocore's data files)."""
    return get_session()


def sqs_client(endpoint: str, connections: int) -> Any:
    """A client configured as the engine's (`poller.runtime.clients.sqs_config`)."""
    config = AioConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=40,
        max_pool_connections=connections + 20,
    )
    return _session().create_client("sqs", region_name=REGION, endpoint_url=endpoint, config=config)


def body(index: int) -> str:
    return f"{index:012d} ".ljust(BODY_BYTES, "x")


async def create_queue(client: Any, name: str) -> str:
    reply = await client.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})
    return str(reply["QueueUrl"])


async def fill(client: Any, url: str, start: int, count: int) -> None:
    for first in range(start, start + count, 10):
        entries = [
            {"Id": str(i), "MessageBody": body(first + i)} for i in range(min(10, start + count - first))
        ]
        await client.send_message_batch(QueueUrl=url, Entries=entries)


# -- a feeder in its own process, so its CPU is never charged to either side -------------------


def _feed(endpoint: str, url: str, total: int, depth: int, consumed: Synchronized) -> None:  # type: ignore[type-arg]
    from bench.servers import use_bench_credentials

    use_bench_credentials()

    async def run() -> None:
        async with sqs_client(endpoint, 1) as client:
            sent = 0
            while sent < total:
                if sent - consumed.value < depth:
                    count = min(10, total - sent)
                    await fill(client, url, sent, count)
                    sent += count
                else:
                    await asyncio.sleep(0.002)

    asyncio.run(run())


class Feeder:
    def __init__(self, endpoint: str, url: str, total: int, depth: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.consumed: Synchronized = context.Value("q", 0, lock=False)  # type: ignore[type-arg]
        self.process = context.Process(
            target=_feed, args=(endpoint, url, total, depth, self.consumed), daemon=True
        )

    def __enter__(self) -> Feeder:
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


async def _publish(feeder: Feeder | None, count: Any) -> None:
    """Tell the feeder how far consumption got, every few milliseconds."""
    if feeder is None:
        return
    while True:
        feeder.consumed.value = count()
        await asyncio.sleep(0.003)


# -- throughput ---------------------------------------------------------------------------------


async def stub_calls(endpoint: str) -> dict[str, int]:
    """Requests per SQS operation the stub has answered so far (`GET /stats`)."""
    async with aiohttp.ClientSession() as session, session.get(f"{endpoint}/stats") as reply:
        return {str(k): int(v) for k, v in (await reply.json()).items()}


async def calls_per_1k(endpoint: str, before: dict[str, int] | None, total: int) -> dict[str, float]:
    """ReceiveMessage and DeleteMessageBatch calls per 1,000 messages since `before` (stub only)."""
    if before is None:
        return {}
    after = await stub_calls(endpoint)
    return {
        f"{short}_per_1k": round((after.get(op, 0) - before.get(op, 0)) * 1000 / total, 1)
        for op, short in (("ReceiveMessage", "receives"), ("DeleteMessageBatch", "deletes"))
    }


Invoke = Callable[[list[dict[str, Any]]], Awaitable[None]]


async def raw_throughput(
    endpoint: str, url: str, total: int, feeder: Feeder | None, invoke: Invoke | None = None
) -> Measured:
    """The raw loops; with `invoke`, each receive's messages are handed to it before their delete
    (the contract's floor, `floor_throughput`)."""
    received = 0
    last = 0.0

    async def loop(client: Any) -> None:
        nonlocal received, last
        while received < total:
            reply = await client.receive_message(QueueUrl=url, **{**RECEIVE_ARGS, "WaitTimeSeconds": 1})
            messages = reply.get("Messages", [])
            if not messages:
                continue
            if invoke is not None:
                await invoke(messages)
            received += len(messages)
            last = time.perf_counter()
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            await client.delete_message_batch(QueueUrl=url, Entries=entries)

    async with sqs_client(endpoint, CONCURRENCY) as client:
        await client.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
        publisher = asyncio.create_task(_publish(feeder, lambda: received))
        before = None if feeder is not None else await stub_calls(endpoint)
        started, cpu = time.perf_counter(), cpu_seconds()
        try:
            await asyncio.gather(*(loop(client) for _ in range(CONCURRENCY)))
            cpu = cpu_seconds() - cpu
        finally:
            publisher.cancel()
    return Measured.of(total, last - started, cpu, **await calls_per_1k(endpoint, before, total))


async def floor_throughput(endpoint: str, url: str, total: int, function: str) -> Measured:
    """The least any engine keeping DESIGN §1.5's contract must add to the raw loops: each
    receive's messages turned into the exact event (the engine's own record builder) and handed to
    the same `python:` target (off the engine's loop, on a parsed event) before the delete. No
    buffer, concurrency control, visibility keeping, metrics, logs or status."""
    contexts = ContextFactory.for_function(
        "bench",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench",
        memory_limit_in_mb=128,
        timeout_seconds=60,
    )
    target = await PythonTarget.open(function.removeprefix("python:"), contexts=contexts, timeout_seconds=60)
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[-1]}"

    async def invoke(messages: list[dict[str, Any]]) -> None:
        records = [
            from_record(build_record(m, queue_arn=queue_arn, region=REGION, batching_window_seconds=0))
            for m in messages
        ]
        await target.invoke(encode_event(records))

    try:
        return await raw_throughput(endpoint, url, total, None, invoke)
    finally:
        await target.aclose()


async def engine_throughput(
    workdir: Path, endpoint: str, name: str, total: int, function: str, feeder: Feeder | None
) -> Measured:
    handlers.TALLY.reset()
    PROBE.forget("mapping_started")
    mapping = {
        "Name": "bench-sqs",
        "EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "FunctionName": function,
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 0,
        "ScalingConfig": {"MaximumConcurrency": CONCURRENCY},
    }
    publisher = asyncio.create_task(_publish(feeder, lambda: handlers.TALLY.records))
    before = None if feeder is not None else await stub_calls(endpoint)
    try:
        async with running_engine(workdir, [mapping], endpoint=endpoint) as run:
            await wait_until(
                lambda: handlers.TALLY.records >= total, timeout=600, what="every message invoked"
            )
            cpu = cpu_seconds()
            calls = await calls_per_1k(endpoint, before, total)
            invocations = run.metric("poller_batch_size_records_count", mapping="bench-sqs")
    finally:
        publisher.cancel()
    assert handlers.TALLY.last is not None
    start = "mapping_started"
    wall = handlers.TALLY.last - PROBE.first[start]
    mean_batch = round(total / invocations, 2) if invocations else math.nan
    return Measured.of(total, wall, cpu - PROBE.first_cpu[start], mean_batch=mean_batch, **calls)


async def throughput(workdir: Path, *, quick: bool, function: str, stub: bool) -> list[Result]:
    # moto is slow and its cost grows with the queue: fewer messages, fed shallow, one round.
    quick_total, full_total = (6_000, 30_000) if stub else (1_500, 5_000)
    total = quick_total if quick else full_total
    rounds = 1 if quick and not stub else 2
    async with AsyncExitStack() as stack:
        server = sqs_stub(workdir) if stub else moto(workdir)
        endpoint = await stack.enter_async_context(server)
        client = await stack.enter_async_context(sqs_client(endpoint, 1))

        async def queue_for(name: str) -> tuple[str, Feeder | None]:
            url = await create_queue(client, name)
            if stub:
                await fill(client, url, 0, total)
                return url, None
            return url, stack.enter_context(Feeder(endpoint, url, total, FEED_DEPTH))

        async def raw(index: int) -> Measured:
            url, feeder = await queue_for(f"bench-raw-{index}")
            return await raw_throughput(endpoint, url, total, feeder)

        async def engine(index: int) -> Measured:
            name = f"bench-engine-{index}"
            _, feeder = await queue_for(name)
            return await engine_throughput(workdir / name, endpoint, name, total, function, feeder)

        best_raw, best_engine = await best_of(rounds, raw, engine)
        floor = NOT_MEASURED
        if stub and not unmeasured("floor"):
            floors = []
            for index in range(rounds):
                url, _ = await queue_for(f"bench-floor-{index}")
                floors.append(await floor_throughput(endpoint, url, total, function))
            floor = max(floors, key=lambda m: m.rate)
    extras: dict[str, Any] = {"messages": total, "concurrency": CONCURRENCY}
    if stub:
        extras["floor_ratio"] = round(floor.rate / best_raw.rate, 3)
        extras["floor_cpu_us_per_record"] = round(floor.cpu_us, 1)
    if not stub:
        extras["depth"] = FEED_DEPTH
    result = throughput_result(
        "sqs-stub" if stub else "sqs", best_engine, best_raw, GOAL, AIM, **extras, rounds=rounds
    )
    result.unit = "messages/s"
    return [result]


# -- latency ------------------------------------------------------------------------------------


async def _paced_sender(client: Any, url: str, count: int) -> None:
    interval = 1 / LATENCY_RATE
    start = time.perf_counter()
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
        await client.send_message(
            QueueUrl=url, MessageBody=f"{time.perf_counter():.9f} ".ljust(BODY_BYTES, "x")
        )


async def raw_latency(endpoint: str, url: str, count: int) -> list[float]:
    latencies: list[float] = []

    async def loop(client: Any) -> None:
        while len(latencies) < count:
            reply = await client.receive_message(QueueUrl=url, **{**RECEIVE_ARGS, "WaitTimeSeconds": 1})
            now = time.perf_counter()
            messages = reply.get("Messages", [])
            latencies.extend(now - float(m["Body"].split(" ", 1)[0]) for m in messages)
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ]
                await client.delete_message_batch(QueueUrl=url, Entries=entries)

    async with sqs_client(endpoint, LATENCY_RECEIVERS) as client, sqs_client(endpoint, 1) as producer:
        loops = [asyncio.create_task(loop(client)) for _ in range(LATENCY_RECEIVERS)]
        await asyncio.sleep(1.0)  # every long poll is waiting
        await _paced_sender(producer, url, count)
        await asyncio.gather(*loops)
    return latencies


async def engine_latency(workdir: Path, endpoint: str, name: str, url: str, count: int) -> list[float]:
    handlers.TALLY.reset()
    PROBE.forget("mapping_started")
    mapping = {
        "Name": "bench-sqs-latency",
        "EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "FunctionName": "python:bench.handlers.latency",
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 0,
    }
    async with running_engine(workdir, [mapping], endpoint=endpoint), sqs_client(endpoint, 1) as producer:
        await wait_until(lambda: "mapping_started" in PROBE.first, timeout=30, what="the mapping to start")
        await asyncio.sleep(1.0)  # every long poll is waiting
        await _paced_sender(producer, url, count)
        await wait_until(lambda: handlers.TALLY.records >= count, timeout=30, what="every message invoked")
    return list(handlers.TALLY.latencies)


async def latency(workdir: Path, *, quick: bool) -> list[Result]:
    seconds = 15 if quick else 60
    count = int(LATENCY_RATE * seconds)
    async with moto(workdir) as endpoint, sqs_client(endpoint, 1) as client:
        raw = await raw_latency(endpoint, await create_queue(client, "bench-raw-latency"), count)
        url = await create_queue(client, "bench-engine-latency")
        engine = await engine_latency(workdir / "engine", endpoint, "bench-engine-latency", url, count)
    return latency_results(
        "latency-sqs", engine, raw, {"messages": count, "rate": LATENCY_RATE, "server": "moto"}
    )
