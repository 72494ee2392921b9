"""What every benchmark shares: results and goals, the engine run in-process, process counters."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
from prometheus_client import CollectorRegistry

from bench.servers import ACCOUNT, REGION, free_port

SIDES = frozenset(os.environ.get("BENCH_SIDES", "raw,engine,floor").split(","))
"""Which sides a throughput run measures (`bench/run --sides engine` to profile the engine alone)."""

GoalKind = Literal["ratio_at_least", "added_at_most", "at_most", "info"]


@dataclass
class Result:
    """One output line: `<name>: engine=<x> ceiling=<y> ratio=<x/y> unit=<u>` and a verdict."""

    name: str
    engine: float
    ceiling: float
    unit: str
    goal: GoalKind = "info"
    threshold: float = 0.0
    aim: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.engine / self.ceiling if self.ceiling else float("inf")

    @property
    def added(self) -> float:
        return self.engine - self.ceiling

    def passed(self) -> bool | None:
        if math.isnan(self.engine) or math.isnan(self.ceiling):
            return None  # a side was left out (`--sides`)
        match self.goal:
            case "ratio_at_least":
                return self.ratio >= self.threshold
            case "added_at_most":
                return self.added <= self.threshold
            case "at_most":
                return self.engine <= self.threshold
            case _:
                return None

    def goal_text(self) -> str:
        aim = f" (aim {self.aim:g})" if self.aim is not None else ""
        match self.goal:
            case "ratio_at_least":
                return f"ratio {self.ratio:.2f} >= {self.threshold:g}{aim}"
            case "added_at_most":
                return f"added {self.added:.1f} {self.unit} <= {self.threshold:g} {self.unit}"
            case "at_most":
                return f"engine {_fmt(self.engine)} {self.unit} <= {self.threshold:g} {self.unit}"
            case _:
                return "no goal (for information)"

    def line(self) -> str:
        extras = "".join(f" {key}={_fmt(value)}" for key, value in self.extras.items())
        return (
            f"{self.name}: engine={_fmt(self.engine)} ceiling={_fmt(self.ceiling)} "
            f"ratio={self.ratio:.3f} unit={self.unit}{extras}"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(**data)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}" if value else "0"
    return str(value)


def unmeasured(side: str) -> bool:
    """Whether `side` ("raw", "engine" or "floor") is left out of this run (its figure is then NaN)."""
    return side not in SIDES


# -- the engine, in-process --------------------------------------------------------------------


class LogProbe:
    """A structlog processor that stamps when named events are first logged (e.g. a Kafka
    mapping's `partitions_assigned`), so a benchmark can start its clock where the raw client's does."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.first_cpu: dict[str, float] = {}
        """This process's CPU seconds at the same moments."""
        self.counts: dict[str, int] = {}

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        name = event.get("event")
        if isinstance(name, str):
            if name not in self.first:
                self.first[name] = time.perf_counter()
                self.first_cpu[name] = cpu_seconds()
            self.counts[name] = self.counts.get(name, 0) + 1
        return event

    def forget(self, name: str) -> None:
        self.first.pop(name, None)
        self.first_cpu.pop(name, None)
        self.counts.pop(name, None)


PROBE = LogProbe()


def configure_engine_logging(level: str = "info") -> None:
    """poller's own logging (JSON lines, one per batch attempt, to this process's stdout, which the
    runner sends to a file), with the probe in front."""
    from poller.observability.logging import configure_logging

    configure_logging("json", level)
    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[PROBE, *processors])


@dataclass(frozen=True)
class Measured:
    """One side of a throughput run: records per second, and CPU microseconds per record (this
    process, every thread) over the same window."""

    rate: float
    cpu_us: float
    max_gap_s: float = math.nan
    """Streams: the longest pause between two invocations (did idle pacing cut in?)."""
    details: dict[str, float] = field(default_factory=dict)
    """Further figures of this side, printed as `<side>_<key>=<value>`."""

    @classmethod
    def of(
        cls, count: int, wall: float, cpu: float, max_gap_s: float = math.nan, **details: float
    ) -> Measured:
        return cls(count / wall, cpu * 1e6 / count, max_gap_s, details)


