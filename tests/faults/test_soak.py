"""A soak run: steady traffic through an SQS mapping for minutes, watching the poller's memory
(DESIGN §3: bounded memory). Opt-in: POLLER_SOAK=1; POLLER_SOAK_SECONDS sets the length (600 by
default), POLLER_SOAK_RATE the messages per second (50 by default).

The resident set size of the `poller run` process is read from /proc/<pid>/status every 10 s; the
median of the last quarter of the samples must stay within the first quarter's median × 1.2 + 10 MiB
(noise, not growth). Every message sent must be delivered, and the figures are printed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from tests.faults.conftest import assert_alive, moto_receive_races, rss_bytes
from tests.integration.conftest import StartPoller, free_port, queue_depth
from tests.waiting import wait_until

DURATION_SECONDS = float(os.environ.get("POLLER_SOAK_SECONDS", "600"))
RATE_PER_SECOND = float(os.environ.get("POLLER_SOAK_RATE", "50"))
SAMPLE_EVERY_SECONDS = 10.0
MIB = 1024 * 1024

pytestmark = [pytest.mark.faults, pytest.mark.soak, pytest.mark.timeout(DURATION_SECONDS + 240)]


@asynccontextmanager
async def counting_function() -> AsyncIterator[tuple[str, dict[str, list[tuple[str, float]]]]]:
    """An HTTP function that only notes each body's deliveries, (receipt handle, arrival time)
    (FunctionServer keeps every event, which over a long run would measure the test, not the poller)."""
    seen: dict[str, list[tuple[str, float]]] = defaultdict(list)

    async def handle(request: web.Request) -> web.StreamResponse:
        event = await request.json()
        now = time.monotonic()
        for record in event["Records"]:
            seen[record["body"]].append((record["receiptHandle"], now))
        return web.json_response(None)

    app = web.Application()
    app.router.add_post("/invoke", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/invoke", seen
    finally:
        await runner.cleanup()


def median_mib(samples: list[int]) -> float:
    return statistics.median(samples) / MIB


async def test_steady_sqs_traffic_does_not_grow_memory(
    sqs: Any, make_queue: Any, start_poller: StartPoller
) -> None:
    queue = make_queue(visibility=30)
    async with counting_function() as (url, seen):
        mapping = {"Name": "soak", "EventSourceArn": queue.arn, "FunctionName": url, "BatchSize": 10}
        poller = await start_poller([mapping])
        sent = 0
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        next_sample = started
        interval = 10 / RATE_PER_SECOND  # one batch of ten per interval
        while (now := time.monotonic()) - started < DURATION_SECONDS:
            entries = [{"Id": str(i), "MessageBody": f"s{sent + i}"} for i in range(10)]
            await asyncio.to_thread(sqs.send_message_batch, QueueUrl=queue.url, Entries=entries)
            sent += 10
            if now >= next_sample:
                samples.append((now - started, rss_bytes(poller.proc.pid)))
                next_sample += SAMPLE_EVERY_SECONDS
                assert_alive(poller)
            await asyncio.sleep(max(0.0, started + (sent / 10) * interval - time.monotonic()))  # the pace
        elapsed = time.monotonic() - started
        await wait_until(lambda: len(seen) == sent, timeout=120, what="every message delivered")
        await wait_until(lambda: queue_depth(sqs, queue) == (0, 0), timeout=60, what="the queue empty")
        assert_alive(poller)

    rss = [value for _, value in samples]
    quarter = max(1, len(rss) // 4)
    first, last = median_mib(rss[:quarter]), median_mib(rss[-quarter:])
    duplicates = sum(len(handed) for handed in seen.values()) - len(seen)
    races = moto_receive_races(seen)
    print(
        f"\nsoak: {elapsed:.0f} s, {sent} messages sent ({sent / elapsed:.1f}/s), {len(seen)} delivered, "
        f"{duplicates} duplicates ({races} from moto's concurrent-receive race)"
    )
    print("soak RSS MiB every 10 s:", " ".join(f"{value / MIB:.1f}" for value in rss))
    print(
        f"soak RSS first-quarter median {first:.1f} MiB, last-quarter median {last:.1f} MiB, "
        f"min {min(rss) / MIB:.1f}, max {max(rss) / MIB:.1f}, limit {first * 1.2 + 10:.1f}"
    )
    assert len(rss) >= 4, "too short a run to compare quarters"
    assert last <= first * 1.2 + 10, f"RSS grew from {first:.1f} MiB to {last:.1f} MiB"
