"""Execution environments (DESIGN §1.5.1) against the in-process `python:` target, in the same run.

- `function-invoke`: invocations one after another through ONE environment (a `FunctionPool` with
  ReservedConcurrentExecutions 1, warm) of a no-op `def handler`, each with a BatchSize-1 SQS event
  (one 100-byte message, built by poller's own `sqs_event`), against the same no-op called by the
  `python:` target (`async def`, or `def` with `--handler sync`). The same invocations give
  `function-latency-p50/-p99`: the time of each `invoke` call, so the difference is what the
  Runtime API round trip (and the environment's guard around it) adds. A third side, the floor
  (`floor_*`; `--sides` leaves it out like kafka's), is the same awslambdaric child behind a bare
  server that does nothing but the protocol (bench/runtime_floor.py): what any server must add.
- `function-cold-start`: a fresh pool's first invocation of a function importing only the standard
  library, from `invoke` called to its outcome (process start, awslambdaric's import, the handler's
  import, the first `/next`, the invocation). The ceiling is the `python:` target's equivalent (a
  fresh module imported by `PythonTarget.open`, then invoked); `interpreter_ms` is the floor every
  Python runtime process pays: `python -c "import awslambdaric"` run to its exit.
- `kafka-functions` (bench/function_kafka_bench.py): `kafka`'s throughput run with its handler in
  2 execution environments.

The environments' CPU is their own processes' (`env_cpu_us_per_*`), apart from this process's.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry

from bench.common import Measured, Result, cpu_seconds, percentile, unmeasured
from bench.runtime_floor import RUNTIME, FloorEnvironment
from bench.servers import ACCOUNT, REGION
from poller.core.clock import SystemClock
from poller.core.outcome import InvokeOutcome, Succeeded
from poller.core.sqs_event import encode_event, to_message
from poller.functions.definition import FunctionDefinition
from poller.functions.pool import FunctionPool
from poller.observability.function_metrics import FunctionMetrics
from poller.targets.context import ContextFactory
from poller.targets.python_handler import PythonTarget

ADDED_P99_GOAL_MS = 1.0
COLD_START_GOAL_MS = 500.0

NOOP_CODE = "def handler(event, context):\n    return None\n"
STDLIB_CODE = (
    "import collections, datetime, json, logging, os, re, time, uuid\n\n"
    "def handler(event, context):\n    return None\n"
)


def noop(event: Any, context: Any) -> None:
    return None


async def noop_async(event: Any, context: Any) -> None:
    return None


# -- building blocks ----------------------------------------------------------------------------


def write_code(directory: Path, source: str, module: str = "app") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(source)
    return directory


def make_pool(
    name: str, code: Path, concurrency: int, metrics: FunctionMetrics | None = None
) -> FunctionPool:
    definition = FunctionDefinition(
        name=name,
        runtime=RUNTIME,
        handler="app.handler",
        code_uri=code,
        timeout_seconds=60,
        reserved_concurrency=concurrency,
    )
    return FunctionPool(
        definition,
        clock=SystemClock(),
        idle_seconds=600.0,
        metrics=FunctionMetrics(CollectorRegistry()) if metrics is None else metrics,
        region=REGION,
        account_id=ACCOUNT,
        credentials_env={},
    )


async def python_target(handler_path: str, search_paths: tuple[Path, ...] = ()) -> PythonTarget:
    contexts = ContextFactory.for_function(
        "bench-inprocess",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench-inprocess",
        memory_limit_in_mb=128,
        timeout_seconds=60,
    )
    return await PythonTarget.open(
        handler_path, contexts=contexts, timeout_seconds=60, search_paths=search_paths
    )


def sqs_event() -> bytes:
    """A BatchSize-1 SQS event: one 100-byte message, as the SQS source builds it."""
    message = {
        "MessageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "ReceiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a" * 4,
        "Body": "x" * 100,
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1545082649183",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1545082649185",
        },
        "MD5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
    }
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:bench"
    return encode_event([to_message(message, queue_arn=arn, region=REGION, batching_window_seconds=0)])


def environment_cpu_seconds() -> float:
    """User + system CPU of this process's runtime processes (awslambdaric children) so far."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "awslambdaric" in child.cmdline():
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


def succeeded(outcome: InvokeOutcome) -> Succeeded:
    if not isinstance(outcome, Succeeded):
        raise RuntimeError(f"invocation failed: {outcome}")
    return outcome


Invoke = Callable[[bytes], Awaitable[InvokeOutcome]]


async def invocations(invoke: Invoke, event: bytes, count: int) -> tuple[Measured, list[float]]:
    """`count` invocations one after another: the rate, CPU per invocation (this process; the
    environment's under `details`), and each call's seconds."""
    latencies: list[float] = []
    env_cpu, cpu, started = environment_cpu_seconds(), cpu_seconds(), time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        succeeded(await invoke(event))
        latencies.append(time.perf_counter() - began)
    wall = time.perf_counter() - started
    cpu, env_cpu = cpu_seconds() - cpu, environment_cpu_seconds() - env_cpu
    return Measured.of(count, wall, cpu, env_cpu_us=round(env_cpu * 1e6 / count, 1)), latencies


