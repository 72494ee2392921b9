"""Execution environments with AWS's real runtime clients (DESIGN §1.5.1; spec §1–§3).

Every function here is real code in a temporary CodeUri run by the real `awslambdaric` (or a bash
`bootstrap` speaking the Runtime API with curl), in a child process, through `FunctionPool`.
Nothing waits by sleeping: conditions are awaited with deadlines (`wait_until`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from poller.core.clock import SystemClock
from poller.core.outcome import FunctionFailed, NotInvoked, Succeeded, TimedOut
from poller.functions import environment_state
from poller.functions.definition import FunctionDefinition
from poller.functions.pool import FunctionPool
from poller.observability.function_metrics import FunctionMetrics
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret-test"}

STATEFUL = """
import json, os, time
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    print(f"call {CALLS} of {event.get('name')}")
    if event.get("exit") is not None:
        os._exit(event["exit"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("raise"):
        raise ValueError(event["raise"])
    if event.get("write"):
        with open(os.path.join(os.environ["TMPDIR"], "kept.txt"), "w") as f:
            f.write(event["write"])
    if event.get("big"):
        return "x" * event["big"]
    kept = os.path.join(os.environ["TMPDIR"], "kept.txt")
    return {
        "calls": CALLS,
        "pid": os.getpid(),
        "remaining": context.get_remaining_time_in_millis(),
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "kept": open(kept).read() if os.path.exists(kept) else None,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "env": {k: v for k, v in os.environ.items()},
    }
"""


def code_dir(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_pool(tmp_path: Path, registry: CollectorRegistry) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(
        files: dict[str, str] | None = None,
        *,
        code: Path | None = None,
        idle_seconds: float = 600.0,
        **settings: Any,
    ) -> AsyncIterator[FunctionPool]:
        settings.setdefault("name", "fn")
        settings.setdefault("runtime", "python3.11")
        settings.setdefault("handler", "app.handler")
        definition = FunctionDefinition(
            code_uri=code or code_dir(tmp_path / "code", files or {"app.py": STATEFUL}), **settings
        )
        pool = FunctionPool(
            definition,
            clock=SystemClock(),
            idle_seconds=idle_seconds,
            metrics=FunctionMetrics(registry),
            region=REGION,
            account_id=ACCOUNT,
            credentials_env=CREDENTIALS,
        )
        async with pool:
            yield pool

    return make


def body(outcome: Any) -> dict[str, Any]:
    assert isinstance(outcome, Succeeded), outcome
    result = orjson.loads(outcome.payload)
    assert isinstance(result, dict)
    return result


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"function": "fn", **labels})
    return 0.0 if value is None else value


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == name]


@pytest.fixture(autouse=True)
def poller_setting_in_env() -> Iterator[None]:
    """A variable of poller's own that must not reach function code."""
    os.environ["POLLER_SECRET_SETTING"] = "do-not-leak"
    yield
    os.environ.pop("POLLER_SECRET_SETTING", None)


async def test_a_warm_environment_keeps_module_state_and_its_process(
    make_pool: Callable[..., Any], registry: CollectorRegistry, tmp_path: Path
) -> None:
    async with make_pool(timeout_seconds=7, memory_size_mb=256, environment={"TABLE": "orders"}) as pool:
        first = body(await pool.invoke(b'{"name": "a"}'))
        second = body(await pool.invoke(b'{"name": "b"}'))
        assert (first["calls"], second["calls"]) == (1, 2)
        assert first["pid"] == second["pid"]
        assert sample(registry, "poller_function_cold_starts_total") == 1
        assert sample(registry, "poller_function_environments", state="idle") == 1
        assert 5000 < first["remaining"] <= 7000  # the real deadline counts down
        assert first["memory"] == "256"
        assert first["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"
        assert first["trace"].startswith("Root=1-")
        env = first["env"]
        assert env["TABLE"] == "orders"
        assert env["LAMBDA_TASK_ROOT"] == str((tmp_path / "code").resolve())
        assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
        assert env["TZ"] == ":UTC"
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION
        assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"
        assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
        assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
        assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fn"
        assert "[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
        assert env["AWS_ACCESS_KEY_ID"] == "AKIDTEST"
        assert env["_HANDLER"] == "app.handler"
        assert await asyncio.to_thread(Path(env["TMPDIR"]).is_dir)
        assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env
        assert "POLLER_SECRET_SETTING" not in env


async def test_another_python_minor_version_runs_on_pollers_interpreter_as_that_runtime(
    make_pool: Callable[..., Any],
) -> None:
    runtime = "python3.13" if sys.version_info[:2] != (3, 13) else "python3.12"
    unicode = "def handler(event, context):\n    return {'text': 'caf\u00e9'}\n"
    with capture_logs() as logs:
        async with make_pool({"app.py": unicode}, runtime=runtime) as pool:
            first = await pool.invoke(b"{}")
            second = await pool.invoke(b"{}")
    # AWS_EXECUTION_ENV=AWS_Lambda_python3.1x: awslambdaric polls /next from a thread and encodes
    # results as raw UTF-8, as Lambda's python3.12+ runtimes do.
    assert isinstance(first, Succeeded)
    assert first.payload == '{"text": "café"}'.encode()
    assert isinstance(second, Succeeded)
    [warning] = events(logs, "function_runtime_version")
    assert warning["runtime"] == runtime


async def test_an_init_failure_fails_every_invocation_with_the_posted_error(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool({"app.py": "def other(event, context):\n    return 1\n"}) as pool:
        for _ in range(2):
            outcome = await pool.invoke(b"{}")
            assert isinstance(outcome, FunctionFailed), outcome
            assert outcome.error_type == "Runtime.HandlerNotFound"
            assert outcome.error_message == "Handler 'handler' missing on module 'app'"
            posted = orjson.loads(outcome.payload)  # the body awslambdaric posted, as it posted it
            assert posted == {
                "errorMessage": "Handler 'handler' missing on module 'app'",
                "errorType": "Runtime.HandlerNotFound",
                "requestId": "",
                "stackTrace": [],
            }
        assert sample(registry, "poller_function_errors_total", error_type="Runtime.HandlerNotFound") == 2


async def test_a_module_that_raises_at_import_reports_the_exception_class(
    make_pool: Callable[..., Any],
) -> None:
    async with make_pool({"app.py": "raise RuntimeError('no config')\n"}) as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "RuntimeError"
    assert outcome.error_message == "no config"


async def test_an_init_that_overruns_its_limit_times_out(
    make_pool: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environment_state, "INIT_TIMEOUT_SECONDS", 0.5)  # Lambda's is 10 s
    slow = "import time\ntime.sleep(30)\ndef handler(event, context):\n    return 1\n"
    with capture_logs() as logs:
        async with make_pool({"app.py": slow}) as pool:
            outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, TimedOut), outcome
    [init_report] = events(logs, "platform.initReport")
    assert (init_report["status"], init_report["errorType"]) == ("timeout", "Sandbox.Timedout")


async def test_a_runtime_that_dies_while_idle_is_replaced_before_the_next_invocation(
    make_pool: Callable[..., Any],
) -> None:
    dies_later = """
    import os, threading, time
    def handler(event, context):
        threading.Thread(target=lambda: (time.sleep(0.2), os._exit(1))).start()
        return {"pid": os.getpid()}
    """
    async with make_pool({"app.py": dies_later}) as pool:
        pid = body(await pool.invoke(b"{}"))["pid"]
        await wait_until(lambda: not psutil.pid_exists(pid), what="the runtime to exit")
        assert body(await pool.invoke(b"{}"))["pid"] != pid


async def test_a_handler_error_is_relayed_as_posted_and_the_environment_lives_on(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool() as pool:
        pid = body(await pool.invoke(b"{}"))["pid"]
        outcome = await pool.invoke(b'{"raise": "bad thing"}')
        assert isinstance(outcome, FunctionFailed), outcome
        assert (outcome.error_type, outcome.error_message) == ("ValueError", "bad thing")
        posted = orjson.loads(outcome.payload)
        assert posted["requestId"] == outcome.request_id
        assert any("raise ValueError" in line for line in posted["stackTrace"])
        assert body(await pool.invoke(b"{}"))["pid"] == pid
    assert sample(registry, "poller_function_errors_total", error_type="Runtime.Unknown") == 1


async def test_a_timeout_kills_the_environment_and_the_next_invocation_cold_starts_keeping_tmp(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool(timeout_seconds=1) as pool:
        await pool.invoke(b'{"write": "from the first process"}')
        before = body(await pool.invoke(b"{}"))
        outcome = await pool.invoke(b'{"sleep": 30}')
        assert isinstance(outcome, TimedOut), outcome
        assert (
            outcome.error_message
            == f"RequestId: {outcome.request_id} Error: Task timed out after 1.00 seconds"
        )
        assert not psutil.pid_exists(before["pid"]) or psutil.Process(before["pid"]).status() == "zombie"
        after = body(await pool.invoke(b"{}"))
        assert after["pid"] != before["pid"]
        assert after["calls"] == 1  # module state starts over
        assert after["kept"] == "from the first process"  # /tmp does not (Lambda's reset keeps it)
        assert sample(registry, "poller_function_cold_starts_total") == 2
        assert sample(registry, "poller_function_errors_total", error_type="Sandbox.Timedout") == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (3, "Runtime exited with error: exit status 3"),
        (0, "Runtime exited without providing a reason"),
    ],
)
async def test_an_exit_mid_invocation_is_a_runtime_exit_error(
    make_pool: Callable[..., Any], code: int, reason: str
) -> None:
    async with make_pool() as pool:
        outcome = await pool.invoke(orjson.dumps({"exit": code}))
        assert isinstance(outcome, FunctionFailed), outcome
        assert outcome.error_type == "Runtime.ExitError"
        assert outcome.error_message == f"RequestId: {outcome.request_id} Error: {reason}"
        assert orjson.loads(outcome.payload) == {
            "errorMessage": outcome.error_message,
            "errorType": "Runtime.ExitError",
        }
        assert body(await pool.invoke(b"{}"))["calls"] == 1  # a fresh environment


async def test_a_function_over_its_memory_size_is_killed_as_out_of_memory(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    hog = """
    import time
    def handler(event, context):
        chunks = []
        for _ in range(64):  # up to 1 GiB, written so it is resident
            chunks.append(b"x" * (16 * 1024 * 1024))
        time.sleep(60)
    """
    with capture_logs() as logs:
        async with make_pool({"app.py": hog}, timeout_seconds=30, memory_size_mb=128) as pool:
            outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "Runtime.OutOfMemory"
    assert (
        outcome.error_message
        == f"RequestId: {outcome.request_id} Error: Runtime exited with error: signal: killed"
    )
    [report] = events(logs, "platform.report")
    assert report["errorType"] == "Runtime.OutOfMemory"
    assert report["maxMemoryUsedMB"] > 128
    assert sample(registry, "poller_function_max_memory_bytes") > 128 * 1024 * 1024


async def test_a_brief_spike_over_memory_size_is_out_of_memory_even_between_samples(
    make_pool: Callable[..., Any],
) -> None:
    spike = """
    def handler(event, context):
        block = b"x" * (200 * 1024 * 1024)  # resident for a moment only
        del block
        return "survived"
    """
    async with make_pool({"app.py": spike}, timeout_seconds=30, memory_size_mb=128) as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "Runtime.OutOfMemory"


async def test_a_function_filling_its_tmp_past_ephemeral_storage_is_killed(
    make_pool: Callable[..., Any],
) -> None:
    filler = """
    import os, time
    def handler(event, context):
        with open(os.path.join(os.environ["TMPDIR"], "big"), "wb") as f:
            for _ in range(64):
                f.write(b"x" * (1024 * 1024))
                f.flush()
        time.sleep(60)
    """
    # A limit below Lambda's 512 MB minimum (the config loader enforces that, not the pool), so
    # the test writes megabytes, not half a gigabyte.
    async with make_pool({"app.py": filler}, timeout_seconds=30, ephemeral_storage_mb=16) as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "Runtime.ExitError"
    assert outcome.error_message.endswith("Error: Runtime exited with error: signal: killed")


async def test_an_oversized_response_fails_as_too_large_and_the_next_invocation_cold_starts(
    make_pool: Callable[..., Any],
) -> None:
    async with make_pool(memory_size_mb=512) as pool:
        pid = body(await pool.invoke(b"{}"))["pid"]
        outcome = await pool.invoke(orjson.dumps({"big": 6_300_000}))
        assert isinstance(outcome, FunctionFailed), outcome
        assert outcome.error_type == "Function.ResponseSizeTooLarge"
        assert outcome.error_message == (
            "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
        )
        assert body(await pool.invoke(b"{}"))["pid"] != pid


async def test_reserved_concurrency_one_runs_three_concurrent_invocations_in_one_environment(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool(reserved_concurrency=1) as pool:
        results = await asyncio.gather(*(pool.invoke(b'{"sleep": 0.2}') for _ in range(3)))
        pids = {body(result)["pid"] for result in results}
        assert len(pids) == 1
        assert sorted(body(result)["calls"] for result in results) == [1, 2, 3]
        assert sample(registry, "poller_function_cold_starts_total") == 1


async def test_without_a_cap_concurrent_invocations_get_their_own_environments(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool() as pool:
        results = await asyncio.gather(*(pool.invoke(b'{"sleep": 0.3}') for _ in range(2)))
        assert len({body(result)["pid"] for result in results}) == 2
        assert sample(registry, "poller_function_environments", state="idle") == 2


async def test_reserved_concurrency_zero_throttles(make_pool: Callable[..., Any]) -> None:
    async with make_pool(reserved_concurrency=0) as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, NotInvoked)
    assert outcome.reason == "throttled"


async def test_an_idle_environment_is_retired(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool(idle_seconds=0.3) as pool:
        pid = body(await pool.invoke(b"{}"))["pid"]
        await wait_until(
            lambda: sample(registry, "poller_function_environments", state="idle") == 0, what="retirement"
        )
        await wait_until(lambda: not psutil.pid_exists(pid), what="the process to end")
        assert body(await pool.invoke(b"{}"))["calls"] == 1


async def test_platform_lines_and_function_output_are_logged(make_pool: Callable[..., Any]) -> None:
    with capture_logs() as logs:
        async with make_pool() as pool:
            first = await pool.invoke(b'{"name": "one"}')
            second = await pool.invoke(b'{"name": "two"}')
            await wait_until(
                lambda: (
                    len([line for line in events(logs, "function_output") if "call 2" in line["message"]])
                    == 1
                ),
                what="the second invocation's output",
            )
    assert isinstance(first, Succeeded)
    assert isinstance(second, Succeeded)
    [init_start] = events(logs, "platform.initStart")
    assert init_start == {
        "event": "platform.initStart",
        "function": "fn",
        "initializationType": "on-demand",
        "phase": "init",
        "log_level": "info",
    }
    [init_report] = events(logs, "platform.initReport")
    assert init_report["status"] == "success"
    assert init_report["initDurationMs"] > 0
    starts = events(logs, "platform.start")
    assert [line["requestId"] for line in starts] == [first.request_id, second.request_id]
    assert all(line["version"] == "$LATEST" for line in starts)
    cold, warm = events(logs, "platform.report")
    assert cold["requestId"] == first.request_id
    assert cold["status"] == "success"
    assert cold["initDurationMs"] == init_report["initDurationMs"]
    assert cold["billedDurationMs"] >= cold["durationMs"] + cold["initDurationMs"]
    assert "initDurationMs" not in warm
    assert warm["billedDurationMs"] >= warm["durationMs"]
    assert warm["memorySizeMB"] == 128
    assert 0 < warm["maxMemoryUsedMB"] < 128
    outputs = [(line["requestId"], line["message"]) for line in events(logs, "function_output")]
    assert (first.request_id, "call 1 of one") in outputs
    assert (second.request_id, "call 2 of two") in outputs


BOOTSTRAP = """\
#!/bin/bash
set -euo pipefail
source "$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).sh"
while true
do
  HEADERS="$(mktemp)"
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")
  curl -sS "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response" -d "$RESPONSE"
done
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="the custom runtime uses curl")
async def test_a_shell_bootstrap_custom_runtime(make_pool: Callable[..., Any], tmp_path: Path) -> None:
    code = code_dir(
        tmp_path / "shell",
        {
            "bootstrap": BOOTSTRAP,
            "function.sh": """\
                function handler () {
                  EVENT_DATA=$1
                  echo "$EVENT_DATA" 1>&2
                  echo "Echoing request: '$EVENT_DATA' exec env: ${AWS_EXECUTION_ENV:-unset}"
                }
            """,
        },
    )
    (code / "bootstrap").chmod((code / "bootstrap").stat().st_mode | stat.S_IXUSR)
    with capture_logs() as logs:
        async with make_pool(code=code, runtime="provided.al2023", handler="function.handler") as pool:
            outcome = await pool.invoke(b'{"text":"Hello"}')
            again = await pool.invoke(b'{"text":"Again"}')
            await wait_until(
                lambda: any(
                    line["message"] == '{"text":"Again"}' for line in events(logs, "function_output")
                ),
                what="the handler's stderr line",
            )
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.payload == b"""Echoing request: '{"text":"Hello"}' exec env: unset"""
    assert isinstance(again, Succeeded), again


async def test_a_custom_runtime_without_a_bootstrap_is_an_invalid_entrypoint(
    make_pool: Callable[..., Any], tmp_path: Path
) -> None:
    async with make_pool(code=code_dir(tmp_path / "empty", {}), runtime="provided.al2") as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "Runtime.InvalidEntrypoint"
    assert "Couldn't find valid bootstrap(s)" in outcome.error_message


async def test_a_bootstrap_that_dies_at_init_is_an_exit_error(
    make_pool: Callable[..., Any], tmp_path: Path
) -> None:
    code = code_dir(tmp_path / "dies", {"bootstrap": "#!/bin/bash\necho starting\nexit 7\n"})
    (code / "bootstrap").chmod(0o755)
    async with make_pool(code=code, runtime="provided.al2023") as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "Runtime.ExitError"
    assert outcome.error_message.endswith("Error: Runtime exited with error: exit status 7")


@pytest.mark.skipif(shutil.which("aws-lambda-ric") is not None, reason="aws-lambda-ric is installed here")
async def test_a_node_function_without_the_node_client_says_what_to_install(
    make_pool: Callable[..., Any],
) -> None:
    async with make_pool(
        {"index.mjs": "export const handler = async () => 1;\n"},
        runtime="nodejs20.x",
        handler="index.handler",
    ) as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "Runtime.InvalidEntrypoint"
    assert "npm install aws-lambda-ric" in outcome.error_message


async def test_closing_stops_every_environment_and_removes_tmp(make_pool: Callable[..., Any]) -> None:
    async with make_pool() as pool:
        result = body(await pool.invoke(b"{}"))
    assert not await asyncio.to_thread(Path(result["env"]["TMPDIR"]).exists)
    await wait_until(lambda: not psutil.pid_exists(result["pid"]), what="the process to end")
    assert isinstance(await pool.invoke(b"{}"), NotInvoked)


async def test_closing_lets_in_flight_invocations_finish_and_refuses_the_waiting(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool(reserved_concurrency=1) as pool:
        in_flight = asyncio.create_task(pool.invoke(b'{"sleep": 1}'))
        await wait_until(
            lambda: sample(registry, "poller_function_environments", state="busy") == 1, what="busy"
        )
        waiting = asyncio.create_task(pool.invoke(b"{}"))
        await pool.aclose(drain_seconds=20)
        assert isinstance(await waiting, NotInvoked)
        assert isinstance(await in_flight, Succeeded)


async def test_closing_past_the_drain_budget_stops_the_invocation_without_blaming_the_function(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool(timeout_seconds=30) as pool:
        in_flight = asyncio.create_task(pool.invoke(b'{"sleep": 25}'))
        await wait_until(
            lambda: sample(registry, "poller_function_environments", state="busy") == 1, what="busy"
        )
        await pool.aclose(drain_seconds=0.2)
        outcome = await in_flight
    assert isinstance(outcome, NotInvoked), outcome
    assert outcome.reason == "unreachable"