NOT_MEASURED = Measured(math.nan, math.nan)


async def best_of(
    rounds: int,
    raw: Callable[[int], Awaitable[Measured]],
    engine: Callable[[int], Awaitable[Measured]],
) -> tuple[Measured, Measured]:
    """Alternate raw and engine `rounds` times; the best round of each (the machine is shared, so a
    slow round is more often someone else's load than ours)."""
    raws: list[Measured] = []
    engines: list[Measured] = []
    for index in range(rounds):
        if not unmeasured("raw"):
            raws.append(await raw(index))
        if not unmeasured("engine"):
            engines.append(await engine(index))
    return _best(raws), _best(engines)


def _best(measured: list[Measured]) -> Measured:
    return max(measured, key=lambda m: m.rate) if measured else NOT_MEASURED


@dataclass
class EngineRun:
    service: Any
    registry: CollectorRegistry
    task: asyncio.Task[int]

    def metric(self, name: str, **labels: str) -> float:
        return float(self.registry.get_sample_value(name, labels) or 0.0)

    def status(self, mapping: str) -> Any:
        return self.service.status.mappings.get(mapping)


def write_config(
    workdir: Path,
    mappings: list[dict[str, Any]],
    *,
    endpoint: str | None,
    kafka: dict[str, Any] | None,
    drain_seconds: float,
) -> Path:
    """The settings file and one mapping file each, as a deployment of `poller run` has them."""
    workdir.mkdir(parents=True, exist_ok=True)
    mapping_dir = write_mappings(workdir, mappings)
    settings: dict[str, Any] = {
        "aws": {"region": REGION, "account_id": ACCOUNT, "endpoint_url": endpoint},
        "state": {"backend": "sqlite", "path": str(workdir / "state.sqlite3")},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "mappings": [str(mapping_dir)],
        "log": {"format": "json", "level": "info"},
        "shutdown": {"drain_seconds": drain_seconds},
    }
    if kafka is not None:
        settings["kafka"] = kafka
    settings_file = workdir / "poller.yaml"
    settings_file.write_text(json.dumps(settings))
    return settings_file


def write_mappings(workdir: Path, mappings: list[dict[str, Any]], *, first: int = 0) -> Path:
    """One file per mapping in `workdir/mappings`, numbered from `first` (a running engine started
    on `workdir` picks later ones up as a hot reload); returns the directory."""
    mapping_dir = workdir / "mappings"
    mapping_dir.mkdir(exist_ok=True)
    for index, mapping in enumerate(mappings, start=first):
        (mapping_dir / f"m{index:03d}.yaml").write_text(json.dumps(mapping))
    return mapping_dir


@asynccontextmanager
async def running_engine(
    workdir: Path,
    mappings: list[dict[str, Any]],
    *,
    endpoint: str | None = None,
    kafka: dict[str, Any] | None = None,
    drain_seconds: float = 3.0,
) -> AsyncIterator[EngineRun]:
    """`Service` with these mappings (written as files, loaded by `load_config` as `poller run`
    would), a registry of its own, run on this event loop until the block ends."""
    from poller.config.loader import load_config
    from poller.runtime.app import Service

    settings_file = write_config(
        workdir, mappings, endpoint=endpoint, kafka=kafka, drain_seconds=drain_seconds
    )
    loaded = load_config(settings_file, environ={}, cwd=workdir)
    if loaded.errors:
        raise RuntimeError("bench mappings do not load: " + "; ".join(str(p) for p in loaded.errors))
    registry = CollectorRegistry()
    service = Service(loaded, registry=registry, environ={})
    task = asyncio.create_task(service.run(install_signal_handlers=False))
    run = EngineRun(service, registry, task)
    try:
        yield run
    finally:
        service.request_stop()
        await asyncio.wait_for(task, drain_seconds + 30)


async def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.01
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


# -- process counters --------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread) so far, from /proc/self/stat."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib() -> float:
    """Resident set size of this process now, in MiB (after a full collection)."""
    gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
