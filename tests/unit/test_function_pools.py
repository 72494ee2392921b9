"""The service's pools per declared function (DESIGN §1.5.1) across hot reloads."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from poller.config.functions import DeclaredFunction
from poller.core.clock import ManualClock
from poller.observability.function_metrics import FunctionMetrics
from poller.runtime.function_pools import FunctionPools


def pools(registry: CollectorRegistry) -> FunctionPools:
    return FunctionPools(
        clock=ManualClock(),
        idle_seconds=600,
        drain_seconds=1,
        metrics=FunctionMetrics(registry),
        region="us-east-1",
        account_id="123456789012",
        credentials_env={},
    )


async def test_a_changed_function_gets_a_new_pool_and_a_removed_one_leaves_no_series(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    directory = pools(registry)
    declared = DeclaredFunction("orders", "python3.11", "app.handler", tmp_path)
    directory.define({"orders": declared})
    first = directory.pool("orders")
    assert directory.pool("orders") is first  # kept while the definition stands
    directory.define(
        {"orders": DeclaredFunction("orders", "python3.11", "app.handler", tmp_path, timeout_seconds=9)}
    )
    second = directory.pool("orders")
    assert second is not first

    def series() -> float | None:
        return registry.get_sample_value("poller_function_cold_starts_total", {"function": "orders"})

    assert series() == 0
    directory.define({})  # removed by a reload
    await directory.aclose()
    assert series() is None
