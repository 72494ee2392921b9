"""Which shards run: the stream's shard list, their lineage and start positions, and (with several
replicas) the leases that say which are this replica's.

The scheduler lists the stream's shards and starts a worker for each shard whose parents are
finished (spec §5.2 resharding); it lists again every few seconds and whenever a shard ends. With
leases it also takes this replica's share each round, and stops a shard at once when its lease is
lost, before the worker could checkpoint again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from poller.core.shard_lineage import ShardInfo, open_at_enable, ready_to_start
from poller.errors import first_error
from poller.sources.streams.api import AfterSequence, AtTimestamp, Latest, StartAt, TrimHorizon
from poller.sources.streams.context import STORE_ERRORS, StreamContext
from poller.sources.streams.shard import ShardWorker
from poller.state.base import Checkpoint as StoredCheckpoint
from poller.state.dynamodb import LeaseLost
from poller.state.leases import LeaseCoordinator

LATEST_ANCHOR_MARGIN_SECONDS: Final = 1.0
"""Resuming a LATEST shard that delivered nothing yet starts this much before the enable time."""


class ShardScheduler:
    def __init__(
        self, context: StreamContext, *, leases: LeaseCoordinator | None, refresh_seconds: float
    ) -> None:
        self.context = context
        self.leases = leases
        # With leases, the taker runs at every scheduling round: twice per failover time.
        self.refresh_seconds = (
            refresh_seconds if leases is None else min(refresh_seconds, leases.failover_seconds / 2)
        )
        self.running: dict[str, asyncio.Task[None]] = {}
        self.changed = asyncio.Event()
        self.log = context.log

    async def run(self) -> None:
        context = self.context
        context.retention_seconds = await context.api.retention_seconds()
        listed = await context.api.list_shards()
        context.shards = {s.shard_id: s for s in listed}
        leases = self.leases
        first_starts: dict[str, StartAt] = {}
        if leases is None:
            stored = await context.store.all_for(context.mapping.name)
            finished = {shard for shard, cp in stored.items() if cp.shard_end}
            if not stored and context.mapping.starting_position == "LATEST":
                first_starts = await self._anchor_latest(listed, finished)
        else:
            finished = set()
            first = not await leases.read()
            latest = first and context.mapping.starting_position == "LATEST"
            await leases.ensure_rows(listed, anchor_at=context.clock.wall() if latest else None)
            leases.stop_shard = self._stop_shard
        context.status.running()
        self.log.info("mapping_started", shards=len(listed), finished_shards=len(finished))
        running = self.running
        try:
            async with asyncio.TaskGroup() as group:
                if leases is not None:
                    group.create_task(leases.renew_loop(context.stopping))
                while not context.stopping.is_set():
                    done = finished | leases.finished() if leases is not None else finished
                    ready = ready_to_start(listed, finished=done, running=running.keys())
                    if leases is not None:
                        allowed = await self._acquire(leases, listed, done)
                        ready = [shard for shard in ready if shard.shard_id in allowed]
                    for shard in ready:
                        start = first_starts.pop(shard.shard_id, None)
                        await self._start_shard(group, shard.shard_id, start, finished)
                    await self._wait_changed(self.refresh_seconds)
                    listed = await self._relist(listed)
                    if leases is not None and not context.stopping.is_set():
                        await self._refresh_leases(leases, listed)
        except ExceptionGroup as group_error:
            raise first_error(group_error) from group_error
        finally:
            if leases is not None:
                # Let go at once so peers take over now, not after the failover time.
                await leases.release_all()

    async def _refresh_leases(self, leases: LeaseCoordinator, listed: list[ShardInfo]) -> None:
        try:
            await leases.read()
            await leases.ensure_rows(listed, anchor_at=None)
        except STORE_ERRORS as exc:
            self._call_failed("lease_table_read_failed", exc)

    async def _acquire(self, leases: LeaseCoordinator, listed: list[ShardInfo], done: set[str]) -> set[str]:
        """The shards this replica may start now: none this pass if the lease table is unreachable."""
        # Workable: every unfinished shard whose parents are done, running or not.
        workable = {s.shard_id for s in ready_to_start(listed, finished=done, running=())}
        try:
            return await leases.acquire(workable)
        except STORE_ERRORS as exc:
            self._call_failed("lease_acquire_failed", exc)
            return set()

    async def _start_shard(
        self, group: asyncio.TaskGroup, shard_id: str, start: StartAt | None, finished: set[str]
    ) -> None:
        """Start a shard's worker (where its checkpoint says, unless `start` is given); a shard
        whose checkpoint cannot be read now waits for the next pass while the others run on."""
        try:
            start = start or await self._start_of(shard_id)
        except STORE_ERRORS as exc:
            self._call_failed("checkpoint_read_failed", exc, shard=shard_id)
            return
        if start is None:
            finished.add(shard_id)
            return
        work = self._run_worker(ShardWorker(self.context, shard_id, start, finished), self.running)
        self.running[shard_id] = group.create_task(work, name=f"shard:{shard_id}")

    def _call_failed(self, event: str, exc: Exception, **fields: str) -> None:
        """A scheduling call failed for now: counted and logged; the next pass tries again."""
        self.context.metrics.poll_errors.inc()
        self.log.warning(event, error=str(exc)[:300], **fields)

    async def _stop_shard(self, shard_id: str) -> None:
        """A lost lease: stop the shard's worker now, before it could checkpoint again."""
        task = self.running.get(shard_id)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _anchor_latest(self, listed: Sequence[ShardInfo], finished: set[str]) -> dict[str, StartAt]:
        """LATEST is the tip when the mapping is first enabled: remember that moment per open shard
        (a row without a sequence number), so a restart before a shard's first record resumes from
        then instead of from a later tip; closed shards hold only older records and are skipped."""
        store, name = self.context.store, self.context.mapping.name
        open_shards, closed_shards = open_at_enable(listed)
        for shard in closed_shards:
            await store.put(StoredCheckpoint(name, shard.shard_id, None, shard_end=True))
            finished.add(shard.shard_id)
        for shard in open_shards:
            await store.put(StoredCheckpoint(name, shard.shard_id, None))
        return {shard.shard_id: Latest() for shard in open_shards}

    async def _start_of(self, shard_id: str) -> StartAt | None:
        """Where a shard's reading begins: after its checkpoint, else from the StartingPosition;
        None when the shard is already finished."""
        mapping = self.context.mapping
        stored = await self.context.store.get(mapping.name, shard_id)
        if stored is not None:
            if stored.shard_end:
                return None
            if stored.sequence_number is not None:
                return AfterSequence(stored.sequence_number)
            return AtTimestamp(stored.updated_at_epoch - LATEST_ANCHOR_MARGIN_SECONDS)
        match mapping.starting_position:
            case "AT_TIMESTAMP":
                assert mapping.starting_position_timestamp is not None  # the loader requires it
                return AtTimestamp(mapping.starting_position_timestamp)
            case _:
                # A shard that appeared after the mapping was enabled (a reshard's child) holds
                # only newer records, so LATEST reads it from its beginning too.
                return TrimHorizon()

    async def _run_worker(self, worker: ShardWorker, running: dict[str, asyncio.Task[None]]) -> None:
        context = self.context
        try:
            await worker.run()
            if self.leases is not None and worker.shard_id in worker.finished:
                await self.leases.release(worker.shard_id)
        except* LeaseLost as lost:
            # Another replica holds the shard now; it resumes from the last checkpoint we wrote.
            self.log.warning("shard_stopped_lease_lost", shard=worker.shard_id, error=str(lost.exceptions[0]))
        finally:
            running.pop(worker.shard_id, None)
            # What its lanes still held is dropped with them (read again from the checkpoint).
            context.metrics.buffered_records.dec(worker.abandon())
            if worker.shard_id not in worker.finished:
                # No longer read here (stopped, or its lease moved): /status lists what this replica reads.
                context.status.positions.pop(worker.shard_id, None)
            context.forget_age(worker.shard_id)
            self.changed.set()

    async def _relist(self, current: list[ShardInfo]) -> list[ShardInfo]:
        context = self.context
        if context.stopping.is_set():
            return current
        try:
            listed = await context.api.list_shards()
        except (ClientError, BotoCoreError) as exc:
            context.metrics.poll_errors.inc()
            self.log.warning("list_shards_failed", error=str(exc)[:300])
            return current
        context.shards = {s.shard_id: s for s in listed}
        return listed

    async def _wait_changed(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self.changed.wait()
        except TimeoutError:
            pass
        self.changed.clear()