# -- function-invoke, function-latency-p50/-p99 -------------------------------------------------


async def invoke_rate(workdir: Path, *, quick: bool, function: str) -> list[Result]:
    count, rounds, warmup = (2_000, 2, 200) if quick else (10_000, 3, 500)
    event = sqs_event()
    is_sync = function.endswith("_sync")
    inprocess = await python_target("bench.function_bench." + ("noop" if is_sync else "noop_async"))
    code = write_code(workdir / "noop", NOOP_CODE)
    pool = make_pool("bench-noop", code, 1)
    floor = FloorEnvironment(code, workdir / "floor-tmp")
    sides: dict[str, Invoke] = {"inprocess": inprocess.invoke, "engine": pool.invoke}
    if not unmeasured("floor"):
        await floor.start()
        sides["floor"] = floor.invoke
    best: dict[str, Measured] = {}
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    try:
        async with pool:
            for invoke in sides.values():  # import, cold start, warm caches
                await invocations(invoke, event, warmup)
            for _ in range(rounds):  # alternate: the machine's speed drifts minute to minute
                for side, invoke in sides.items():
                    measured, seen = await invocations(invoke, event, count)
                    latencies[side] += seen
                    if side not in best or measured.rate > best[side].rate:
                        best[side] = measured
    finally:
        await inprocess.aclose()
        await floor.aclose()
    engine, inproc = best["engine"], best["inprocess"]
    floor_extras: dict[str, Any] = {}
    if "floor" in best:
        floor_extras = {
            "floor_ratio": round(best["floor"].rate / inproc.rate, 3),
            "floor_cpu_us_per_invocation": round(best["floor"].cpu_us, 1),
            "floor_env_cpu_us_per_invocation": best["floor"].details["env_cpu_us"],
        }
    handler = "def" if is_sync else "async_def"
    results = [
        Result(
            "function-invoke",
            engine.rate,
            inproc.rate,
            "invocations/s",
            extras={
                "invocations": count,
                "rounds": rounds,
                "environments": 1,
                "event_bytes": len(event),
                "inprocess_handler": handler,
                "engine_cpu_us_per_invocation": round(engine.cpu_us, 1),
                "env_cpu_us_per_invocation": engine.details["env_cpu_us"],
                "inprocess_cpu_us_per_invocation": round(inproc.cpu_us, 1),
                **floor_extras,
            },
        )
    ]
    for q in (50, 99):
        e_ms = percentile(latencies["engine"], q) * 1000
        i_ms = percentile(latencies["inprocess"], q) * 1000
        extras: dict[str, Any] = {"added_ms": round(e_ms - i_ms, 3)}
        if latencies.get("floor"):
            f_ms = percentile(latencies["floor"], q) * 1000
            extras |= {"floor_ms": round(f_ms, 3), "floor_added_ms": round(f_ms - i_ms, 3)}
        results.append(
            Result(
                f"function-latency-p{q}",
                e_ms,
                i_ms,
                "ms",
                goal="added_at_most" if q == 99 else "info",
                threshold=ADDED_P99_GOAL_MS,
                extras={**extras, "invocations": count * rounds},
            )
        )
    return results


# -- function-cold-start -------------------------------------------------------------------------


def interpreter_seconds() -> float:
    """The floor of any Python runtime process: the interpreter started, awslambdaric imported."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import awslambdaric"], check=True)
    return time.perf_counter() - began


async def cold_start(workdir: Path, *, quick: bool, function: str) -> list[Result]:
    starts = 5 if quick else 15
    event = sqs_event()
    registry = CollectorRegistry()
    metrics = FunctionMetrics(registry)
    colds: list[float] = []
    inprocess: list[float] = []
    floors: list[float] = []
    for index in range(starts):
        pool = make_pool(
            f"bench-cold-{index}", write_code(workdir / f"cold-{index}", STDLIB_CODE), 1, metrics
        )
        async with pool:
            began = time.perf_counter()
            succeeded(await pool.invoke(event))
            colds.append(time.perf_counter() - began)
        # The python: target's cold start: a module never imported before, imported and invoked.
        module = f"bench_cold_{index}_{time.time_ns()}"
        code = write_code(workdir / f"inprocess-{index}", STDLIB_CODE, module)
        began = time.perf_counter()
        target = await python_target(f"{module}.handler", (code,))
        succeeded(await target.invoke(event))
        inprocess.append(time.perf_counter() - began)
        await target.aclose()
        floors.append(await asyncio.to_thread(interpreter_seconds))
    init_sum = sum(
        registry.get_sample_value(
            "poller_function_init_duration_seconds_sum", {"function": f"bench-cold-{i}"}
        )
        or 0.0
        for i in range(starts)
    )
    ms = 1000.0
    return [
        Result(
            "function-cold-start",
            statistics.median(colds) * ms,
            statistics.median(inprocess) * ms,
            "ms",
            goal="at_most",
            threshold=COLD_START_GOAL_MS,
            extras={
                "starts": starts,
                "max_ms": round(max(colds) * ms, 1),
                "init_ms": round(init_sum / starts * ms, 1),
                "interpreter_ms": round(statistics.median(floors) * ms, 1),
            },
        )
    ]
