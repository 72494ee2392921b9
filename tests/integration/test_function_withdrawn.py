"""A runtime that exits between invocations: the next invocation is re-run, not failed (DESIGN §1.5.1).

An invocation handed to a runtime that has answered its last event and is about to exit never
reaches the function (no `/next` takes it); Lambda would run it in a fresh environment, and so does
poller: a cold start on a new process, with the same request id, rather than `Runtime.ExitError`.
Real runtimes here: a Python `bootstrap` speaking the Runtime API (the custom-runtime contract), and
AWS's aws-lambda-ric for Node.js, which exits after posting an uncaught exception.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from poller.core.clock import SystemClock
from poller.core.outcome import FunctionFailed, Succeeded
from poller.functions.definition import FunctionDefinition
from poller.functions.pool import FunctionPool
from poller.observability.function_metrics import FunctionMetrics
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

# Answers ONE event, then exits without asking for another — once the test creates `exit-now` in the
# code directory (its working directory), so a test can first hand it the invocation that must then
# be queued for a `/next` that never comes.
ONE_SHOT_BOOTSTRAP = f"""\
#!{sys.executable}
import json, os, time, urllib.request

api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
with urllib.request.urlopen(api + "next") as reply:
    request_id = reply.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(reply.read())
result = json.dumps({{"pid": os.getpid(), "event": event, "requestId": request_id}}).encode()
urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=result)).read()
while not os.path.exists("exit-now"):
    time.sleep(0.01)
os._exit(0)
"""

NODE_HANDLER = """
let calls = 0;
exports.handler = async (event) => {
  calls += 1;
  if (event.throwLater) {
    setTimeout(() => { throw new Error(event.throwLater); }, 0);
    await new Promise((resolve) => setTimeout(resolve, 10000));
  }
  return { calls, pid: process.pid };
};
"""


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_pool(tmp_path: Path, registry: CollectorRegistry) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(files: dict[str, str], **settings: Any) -> AsyncIterator[FunctionPool]:
        code = tmp_path / "code"
        code.mkdir()
        for name, text in files.items():
            (code / name).write_text(textwrap.dedent(text))
        if (code / "bootstrap").exists():
            (code / "bootstrap").chmod(0o755)
        pool = FunctionPool(
            FunctionDefinition(name="fn", code_uri=code, **settings),
            clock=SystemClock(),
            idle_seconds=600.0,
            metrics=FunctionMetrics(registry),
            region="eu-west-1",
            account_id="123456789012",
            credentials_env={},
        )
        async with pool:
            yield pool

    return make


def body(outcome: Any) -> dict[str, Any]:
    assert isinstance(outcome, Succeeded), outcome
    result = orjson.loads(outcome.payload)
    assert isinstance(result, dict)
    return result


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == name]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"function": "fn", **labels})
    return 0.0 if value is None else value


async def test_an_invocation_made_as_the_runtime_exits_runs_on_a_new_process(
    make_pool: Callable[..., Any], registry: CollectorRegistry, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        async with make_pool(
            {"bootstrap": ONE_SHOT_BOOTSTRAP}, runtime="provided.al2023", handler=""
        ) as pool:
            first = body(await pool.invoke(b'{"n": 1}'))
            # The first process has answered and is still alive: it is handed the second invocation
            # (platform.start is logged as the invocation is submitted), and only then exits.
            second = asyncio.ensure_future(pool.invoke(b'{"n": 2}'))
            await wait_until(lambda: len(events(logs, "platform.start")) == 2, what="the second submitted")
            (tmp_path / "code" / "exit-now").touch()
            second_outcome = await second
    second = body(second_outcome)
    assert first["event"] == {"n": 1}
    assert second["event"] == {"n": 2}
    assert second["pid"] != first["pid"]
    assert second["requestId"] == second_outcome.request_id
    [withdrawn] = events(logs, "function_invocation_withdrawn")
    assert withdrawn["requestId"] == second_outcome.request_id
    assert withdrawn["reason"] == "Runtime exited without providing a reason"
    # No failure is reported for it: one report per invocation, both successes.
    assert [line["status"] for line in events(logs, "platform.report")] == ["success", "success"]
    assert [line["requestId"] for line in events(logs, "platform.report")][1] == second_outcome.request_id
    assert sample(registry, "poller_function_cold_starts_total") == 2
    assert sample(registry, "poller_function_errors_total", error_type="Runtime.ExitError") == 0


async def test_a_one_shot_runtime_under_a_cap_of_one_serves_concurrent_invocations_one_by_one(
    make_pool: Callable[..., Any], registry: CollectorRegistry
) -> None:
    """Each process answers one event and dies: every invocation that lands on a dying one is re-run
    in its place, within ReservedConcurrentExecutions 1."""
    async with make_pool(
        {"bootstrap": ONE_SHOT_BOOTSTRAP, "exit-now": ""},  # each exits once it has answered
        runtime="provided.al2023",
        handler="",
        reserved_concurrency=1,
    ) as pool:
        results = await asyncio.gather(*(pool.invoke(orjson.dumps({"n": n})) for n in range(3)))
    assert sorted(body(result)["event"]["n"] for result in results) == [0, 1, 2]
    assert len({body(result)["pid"] for result in results}) == 3
    assert sample(registry, "poller_function_environments", state="busy") == 0


async def test_a_node_invocation_right_after_an_uncaught_exception_gets_a_fresh_process(
    make_pool: Callable[..., Any], node_function_path: str
) -> None:
    """aws-lambda-ric 3.x posts the error, then exits (129): the next invocation is not its victim."""
    async with make_pool(
        {"index.js": NODE_HANDLER},
        runtime="nodejs20.x",
        handler="index.handler",
        environment={"PATH": node_function_path},
    ) as pool:
        pid = body(await pool.invoke(b"{}"))["pid"]
        outcome = await pool.invoke(b'{"throwLater": "from a timer"}')
        assert isinstance(outcome, FunctionFailed), outcome
        assert (outcome.error_type, outcome.error_message) == ("Error", "from a timer")
        after = body(await pool.invoke(b"{}"))  # at once, no waiting for the exit
        assert after["pid"] != pid
        assert after["calls"] == 1
