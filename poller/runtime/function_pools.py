"""The service's execution-environment pools, one per declared function (DESIGN §1.5.1).

A pool is made when a mapping first invokes its function and lives until the service stops, so
warm environments survive a mapping's restart. A hot reload that changes or removes a function's
definition retires its pool: in-flight invocations finish within the drain budget, then its
environments stop; the next invocation cold-starts under the new definition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from poller.config.functions import DeclaredFunction
from poller.core.clock import Clock
from poller.functions.declared import definition_of
from poller.functions.pool import FunctionPool
from poller.observability.function_metrics import FunctionMetrics

log = structlog.get_logger("poller.functions")


class FunctionPools:
    def __init__(
        self,
        *,
        clock: Clock,
        idle_seconds: float,
        drain_seconds: float,
        metrics: FunctionMetrics,
        region: str,
        account_id: str,
        credentials_env: Mapping[str, str],
    ) -> None:
        self._clock = clock
        self._idle_seconds = idle_seconds
        self._drain_seconds = drain_seconds
        self._metrics = metrics
        self._region = region
        self._account_id = account_id
        self._credentials_env = dict(credentials_env)
        self._declared: Mapping[str, DeclaredFunction] = {}
        self._pools: dict[str, tuple[DeclaredFunction, FunctionPool]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    def define(self, functions: Mapping[str, DeclaredFunction]) -> None:
        """The functions as the mapping files declare them now; pools of changed ones retire."""
        self._declared = dict(functions)
        for name, (declared, _) in list(self._pools.items()):
            if self._declared.get(name) != declared:
                self._retire(name)

    def pool(self, function: str) -> FunctionPool:
        if self._closed:
            raise RuntimeError("the service's function pools are closed")
        declared = self._declared[function]  # the loader only lets a mapping name a declared function
        held = self._pools.get(function)
        if held is not None and held[0] == declared:
            return held[1]
        if held is not None:
            self._retire(function)
        pool = FunctionPool(
            definition_of(declared),
            clock=self._clock,
            idle_seconds=self._idle_seconds,
            metrics=self._metrics,
            region=self._region,
            account_id=self._account_id,
            credentials_env=self._credentials_env,
        )
        self._pools[function] = (declared, pool)
        return pool

    def _retire(self, function: str) -> None:
        _, pool = self._pools.pop(function)
        log.info("function_pool_retired", function=function)
        task = asyncio.get_running_loop().create_task(self._close(function, pool))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close(self, function: str, pool: FunctionPool) -> None:
        await pool.aclose(drain_seconds=self._drain_seconds)
        if function not in self._declared:  # removed, not replaced: its series would be ghosts
            self._metrics.forget(function)

    async def aclose(self) -> None:
        """Stop every environment: after the mappings drained, so nothing is in flight but what
        outran the drain budget (those invocations end as not invoked and are redelivered)."""
        self._closed = True
        pools = [pool for _, pool in self._pools.values()]
        self._pools.clear()
        async with asyncio.TaskGroup() as group:
            for pool in pools:
                group.create_task(pool.aclose(drain_seconds=0.0))
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
