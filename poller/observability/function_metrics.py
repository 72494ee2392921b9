"""The execution environments' metrics (DESIGN §1.7): labelled by `function`, never by mapping.

Several mappings may share a function and its environments, so these series belong to the function.
`error_type` takes only the closed set of runtime and platform error types the environments report
(handler exception class names fold into `Runtime.Unknown`), so the label stays bounded.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ENVIRONMENT_STATES: Final = ("idle", "busy")
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
INIT_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15)


class FunctionMetrics:
    """The function_* families, registered once on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        f = ("function",)
        self.environments = Gauge(
            "poller_function_environments",
            "Execution environments of the function, by state (starting ones count as busy)",
            (*f, "state"),
            registry=registry,
        )
        self.cold_starts = Counter(
            "poller_function_cold_starts_total",
            "Execution environments started (Init phases)",
            f,
            registry=registry,
        )
        self.init_duration = Histogram(
            "poller_function_init_duration_seconds",
            "Time from starting the runtime process to its first request for work",
            f,
            registry=registry,
            buckets=INIT_BUCKETS,
        )
        self.duration = Histogram(
            "poller_function_duration_seconds",
            "Invoke phase duration, as platform.report's durationMs",
            f,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.errors = Counter(
            "poller_function_errors_total",
            "Failed invocations by error type",
            (*f, "error_type"),
            registry=registry,
        )
        self.max_memory = Gauge(
            "poller_function_max_memory_bytes",
            "Peak resident memory of the environment in the last platform.report",
            f,
            registry=registry,
        )
        self._error_types: dict[str, set[str]] = {}

    def for_function(self, function: str) -> BoundFunctionMetrics:
        return BoundFunctionMetrics(self, function)

    def count_error(self, function: str, error_type: str) -> None:
        self.errors.labels(function, error_type).inc()
        self._error_types.setdefault(function, set()).add(error_type)

    def forget(self, function: str) -> None:
        """Drop a removed function's series so /metrics does not report ghosts."""
        for family in (self.cold_starts, self.init_duration, self.duration, self.max_memory):
            with suppress(KeyError):
                family.remove(function)
        for state in ENVIRONMENT_STATES:
            with suppress(KeyError):
                self.environments.remove(function, state)
        for error_type in self._error_types.pop(function, set()):
            with suppress(KeyError):
                self.errors.remove(function, error_type)


class BoundFunctionMetrics:
    """The families with `function` filled in, each series looked up once (a `labels()` call takes
    a lock and builds a key; an invocation writes several). One per pool: the environments gauge is
    moved by what this pool's counts changed, so while a hot reload's retiring pool drains beside
    its replacement the two add up instead of overwriting each other."""

    def __init__(self, metrics: FunctionMetrics, function: str) -> None:
        self._m = metrics
        self._f = function
        self._idle = metrics.environments.labels(function, "idle")
        self._busy = metrics.environments.labels(function, "busy")
        self._published = (0, 0)
        self._cold_starts = metrics.cold_starts.labels(function)
        self._init = metrics.init_duration.labels(function)
        self._duration = metrics.duration.labels(function)
        self._max_memory = metrics.max_memory.labels(function)

    def environments(self, *, idle: int, busy: int) -> None:
        was_idle, was_busy = self._published
        self._idle.inc(idle - was_idle)
        self._busy.inc(busy - was_busy)
        self._published = (idle, busy)

    def cold_start(self) -> None:
        self._cold_starts.inc()

    def init_finished(self, seconds: float) -> None:
        self._init.observe(seconds)

    def invocation_finished(self, *, seconds: float, error_type: str | None, max_memory_bytes: int) -> None:
        self._duration.observe(seconds)
        if error_type is not None:
            self._m.count_error(self._f, error_type)
        self._max_memory.set(max_memory_bytes)
