"""The functions the benchmarked mappings invoke (`python:bench.handlers.<name>`), in-process.

They do nothing but keep a tally the benchmark reads: how many records were invoked, when the first
and the last invocation began, and for latency runs the time from each record's production (carried
in its body as `perf_counter()` seconds; producer and engine share this process) to its invocation.
`count` is async (it runs on the target's own loop thread); `count_sync` is the plain `def`
handler most Lambda code is, which the engine runs on a thread of its own per invocation.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from typing import Any


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.records = 0
            self.invocations = 0
            self.first: float | None = None
            self.last: float | None = None
            self.latencies: list[float] = []
            self.times: list[float] = []
            """When each invocation began."""

    def add(self, count: int, now: float) -> None:
        with self.lock:
            if self.first is None:
                self.first = now
            self.last = now
            self.times.append(now)
            self.records += count
            self.invocations += 1


TALLY = Tally()


def records_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of an SQS / Kinesis / DynamoDB event (`Records`) or a Kafka event (`records`)."""
    if "Records" in event:
        return list(event["Records"])
    return [record for batch in event["records"].values() for record in batch]


def sent_at(record: dict[str, Any]) -> float:
    """The producer's `perf_counter()` stamp in a record's body (SQS body, Kafka value)."""
    if "body" in record:
        return float(record["body"].split(" ", 1)[0])
    return float(base64.b64decode(record["value"]).split(b" ", 1)[0])


async def count(event: dict[str, Any], context: Any) -> None:
    TALLY.add(len(records_of(event)), time.perf_counter())


def count_sync(event: dict[str, Any], context: Any) -> None:
    TALLY.add(len(records_of(event)), time.perf_counter())


async def latency(event: dict[str, Any], context: Any) -> None:
    now = time.perf_counter()
    records = records_of(event)
    with TALLY.lock:
        TALLY.latencies.extend(now - sent_at(r) for r in records)
    TALLY.add(len(records), now)


async def hold(event: dict[str, Any], context: Any) -> None:
    """Count the batch, then never finish (until the service stops): the engine's buffers fill."""
    TALLY.add(len(records_of(event)), time.perf_counter())
    await asyncio.sleep(3600)
