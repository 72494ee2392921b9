"""The state backend of DESIGN §1.3, opened once per service: where stream checkpoints live and,
for `dynamodb`, the shard leases that let several replicas share a stream."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from poller.config import Settings
from poller.core.clock import Clock
from poller.observability.metrics import MappingMetrics
from poller.observability.status import MappingStatus
from poller.state import CheckpointStore, SqliteCheckpointStore
from poller.state.dynamodb import LeaseTable
from poller.state.leases import LeaseCoordinator, LeaseStore, replica_id

log = structlog.get_logger("poller.state")


@dataclass
class StateBackend:
    sqlite: SqliteCheckpointStore | None = None
    leases: LeaseTable | None = None
    owner: str = ""
    lease_seconds: float = 10.0

    @classmethod
    async def open(
        cls, settings: Settings, base_dir: Path, session: AioSession, stack: AsyncExitStack
    ) -> StateBackend:
        state = settings.state
        if state.backend == "sqlite":
            path = state.path if state.path.is_absolute() else base_dir / state.path
            store = await SqliteCheckpointStore.open(path)
            stack.push_async_callback(store.aclose)
            log.info("checkpoint_store_opened", backend="sqlite", path=str(path))
            return cls(sqlite=store)
        # The client joins the service's stack only once the table answers: a failed check is
        # retried by every stream mapping's restart, and each attempt would leave a client open.
        async with AsyncExitStack() as attempt:
            client = await attempt.enter_async_context(
                session.create_client(
                    "dynamodb",
                    region_name=settings.aws.region,
                    endpoint_url=settings.aws.endpoint_url,
                    config=AioConfig(
                        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10
                    ),
                )
            )
            table = LeaseTable(client, state.table)
            await table.ensure()
            stack.push_async_exit(attempt.pop_all())
        owner = replica_id()
        log.info("lease_table_opened", backend="dynamodb", table=state.table, owner=owner)
        return cls(leases=table, owner=owner, lease_seconds=state.lease_seconds)

    def for_mapping(
        self, mapping: str, *, clock: Clock, metrics: MappingMetrics, status: MappingStatus | None = None
    ) -> tuple[CheckpointStore, LeaseCoordinator | None]:
        """The checkpoint store a stream mapping writes to, and its lease coordinator if leased."""
        if self.sqlite is not None:
            return self.sqlite, None
        assert self.leases is not None
        coordinator = LeaseCoordinator(
            self.leases,
            mapping=mapping,
            owner=self.owner,
            failover_seconds=self.lease_seconds,
            clock=clock,
            metrics=metrics,
        )
        coordinator.status = status
        return LeaseStore(coordinator), coordinator
