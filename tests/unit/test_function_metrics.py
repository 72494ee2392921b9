"""The execution environments' metrics (DESIGN §1.7): labelled by function, bounded, forgettable."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from poller.observability.function_metrics import FunctionMetrics


def test_function_metrics_are_labelled_by_function_and_forgotten() -> None:
    registry = CollectorRegistry()
    metrics = FunctionMetrics(registry)
    bound = metrics.for_function("orders")
    bound.environments(idle=1, busy=2)
    bound.cold_start()
    bound.init_finished(0.2)
    bound.invocation_finished(seconds=0.05, error_type="Sandbox.Timedout", max_memory_bytes=1234)
    value = registry.get_sample_value
    assert value("poller_function_environments", {"function": "orders", "state": "busy"}) == 2
    assert value("poller_function_cold_starts_total", {"function": "orders"}) == 1
    assert value("poller_function_init_duration_seconds_count", {"function": "orders"}) == 1
    assert value("poller_function_duration_seconds_count", {"function": "orders"}) == 1
    assert (
        value("poller_function_errors_total", {"function": "orders", "error_type": "Sandbox.Timedout"}) == 1
    )
    assert value("poller_function_max_memory_bytes", {"function": "orders"}) == 1234
    metrics.forget("orders")
    assert (
        value("poller_function_errors_total", {"function": "orders", "error_type": "Sandbox.Timedout"})
        is None
    )
    assert value("poller_function_environments", {"function": "orders", "state": "busy"}) is None


def test_a_retiring_pool_and_its_replacement_add_up_instead_of_overwriting() -> None:
    """A hot reload that changes a function drains the old pool beside the new one: the gauge must
    show both, and the old one's close must not wipe the new one's environments."""
    registry = CollectorRegistry()
    metrics = FunctionMetrics(registry)
    old, new = metrics.for_function("orders"), metrics.for_function("orders")
    old.environments(idle=0, busy=2)
    new.environments(idle=1, busy=1)

    def busy() -> float | None:
        return registry.get_sample_value(
            "poller_function_environments", {"function": "orders", "state": "busy"}
        )

    assert busy() == 3
    old.environments(idle=0, busy=0)  # the old pool closed
    assert busy() == 1
    assert (
        registry.get_sample_value("poller_function_environments", {"function": "orders", "state": "idle"})
        == 1
    )
