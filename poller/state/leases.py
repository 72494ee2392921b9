"""Shard leases for one stream mapping: which shards this replica may run (ops anchors §3).

The coordinator keeps a lease row for every shard of the stream, takes unowned and expired leases
up to this replica's fair share and steals at most one at a time from the most loaded replica
(`poller.core.lease_balance`), renews what it holds on its own task so a slow handler never loses
a lease (also while a stopping source drains, until it releases them), and reports a lost lease at
once so the shard stops before it could checkpoint again.
Renewals run all at once, each with a deadline; a lease not confirmed for most of the lease period
is fenced: its shard stops before any other replica could take it (`poller.core.lease_fencing`).

A steal is a handoff: the thief writes itself as owner and the victim as `checkpointOwner`; the
victim notices on its next renewal, stops the shard, and clears `checkpointOwner`; only then (or
after the failover time, if the victim is gone) does the thief start reading. So a shard is never
run by two replicas at once. Checkpoints go through the same conditional writes (`LeaseStore`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from poller.core.clock import Clock
from poller.core.lease_balance import ExpiryWatch, LeaseRow, plan_takes
from poller.core.lease_fencing import LeaseTiming, Step
from poller.core.shard_lineage import ShardInfo
from poller.observability.metrics import MappingMetrics
from poller.observability.status import StatusReport
from poller.state.base import Checkpoint
from poller.state.dynamodb import LeaseItem, LeaseLost, LeaseTable, newer


def replica_id() -> str:
    """Unique per process: host, pid and a random suffix (a restarted pod is a new replica)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class Held:
    counter: int
    confirmed_at: float
    """When the last successful write to the lease (take, renew, checkpoint) started."""
    ready: bool
    """False while a stolen lease waits for its previous owner to let go."""
    taken_at: float
    attempted_at: float | None = None
    """When the last renewal attempt started, successful or not."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sequence_number: str | None = None


StopShard = Callable[[str], Awaitable[None]]
"""Stops a shard's worker and returns once it has stopped (the source's, given at start)."""


class LeaseCoordinator:
    def __init__(
        self,
        table: LeaseTable,
        *,
        mapping: str,
        owner: str,
        failover_seconds: float,
        clock: Clock,
        metrics: MappingMetrics,
    ) -> None:
        self.table = table
        self.mapping = mapping
        self.owner = owner
        self.failover_seconds = failover_seconds
        self.timing = LeaseTiming(failover_seconds)
        self.clock = clock
        self.metrics = metrics
        self.held: dict[str, Held] = {}
        self.watch = ExpiryWatch()
        self.items: dict[str, LeaseItem] = {}
        self.lost: set[str] = set()
        self.changed = asyncio.Event()
        self.released = asyncio.Event()
        """Set by `release_all`: renewals that outlived `renew_loop` (a stopping source) end."""
        self.draining: asyncio.Task[None] | None = None
        self.stop_shard: StopShard | None = None
        self.log = structlog.get_logger("poller.leases").bind(mapping=mapping, owner=owner)
        self.status: StatusReport | None = None

    def _publish_held(self) -> None:
        self.metrics.leases_held.set(len(self.held))
        if self.status is not None:
            self.status.leases = {"Owner": self.owner, "Held": sorted(self.held)}

    # -- the table, as this replica sees it ----------------------------------------------------

    async def read(self) -> list[LeaseItem]:
        items = await self.table.items(self.mapping)
        self.items = {item.shard_id: item for item in items}
        self.watch.observe([item.row() for item in items], self.clock.monotonic())
        return items

    def finished(self) -> set[str]:
        return {shard for shard, item in self.items.items() if item.finished}

    async def ensure_rows(self, shards: Sequence[ShardInfo], *, anchor_at: float | None) -> None:
        """A row for every listed shard; `anchor_at` marks open shards of a first LATEST start."""
        for shard in shards:
            if shard.shard_id in self.items:
                continue
            if anchor_at is not None and shard.closed:
                # A first LATEST start skips closed shards: all their records predate it.
                await self.table.create(self.mapping, shard.shard_id, shard.parent_ids, finished=True)
                continue
            await self.table.create(self.mapping, shard.shard_id, shard.parent_ids, enabled_at=anchor_at)
        await self.read()

    # -- taking --------------------------------------------------------------------------------

    async def acquire(self, eligible: set[str]) -> set[str]:
        """Take what this replica's share calls for; returns the held shards that may run now."""
        now = self.clock.monotonic()
        rows = [item.row() for item in self.items.values()]
        plan = plan_takes(
            rows,
            me=self.owner,
            watch=self.watch,
            now=now,
            failover_seconds=self.failover_seconds,
            eligible=eligible,
        )
        for row in plan.take:
            await self._take(row, steal=False)
        if plan.steal is not None:
            await self._take(plan.steal, steal=True)
        for shard, held in self.held.items():
            if not held.ready:
                item = self.items.get(shard)
                handed_over = item is not None and item.handoff_from is None
                if handed_over or now - held.taken_at > self.failover_seconds:
                    held.ready = True
        self._publish_held()
        # A take that answered late may already be near its fence: the renew loop drops it.
        now = self.clock.monotonic()
        return {
            shard
            for shard, held in self.held.items()
            if held.ready and self.timing.safe(now, held.confirmed_at)
        }

    async def _take(self, row: LeaseRow, *, steal: bool) -> None:
        started = self.clock.monotonic()
        try:
            counter = await self.table.take(row, self.mapping, self.owner, steal=steal)
        except LeaseLost:
            return  # someone else was quicker; the next round sees it
        now = self.clock.monotonic()
        stolen = steal and row.owner is not None
        item = self.items.get(row.shard_id)
        self.held[row.shard_id] = Held(
            counter=counter,
            confirmed_at=started,
            ready=not stolen,
            taken_at=now,
            sequence_number=item.sequence_number if item is not None else None,
        )
        self.metrics.lease_takes["steal" if stolen else "take"].inc()
        self.log.info("lease_taken", shard=row.shard_id, steal=stolen, previous_owner=row.owner)

    # -- holding -------------------------------------------------------------------------------

    async def renew_loop(self, stopping: asyncio.Event) -> None:
        """Renew every held lease every lease/3, all at once and each within a deadline, on this
        task only (never on the batch path); fence the shards whose leases are no longer sure.

        Returns once `stopping` is set, so the source's task group can end; but a stopping source
        still finishes its in-flight batches (for up to the drain budget, longer than a lease)
        before `release_all`, so renewing and fencing carry on, on a task of the coordinator's own,
        until then: otherwise a peer could take a shard this replica is still invoking."""
        self.released.clear()
        await self._renew_until(stopping)
        if self.held and not self.released.is_set():
            self.draining = asyncio.create_task(
                self._renew_until(self.released), name=f"lease-renewals-draining:{self.mapping}"
            )

    async def _renew_until(self, done: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as stops:
            while not done.is_set():
                now = self.clock.monotonic()
                due: list[tuple[str, float]] = []
                for shard, held in list(self.held.items()):
                    step = self._step(held, now)
                    if step.action == "fence":
                        self._fence(shard, stops)
                    elif step.action == "renew":
                        due.append((shard, step.timeout))
                if due:
                    # One hung renewal must not delay the others: each has its own deadline, and the
                    # round ends by the latest of them, well before the next round is due.
                    async with asyncio.TaskGroup() as renewals:
                        for shard, timeout in due:
                            renewals.create_task(self._renew(shard, timeout, stops))
                await self._sleep_until(self._next_look(), done)

    def _step(self, held: Held, now: float) -> Step:
        return self.timing.step(now, confirmed_at=held.confirmed_at, attempted_at=held.attempted_at)

    def _next_look(self) -> float:
        now = self.clock.monotonic()
        looks = [self._step(held, now).wake_at for held in self.held.values()]
        # A lease taken meanwhile is due a whole renewal interval after its take: no need to wake.
        return min(looks, default=now + self.timing.renew_every)

    async def _sleep_until(self, wake_at: float, done: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(max(0.0, wake_at - self.clock.monotonic())):
                await done.wait()
        except TimeoutError:
            pass

    async def _renew(self, shard: str, timeout: float, stops: asyncio.TaskGroup) -> None:
        held = self.held.get(shard)
        if held is None:
            return
        started = self.clock.monotonic()
        held.attempted_at = started
        try:
            # The deadline covers waiting for a checkpoint holding the lock and the client's retries.
            async with asyncio.timeout(timeout), held.lock:
                held.counter = await self.table.renew(self.mapping, shard, self.owner, held.counter)
                held.confirmed_at = max(held.confirmed_at, started)
                return
        except LeaseLost:
            pass
        except (ClientError, BotoCoreError, TimeoutError) as exc:
            self.metrics.lease_renewal_failures.inc()
            late = isinstance(exc, TimeoutError)
            self.log.warning("lease_renew_failed", shard=shard, late=late, error=str(exc)[:200])
            # Keep working only while no other replica could have taken the lease yet.
            if self.timing.safe(self.clock.monotonic(), held.confirmed_at):
                return
        if self.held.get(shard) is held:  # not released, or lost and taken anew, meanwhile
            self._fence(shard, stops)

    def _fence(self, shard: str, stops: asyncio.TaskGroup) -> None:
        """Stop counting the lease as held now (no checkpoint passes from here on), then stop its
        shard on a task of its own, so stopping never holds up the renewals of the other leases."""
        if self.held.pop(shard, None) is None:
            return
        self.log.warning("lease_lost", shard=shard)
        self._publish_held()
        stops.create_task(self._stopped(shard), name=f"lease-lost:{shard}")

    async def _stopped(self, shard: str) -> None:
        if self.stop_shard is not None:
            await self.stop_shard(shard)
        # If the lease was stolen from us, say we have stopped so the thief may start now.
        try:
            async with asyncio.timeout(self.timing.renew_timeout):
                item = await self.table.item(self.mapping, shard)
                if item is not None and item.handoff_from == self.owner:
                    await self.table.let_go(self.mapping, shard, self.owner)
        except (LeaseLost, ClientError, BotoCoreError, TimeoutError) as exc:
            self.log.info("lease_handoff_not_acknowledged", shard=shard, error=str(exc)[:200])
        self.changed.set()

    async def checkpoint(self, shard: str, sequence_number: str | None, shard_end: bool) -> None:
        """Write a checkpoint under the lease; raises LeaseLost (and stops the shard) if lost."""
        held = self.held.get(shard)
        if held is None:
            raise LeaseLost(f"{self.mapping}/{shard}: not held by {self.owner}")
        async with held.lock:
            if not shard_end and not newer(sequence_number, held.sequence_number):
                return
            started = self.clock.monotonic()
            try:
                held.counter = await self.table.checkpoint(
                    self.mapping, shard, self.owner, held.counter, sequence_number, shard_end
                )
                held.sequence_number = sequence_number or held.sequence_number
                held.confirmed_at = max(held.confirmed_at, started)
            except LeaseLost:
                self.held.pop(shard, None)
                self.changed.set()
                raise

    async def release(self, shard: str) -> None:
        held = self.held.pop(shard, None)
        if held is None:
            return
        try:
            # The deadline covers waiting for a checkpoint holding the lock and the client's retries;
            # a release not confirmed in time only makes peers wait for the failover time.
            async with asyncio.timeout(self.timing.renew_timeout), held.lock:
                await self.table.release(self.mapping, shard, self.owner, held.counter)
            self.log.info("lease_released", shard=shard)
        except (LeaseLost, ClientError, BotoCoreError, TimeoutError) as exc:
            late = isinstance(exc, TimeoutError)
            self.log.info("lease_release_failed", shard=shard, late=late, error=str(exc)[:200])
        self._publish_held()

    async def release_all(self) -> None:
        """Let go of every held lease, all at once and each within a deadline, so a slow table
        holds up a shutdown by one deadline at most, not by one per lease."""
        self.released.set()
        await self._end_draining()
        async with asyncio.TaskGroup() as releases:
            for shard in list(self.held):
                releases.create_task(self.release(shard), name=f"lease-release:{shard}")

    async def _end_draining(self) -> None:
        """Stop the renewals that outlived `renew_loop`. A round under way ends within its renewal
        deadline: awaited rather than cut short, so the release names the counter it wrote."""
        task, self.draining = self.draining, None
        if task is None:
            return
        _, late = await asyncio.wait({task}, timeout=self.timing.renew_timeout)
        if late:
            task.cancel()
            await asyncio.wait({task})
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.log.error("lease_renewals_failed", error=repr(error)[:300])


class LeaseStore:
    """The `CheckpointStore` a stream source writes through in lease mode: reads from the table,
    writes only under a held lease."""

    def __init__(self, coordinator: LeaseCoordinator) -> None:
        self.coordinator = coordinator

    async def get(self, mapping: str, shard_id: str) -> Checkpoint | None:
        item = await self.coordinator.table.item(mapping, shard_id)
        if item is None:
            return None
        if item.finished or item.sequence_number is not None:
            return item.as_checkpoint()
        if item.enabled_at is not None:
            # The LATEST anchor: nothing processed yet, resume from when the mapping was enabled.
            return Checkpoint(mapping, shard_id, None, False, item.enabled_at)
        return None

    async def all_for(self, mapping: str) -> dict[str, Checkpoint]:
        items = await self.coordinator.table.items(mapping)
        return {i.shard_id: i.as_checkpoint() for i in items if i.finished or i.sequence_number is not None}

    async def put(self, checkpoint: Checkpoint) -> None:
        await self.coordinator.checkpoint(
            checkpoint.shard_id, checkpoint.sequence_number, checkpoint.shard_end
        )

    async def delete_mapping(self, mapping: str) -> int:
        return await self.coordinator.table.delete_mapping(mapping)

    async def aclose(self) -> None:
        return None
