"""Run the benchmarks: `bench/run [--quick] [--only NAME,...]` (or `python bench/run.py ...`).

Each benchmark runs in a child process of its own (fresh memory for the RSS figures, fresh threads,
its own servers), whose logs — poller's JSON lines included — go to a file under the run
directory. Each prints `<name>: engine=<x> ceiling=<y> ratio=<x/y> unit=<u>` lines (some add
`key=value` details after the unit); the goals of bench/README.md are checked at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `poller` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Result

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_SECONDS = 900

Benchmark = Callable[[Path, bool, str], Awaitable[list[Result]]]


async def _kafka(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import kafka_bench

    return await kafka_bench.throughput(workdir, quick=quick, function=function)


async def _latency_kafka(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import kafka_bench

    return await kafka_bench.latency(workdir, quick=quick)


async def _sqs(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import sqs_bench

    return await sqs_bench.throughput(workdir, quick=quick, function=function, stub=False)


async def _sqs_stub(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import sqs_bench

    return await sqs_bench.throughput(workdir, quick=quick, function=function, stub=True)


async def _latency_sqs(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import sqs_bench

    return await sqs_bench.latency(workdir, quick=quick)


async def _kinesis(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import stream_bench

    return await stream_bench.kinesis(workdir, quick=quick, function=function)


async def _dynamodb(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import stream_bench

    return await stream_bench.dynamodb(workdir, quick=quick, function=function)


async def _memory(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import memory_bench

    return await memory_bench.buffered(workdir, quick=quick)


async def _idle(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import memory_bench

    return await memory_bench.idle(workdir, quick=quick)


async def _function_invoke(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import function_bench

    return await function_bench.invoke_rate(workdir, quick=quick, function=function)


async def _function_cold_start(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import function_bench

    return await function_bench.cold_start(workdir, quick=quick, function=function)


async def _kafka_functions(workdir: Path, quick: bool, function: str) -> list[Result]:
    from bench import function_kafka_bench

    return await function_kafka_bench.kafka_throughput(workdir, quick=quick, function=function)


BENCHMARKS: dict[str, Benchmark] = {
    "kafka": _kafka,
    "sqs": _sqs,
    "sqs-stub": _sqs_stub,
    "kinesis": _kinesis,
    "dynamodb": _dynamodb,
    "latency-kafka": _latency_kafka,
    "latency-sqs": _latency_sqs,
    "memory": _memory,
    "idle": _idle,
    "function-invoke": _function_invoke,
    "function-cold-start": _function_cold_start,
    "kafka-functions": _kafka_functions,
}

HANDLERS = {"async": "python:bench.handlers.count", "sync": "python:bench.handlers.count_sync"}


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
        f"date={datetime.now(UTC).strftime('%Y-%m-%dT%H:%MZ')}"
    )


def run_child(name: str, run_dir: Path, *, quick: bool, handler: str, profile: bool) -> list[Result]:
    workdir = run_dir / name
    workdir.mkdir(parents=True)
    result_path = workdir / "result.json"
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--child",
        name,
        "--workdir",
        str(workdir),
        "--handler",
        handler,
    ]
    if quick:
        command.append("--quick")
    if profile:
        # Collapsed stacks of the whole child (every thread, GIL holders only), for bench/profile.py.
        spy = str(Path(sys.executable).with_name("py-spy"))
        command = [
            spy,
            "record",
            "--gil",
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(workdir / "profile.txt"),
            "--",
            *command,
        ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with (workdir / "child.log").open("wb") as log:
        try:
            proc = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                cwd=ROOT,
                env=env,
                timeout=CHILD_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            print(f"# {name}: timed out after {CHILD_TIMEOUT_SECONDS} s (log: {workdir / 'child.log'})")
            return []
    if proc.returncode != 0 or not result_path.exists():
        tail = (workdir / "child.log").read_text(errors="replace").splitlines()[-15:]
        print(f"# {name}: failed (exit {proc.returncode}); log: {workdir / 'child.log'}")
        for line in tail:
            print(f"#   {line}")
        return []
    return [Result.from_json(item) for item in json.loads(result_path.read_text())]


def child_main(name: str, workdir: Path, *, quick: bool, handler: str) -> int:
    from bench.common import configure_engine_logging
    from bench.servers import use_bench_credentials

    use_bench_credentials()
    configure_engine_logging()
    results = asyncio.run(BENCHMARKS[name](workdir, quick, HANDLERS[handler]))
    (workdir / "result.json").write_text(json.dumps([r.to_json() for r in results]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description="poller benchmarks (bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="smaller runs; the whole set in under 5 minutes")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument(
        "--handler",
        choices=sorted(HANDLERS),
        default="async",
        help="the no-op handler of the throughput runs: async def (default) or plain def",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record each benchmark with py-spy (collapsed stacks in its log dir)",
    )
    parser.add_argument(
        "--sides",
        default="raw,engine,floor",
        help="which sides of the throughput runs to measure (e.g. `engine` with --profile); "
        "`floor` is kafka's contract floor (bench/README.md)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.workdir, quick=args.quick, handler=args.handler)

    names = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    os.environ["BENCH_SIDES"] = args.sides
    run_dir = Path(tempfile.mkdtemp(prefix="poller-bench-"))
    started = time.monotonic()
    print(f"# poller benchmarks{' (--quick)' if args.quick else ''}: {machine()}", flush=True)
    print(f"# handler={args.handler}; logs under {run_dir}", flush=True)
    results: list[Result] = []
    failed: list[str] = []
    for name in names:
        child_started = time.monotonic()
        got = run_child(name, run_dir, quick=args.quick, handler=args.handler, profile=args.profile)
        if not got:
            failed.append(name)
        for result in got:
            print(result.line(), flush=True)
        print(f"# {name}: {time.monotonic() - child_started:.0f} s", flush=True)
        results.extend(got)
    print(f"# goals ({time.monotonic() - started:.0f} s):")
    for result in results:
        verdict = result.passed()
        mark = "info" if verdict is None else "PASS" if verdict else "FAIL"
        print(f"{mark} {result.name}: {result.goal_text()}")
    for name in failed:
        print(f"FAIL {name}: did not run to the end (see its log)")
    return 1 if failed or any(r.passed() is False for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
