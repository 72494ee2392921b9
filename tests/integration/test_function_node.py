"""Node.js functions run by AWS's own aws-lambda-ric 3.3.0, unchanged (DESIGN §1.5.1; spec §1.12).

Every function here is real JavaScript in a temporary CodeUri, run by the real client (scripts/test
installs it in `.cache/aws-lambda-ric`; the `node_function_path` fixture puts it on the function's
PATH) in a child process, through `FunctionPool`. Nothing waits by sleeping: conditions are awaited
with deadlines (`wait_until`); the only timers are the handlers' own.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from poller.core.clock import SystemClock
from poller.core.outcome import FunctionFailed, Succeeded, TimedOut
from poller.functions.definition import FunctionDefinition
from poller.functions.pool import FunctionPool
from poller.observability.function_metrics import FunctionMetrics
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
ACCOUNT = "123456789012"

HANDLER = """
let calls = 0;

exports.handler = async (event, context) => {
  calls += 1;
  console.log(`call ${calls} of ${event.name}`);
  if (event.raise) throw new Error(event.raise);
  if (event.hangMs) await new Promise((resolve) => setTimeout(resolve, event.hangMs));
  if (event.waitMs) {
    const before = context.getRemainingTimeInMillis();
    await new Promise((resolve) => setTimeout(resolve, event.waitMs));
    return { before, after: context.getRemainingTimeInMillis() };
  }
  if (event.throwLater) {
    setTimeout(() => { throw new Error(event.throwLater); }, 0);
    await new Promise((resolve) => setTimeout(resolve, 10000));
  }
  return {
    calls,
    pid: process.pid,
    text: "caf\\u00e9",
    remaining: context.getRemainingTimeInMillis(),
    memory: context.memoryLimitInMB,
    arn: context.invokedFunctionArn,
    requestId: context.awsRequestId,
    functionName: context.functionName,
    logStream: context.logStreamName,
    cwd: process.cwd(),
    env: { ...process.env },
  };
};
"""


def code_dir(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_pool(tmp_path: Path, registry: CollectorRegistry, node_function_path: str) -> Callable[..., Any]:
    metrics = FunctionMetrics(registry)  # one per registry, however many pools a test makes

    @asynccontextmanager
    async def make(files: dict[str, str] | None = None, **settings: Any) -> AsyncIterator[FunctionPool]:
        settings.setdefault("name", "fn")
        settings.setdefault("runtime", "nodejs20.x")
        settings.setdefault("handler", "index.handler")
        environment = {"PATH": node_function_path, **settings.pop("environment", {})}
        definition = FunctionDefinition(
            code_uri=code_dir(tmp_path / "code", files or {"index.js": HANDLER}),
            environment=environment,
            **settings,
        )
        pool = FunctionPool(
            definition,
            clock=SystemClock(),
            idle_seconds=600.0,
            metrics=metrics,
            region=REGION,
            account_id=ACCOUNT,
            credentials_env={"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret-test"},
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


async def test_a_node_handler_returns_json_and_its_warm_environment_keeps_module_state(
    make_pool: Callable[..., Any], registry: CollectorRegistry, tmp_path: Path
) -> None:
    code = str((tmp_path / "code").resolve())
    with capture_logs() as logs:
        async with make_pool(timeout_seconds=7, memory_size_mb=256, environment={"TABLE": "t"}) as pool:
            first_outcome = await pool.invoke(b'{"name": "a"}')
            first = body(first_outcome)
            second = body(await pool.invoke(b'{"name": "b"}'))
            await wait_until(
                lambda: any("call 2 of b" in line["message"] for line in events(logs, "function_output")),
                what="the second invocation's console.log line",
            )
    assert (first["calls"], second["calls"]) == (1, 2)
    assert first["pid"] == second["pid"]
    assert sample(registry, "poller_function_cold_starts_total") == 1
    assert first["text"] == "café"
    assert 5000 < first["remaining"] <= 7000  # the real deadline, counting down
    assert first["memory"] == "256"  # a string, as the client reads it from the environment
    assert first["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"
    assert first["requestId"] == first_outcome.request_id
    assert first["functionName"] == "fn"
    assert "[$LATEST]" in first["logStream"]
    assert first["cwd"] == code  # aws-lambda-ric 3.x takes the app root from its working directory
    env = first["env"]
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_nodejs20.x"
    assert (env["LAMBDA_TASK_ROOT"], env["_HANDLER"], env["TABLE"]) == (code, "index.handler", "t")
    assert env["NODE_PATH"] == code
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")  # set by the client from the /next header
    assert env["AWS_ACCESS_KEY_ID"] == "AKIDTEST"
    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env
    # The client's own log format: `<ISO time>\t<requestId>\tINFO\t<message>`, attributed by poller.
    [line] = [line for line in events(logs, "function_output") if line["message"].endswith("call 1 of a")]
    assert line["requestId"] == first_outcome.request_id
    assert line["message"].split("\t")[1:] == [first_outcome.request_id, "INFO", "call 1 of a"]


async def test_a_thrown_error_is_relayed_as_aws_lambda_ric_posted_it_and_the_environment_lives_on(
    make_pool: Callable[..., Any], registry: CollectorRegistry, tmp_path: Path
) -> None:
    async with make_pool() as pool:
        pid = body(await pool.invoke(b"{}"))["pid"]
        outcome = await pool.invoke(b'{"raise": "bad thing"}')
        assert isinstance(outcome, FunctionFailed), outcome
        assert (outcome.error_type, outcome.error_message) == ("Error", "bad thing")
        posted = orjson.loads(outcome.payload)  # Node's shape: `trace`, not `stackTrace`; no requestId
        assert list(posted) == ["errorType", "errorMessage", "trace"]
        assert (posted["errorType"], posted["errorMessage"]) == ("Error", "bad thing")
        assert posted["trace"][0] == "Error: bad thing"
        assert f"({(tmp_path / 'code').resolve()}/index.js:" in posted["trace"][1]
        again = body(await pool.invoke(b"{}"))
        assert (again["pid"], again["calls"]) == (pid, 3)
    assert sample(registry, "poller_function_errors_total", error_type="Runtime.Unknown") == 1


async def test_a_missing_handler_fails_init_with_handler_not_found(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    with capture_logs() as logs:
        async with make_pool(handler="index.nope") as pool:
            outcomes = [await pool.invoke(b"{}") for _ in range(2)]
    for outcome in outcomes:
        assert isinstance(outcome, FunctionFailed), outcome
        assert outcome.error_type == "Runtime.HandlerNotFound"
        assert outcome.error_message == "index.nope is undefined or not exported"
        posted = orjson.loads(outcome.payload)  # as the client posted it to /runtime/init/error
        assert list(posted) == ["errorType", "errorMessage", "trace"]
        assert posted["trace"][0] == "Runtime.HandlerNotFound: index.nope is undefined or not exported"
    reports = events(logs, "platform.initReport")  # a failed Init is tried again by the next invocation
    assert {(r["status"], r["errorType"]) for r in reports} == {("error", "Runtime.HandlerNotFound")}
    assert sample(registry, "poller_function_errors_total", error_type="Runtime.HandlerNotFound") == 2


async def test_a_module_that_cannot_be_found_is_an_import_module_error(
    make_pool: Callable[..., Any],
) -> None:
    async with make_pool(handler="missing.handler") as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed), outcome
    assert outcome.error_type == "Runtime.ImportModuleError"
    assert outcome.error_message.startswith("Error: Cannot find module 'missing'")


async def test_get_remaining_time_in_millis_counts_down_to_the_deadline(
    make_pool: Callable[..., Any],
) -> None:
    async with make_pool(timeout_seconds=5) as pool:
        result = body(await pool.invoke(b'{"waitMs": 300}'))
    assert 4000 < result["before"] <= 5000
    assert 250 <= result["before"] - result["after"] < 2000


async def test_a_timeout_kills_the_node_process_and_the_next_invocation_cold_starts(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    async with make_pool(timeout_seconds=1) as pool:
        before = body(await pool.invoke(b"{}"))
        outcome = await pool.invoke(b'{"hangMs": 30000}')
        assert isinstance(outcome, TimedOut), outcome
        assert outcome.error_message == (
            f"RequestId: {outcome.request_id} Error: Task timed out after 1.00 seconds"
        )
        await wait_until(
            lambda: (
                not psutil.pid_exists(before["pid"]) or psutil.Process(before["pid"]).status() == "zombie"
            ),
            what="the timed-out process to be killed",
        )
        after = body(await pool.invoke(b"{}"))
        assert after["pid"] != before["pid"]
        assert after["calls"] == 1  # module state starts over
    assert sample(registry, "poller_function_cold_starts_total") == 2
    assert sample(registry, "poller_function_errors_total", error_type="Sandbox.Timedout") == 1


async def test_an_uncaught_exception_posts_its_error_then_the_client_exits(
    make_pool: Callable[..., Any],
) -> None:
    async with make_pool() as pool:
        pid = body(await pool.invoke(b"{}"))["pid"]
        outcome = await pool.invoke(b'{"throwLater": "from a timer"}')
        assert isinstance(outcome, FunctionFailed), outcome
        assert (outcome.error_type, outcome.error_message) == ("Error", "from a timer")
        # aws-lambda-ric 3.x exits with 129 once the error is posted (spec §1.10); waited for here
        # because an invocation made in the moment before that exit still lands on the dying
        # process and fails as Runtime.ExitError (a pool race). One made after gets a fresh process.
        await wait_until(
            lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
            what="the client to exit",
        )
        assert body(await pool.invoke(b"{}"))["calls"] == 1


async def test_callback_handlers_es_modules_and_node_path_work_as_in_lambda(
    make_pool: Callable[..., Any],
) -> None:
    files = {
        "lib/greeting.js": "exports.greeting = 'hello';\n",
        # `require("lib/greeting")` from a subdirectory resolves only through NODE_PATH = task root.
        "src/callback.js": """
            const { greeting } = require("lib/greeting");
            exports.handler = (event, context, callback) => callback(null, { greeting, style: "callback" });
        """,
        "esm.mjs": "export const handler = async (event) => ({ style: 'esm', event });\n",
    }
    async with make_pool(files, handler="src/callback.handler") as pool:
        assert body(await pool.invoke(b"{}")) == {"greeting": "hello", "style": "callback"}
    async with make_pool(files, handler="esm.handler") as pool:
        assert body(await pool.invoke(b'{"k": 1}')) == {"style": "esm", "event": {"k": 1}}


async def test_a_promise_that_never_settles_returns_null_as_aws_lambda_ric_3_does(
    make_pool: Callable[..., Any],
) -> None:
    # When the event loop empties with the handler's promise pending, 3.3.0 posts `null` as the
    # response; newer Lambda runtimes report `Runtime.NodeJsExit` instead (spec §1.10). poller
    # relays what the client it runs posts.
    files = {"index.js": "exports.handler = async () => new Promise(() => {});\n"}
    async with make_pool(files) as pool:
        outcome = await pool.invoke(b"{}")
    assert isinstance(outcome, Succeeded), outcome
    assert outcome.payload == b"null"
