"""Leases while a stream source drains (ops anchors §3): after `stopping`, in-flight batches run on
for up to the drain budget, longer than a lease, so the leases stay renewed (or fenced) until the
source releases them; and releasing never waits on one slow table request per lease."""

from __future__ import annotations

import asyncio
import itertools
import time

from prometheus_client import CollectorRegistry

from poller.core.clock import SystemClock
from poller.observability.metrics import Metrics
from poller.state.leases import LeaseCoordinator
from tests.unit.test_lease_fencing import FakeLeaseTable
from tests.waiting import wait_until

SMALL_LEASE = 1.5


class ReleasingTable(FakeLeaseTable):
    """The fake lease table, with releases that can hang and a record of those that went through."""

    def __init__(self, shards: list[str]) -> None:
        super().__init__(shards)
        self.hang_release: set[str] = set()
        self.released: dict[str, float] = {}

    async def release(self, mapping: str, shard_id: str, owner: str, counter: int) -> int:
        if shard_id in self.hang_release:
            await self.never.wait()
        counter = await super().release(mapping, shard_id, owner, counter)
        self.released[shard_id] = time.monotonic()
        return counter


async def start(table: FakeLeaseTable, lease: float) -> tuple[LeaseCoordinator, dict[str, float]]:
    coordinator = LeaseCoordinator(
        table,  # type: ignore[arg-type]  # the fake has the methods the coordinator calls
        mapping="m",
        owner="me",
        failover_seconds=lease,
        clock=SystemClock(),
        metrics=Metrics(CollectorRegistry()).for_mapping("m"),
    )
    stopped: dict[str, float] = {}

    async def stop_shard(shard: str) -> None:
        stopped[shard] = time.monotonic()

    coordinator.stop_shard = stop_shard
    await coordinator.read()
    assert await coordinator.acquire(set(table.counters)) == set(table.counters)
    return coordinator, stopped


async def run_like_a_stream_source(
    coordinator: LeaseCoordinator, stopping: asyncio.Event, in_flight_done: asyncio.Event
) -> None:
    """What `StreamSource.run` does with the leases: the renew loop and the shard workers in one
    task group, then `release_all` once every worker has finished its in-flight batch."""

    async def in_flight_batch() -> None:
        await in_flight_done.wait()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(coordinator.renew_loop(stopping))
            group.create_task(in_flight_batch())
    finally:
        await coordinator.release_all()


async def test_leases_stay_renewed_while_in_flight_work_outlasts_the_lease_after_stopping() -> None:
    table = ReleasingTable(["s-0", "s-1"])
    coordinator, stopped = await start(table, SMALL_LEASE)
    stopping, in_flight_done = asyncio.Event(), asyncio.Event()
    source = asyncio.create_task(run_like_a_stream_source(coordinator, stopping, in_flight_done))
    try:
        await wait_until(lambda: len(table.good_renewals["s-0"]) >= 2, timeout=5, what="a renewal")
        stopping.set()  # SIGTERM: the batch in flight runs on for two whole leases
        stopped_at = time.monotonic()
        await wait_until(
            lambda: all(sum(t > stopped_at for t in table.good_renewals[s]) >= 6 for s in ("s-0", "s-1")),
            timeout=10,
            what="renewals for two lease periods after stopping",
        )
        assert time.monotonic() - stopped_at > SMALL_LEASE
        assert set(coordinator.held) == {"s-0", "s-1"}
        assert not stopped
        assert not table.released
    finally:
        in_flight_done.set()
        await asyncio.wait_for(source, timeout=5)
    # Released once the in-flight work was done, and renewed on time until then.
    assert set(table.released) == {"s-0", "s-1"}
    assert not coordinator.held
    assert coordinator.draining is None
    for shard in ("s-0", "s-1"):
        times = table.good_renewals[shard]
        assert all(t < table.released[shard] for t in times)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert max(gaps) < coordinator.timing.fence_after, (shard, gaps)


async def test_a_lease_that_cannot_be_renewed_while_draining_is_fenced_in_time() -> None:
    table = ReleasingTable(["s-0", "s-1"])
    coordinator, stopped = await start(table, SMALL_LEASE)
    stopping, in_flight_done = asyncio.Event(), asyncio.Event()
    source = asyncio.create_task(run_like_a_stream_source(coordinator, stopping, in_flight_done))
    try:
        await wait_until(lambda: len(table.good_renewals["s-1"]) >= 2, timeout=5, what="a renewal")
        stopping.set()
        table.hang.add("s-1")
        last_good = table.good_renewals["s-1"][-1]
        await wait_until(lambda: "s-1" in stopped, timeout=5, what="s-1 fenced while draining")
        assert stopped["s-1"] - last_good < SMALL_LEASE
        assert "s-1" not in coordinator.held
        assert "s-0" in coordinator.held
        assert "s-0" not in stopped
    finally:
        table.never.set()
        in_flight_done.set()
        await asyncio.wait_for(source, timeout=5)
    assert set(table.released) == {"s-0"}  # the fenced lease is no longer ours to release


async def test_release_all_gives_each_release_a_deadline_and_releases_the_others_meanwhile() -> None:
    lease = 4.0
    shards = ["s-0", "s-1", "s-2", "s-3"]
    table = ReleasingTable(shards)
    coordinator, _ = await start(table, lease)
    table.hang_release |= {"s-0", "s-1", "s-2"}
    began = time.monotonic()
    try:
        await asyncio.wait_for(coordinator.release_all(), timeout=3 * coordinator.timing.renew_timeout)
    finally:
        table.never.set()  # lets the hung requests of a build without deadlines end
    took = time.monotonic() - began
    # One deadline in all: the three hung releases ran at once, not one after another.
    assert took < 2 * coordinator.timing.renew_timeout, took
    assert set(table.released) == {"s-3"}
    assert table.released["s-3"] - began < coordinator.timing.renew_timeout
    assert not coordinator.held
