"""Lease renewal deadlines and fencing (ops anchors §3.2): a replica that cannot renew a lease in
time stops the shard before any other replica may take it, and one slow renewal never delays the
others."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict

import pytest
from botocore.exceptions import EndpointConnectionError
from prometheus_client import CollectorRegistry

from poller.core.clock import ManualClock, SystemClock
from poller.core.lease_balance import LeaseRow
from poller.core.lease_fencing import LeaseTiming
from poller.observability.metrics import Metrics
from poller.state.dynamodb import LeaseItem, LeaseLost
from poller.state.leases import LeaseCoordinator
from tests.waiting import wait_until

LEASE = 10.0
TIMING = LeaseTiming(LEASE)


# -- the pure timing ---------------------------------------------------------------------------


def test_a_fresh_lease_waits_and_is_renewed_a_third_of_the_lease_after_its_last_write() -> None:
    step = TIMING.step(100.0, confirmed_at=100.0)
    assert step.action == "wait"
    assert step.wake_at == pytest.approx(100.0 + LEASE / 3)
    assert TIMING.step(100.0 + LEASE / 3, confirmed_at=100.0).action == "renew"


def test_a_renewal_deadline_always_ends_at_or_before_the_fence_and_the_fence_before_the_lease() -> None:
    confirmed = 50.0
    for tenth in range(int(LEASE * 10)):
        now = confirmed + tenth / 10
        step = TIMING.step(now, confirmed_at=confirmed, attempted_at=confirmed)
        if step.action == "renew":
            assert 0 < step.timeout <= TIMING.renew_timeout
            assert now + step.timeout <= TIMING.fence_at(confirmed) < confirmed + LEASE
        assert TIMING.safe(now, confirmed) == (step.action != "fence")
    assert TIMING.renew_timeout < TIMING.renew_every  # one round ends before the next is due


@pytest.mark.parametrize("hang", [True, False], ids=["renewals-hang", "renewals-fail-fast"])
def test_failing_renewals_fence_the_shard_before_another_replica_may_take_it(hang: bool) -> None:
    """Driven by an injected clock: every renewal after the last good one hangs until its deadline
    (or fails at once); the shard is fenced a margin before `lease_seconds` has passed."""
    clock = ManualClock()
    confirmed = clock.monotonic()
    attempted: float | None = None
    tries = 0
    while True:
        step = TIMING.step(clock.monotonic(), confirmed_at=confirmed, attempted_at=attempted)
        if step.action == "fence":
            break
        if step.action == "renew":
            attempted = clock.monotonic()
            tries += 1
            clock.advance(step.timeout if hang else 0.0)
        else:
            clock.advance(step.wake_at - clock.monotonic())
    assert tries >= 2  # a single failed renewal is retried, not taken as the end
    assert clock.monotonic() - confirmed == pytest.approx(TIMING.fence_after)
    assert LEASE - TIMING.fence_after >= LEASE / 5  # room to stop the shard, and clock-rate skew


def test_a_failed_renewal_is_retried_soon_and_a_good_one_restarts_the_period() -> None:
    confirmed, failed_at = 0.0, LEASE / 3
    step = TIMING.step(failed_at + 0.01, confirmed_at=confirmed, attempted_at=failed_at)
    assert step.action == "wait"
    assert step.wake_at == pytest.approx(failed_at + TIMING.retry_after)
    assert step.wake_at < failed_at + TIMING.renew_every
    renewed = failed_at + TIMING.retry_after
    assert TIMING.step(renewed + 0.01, confirmed_at=renewed, attempted_at=renewed).action == "wait"
    assert TIMING.safe(confirmed + LEASE, renewed)


def test_a_lease_past_its_fence_is_never_renewed_first() -> None:
    assert TIMING.step(TIMING.fence_after, confirmed_at=0.0, attempted_at=0.0).action == "fence"
    assert not TIMING.safe(TIMING.fence_after, 0.0)


# -- the coordinator against a table whose renewals for one shard never answer ------------------

SMALL_LEASE = 1.5


class FakeLeaseTable:
    """In-memory lease rows with the conditional-write rules of `LeaseTable`."""

    def __init__(self, shards: list[str]) -> None:
        self.counters = dict.fromkeys(shards, 0)
        self.owners: dict[str, str | None] = dict.fromkeys(shards)
        self.good_renewals: dict[str, list[float]] = defaultdict(list)
        """When each successful renewal (or the take) started, on the monotonic clock."""
        self.hang: set[str] = set()
        self.fail: set[str] = set()
        self.never = asyncio.Event()

    def _item(self, shard: str) -> LeaseItem:
        return LeaseItem(
            "m", shard, self.owners[shard], self.counters[shard], None, None, (), None, None, 0.0
        )

    async def items(self, mapping: str) -> list[LeaseItem]:
        return [self._item(shard) for shard in self.counters]

    async def item(self, mapping: str, shard_id: str) -> LeaseItem | None:
        return self._item(shard_id)

    def _bump(self, shard: str, seen: int) -> int:
        if self.counters[shard] != seen:
            raise LeaseLost(shard)
        self.counters[shard] += 1
        return self.counters[shard]

    async def take(self, lease: LeaseRow, mapping: str, owner: str, *, steal: bool = False) -> int:
        self.good_renewals[lease.shard_id].append(time.monotonic())
        self.owners[lease.shard_id] = owner
        return self._bump(lease.shard_id, lease.counter)

    async def renew(self, mapping: str, shard_id: str, owner: str, counter: int) -> int:
        started = time.monotonic()
        if shard_id in self.hang:
            await self.never.wait()  # a request that never answers (botocore would retry for ~30 s)
        if shard_id in self.fail:
            raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
        counter = self._bump(shard_id, counter)
        self.good_renewals[shard_id].append(started)
        return counter

    async def checkpoint(self, *args: object) -> int:
        raise AssertionError("a fenced shard must not checkpoint")

    async def let_go(self, mapping: str, shard_id: str, previous_owner: str) -> None:
        return None

    async def release(self, mapping: str, shard_id: str, owner: str, counter: int) -> int:
        return self._bump(shard_id, counter)


async def start(table: FakeLeaseTable) -> tuple[LeaseCoordinator, Metrics, dict[str, float]]:
    metrics = Metrics(CollectorRegistry())
    coordinator = LeaseCoordinator(
        table,  # type: ignore[arg-type]  # the fake has the methods the coordinator calls
        mapping="m",
        owner="me",
        failover_seconds=SMALL_LEASE,
        clock=SystemClock(),
        metrics=metrics.for_mapping("m"),
    )
    stopped: dict[str, float] = {}

    async def stop_shard(shard: str) -> None:
        stopped[shard] = time.monotonic()

    coordinator.stop_shard = stop_shard
    await coordinator.read()
    assert await coordinator.acquire(set(table.counters)) == set(table.counters)
    return coordinator, metrics, stopped


def renewal_failures(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("poller_lease_renewal_failures_total", {"mapping": "m"})
    return value or 0.0


@pytest.mark.parametrize("fault", ["hang", "fail"])
async def test_a_renewal_that_never_answers_fences_its_shard_in_time_and_the_others_stay_renewed(
    fault: str,
) -> None:
    table = FakeLeaseTable(["s-0", "s-1", "s-2"])
    coordinator, metrics, stopped = await start(table)
    stopping = asyncio.Event()
    loop = asyncio.create_task(coordinator.renew_loop(stopping))
    try:
        # s-1 renews once, then its table requests stop answering.
        await wait_until(lambda: len(table.good_renewals["s-1"]) >= 2, timeout=5, what="a good renewal")
        (table.hang if fault == "hang" else table.fail).add("s-1")
        last_good = table.good_renewals["s-1"][-1]
        await wait_until(lambda: "s-1" in stopped, timeout=5, what="s-1 fenced")
        # Fenced before another replica could consider the lease expired.
        assert stopped["s-1"] - last_good < SMALL_LEASE
        assert "s-1" not in coordinator.held
        with pytest.raises(LeaseLost):
            await coordinator.checkpoint("s-1", "1", False)
        assert renewal_failures(metrics) >= 1
        # The other leases kept being renewed on time throughout, and still are.
        after = {shard: len(table.good_renewals[shard]) for shard in ("s-0", "s-2")}
        await wait_until(
            lambda: all(len(table.good_renewals[shard]) >= after[shard] + 2 for shard in after),
            timeout=5,
            what="the other leases renewed after the fence",
        )
    finally:
        stopping.set()
        table.never.set()
        await asyncio.wait_for(loop, timeout=5)
    for shard in ("s-0", "s-2"):
        assert shard in coordinator.held
        assert shard not in stopped
        times = table.good_renewals[shard]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert max(gaps) < coordinator.timing.fence_after, (shard, gaps)
