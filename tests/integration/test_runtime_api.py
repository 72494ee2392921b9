"""The Runtime API server against AWS's real runtime client and a real curl `bootstrap`.

`python -m awslambdaric app.handler` (4.2.2) and a bash custom runtime run as child processes
against `RuntimeApiServer`; nothing of the client is mocked. Section numbers are those of
/work/shared/spec/functions-and-templates.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import aiohttp
import orjson
import pytest

from poller.core.clock import SystemClock
from poller.functions.runtime_api import (
    InitFailed,
    InitOk,
    InvocationAbandoned,
    Replied,
    RuntimeApiServer,
    RuntimeErrored,
    RuntimeGone,
    RuntimeReply,
    TooLarge,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders"
TRACE = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
WAIT = 20.0


class InvokeArgs(TypedDict):
    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str
    client_context: NotRequired[str]
    cognito_identity: NotRequired[str]


@dataclass
class Environment:
    server: RuntimeApiServer
    process: asyncio.subprocess.Process
    code: Path
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    async def invoke(self, payload: object = None, **headers: str) -> RuntimeReply:
        return await asyncio.wait_for(self.server.invoke(**self.args(payload, **headers)), WAIT)

    @staticmethod
    def args(payload: object = None, **headers: str) -> InvokeArgs:
        args = InvokeArgs(
            request_id=str(uuid.uuid4()),
            payload=orjson.dumps(payload if payload is not None else {"n": 1}),
            deadline_ms=int(time.time() * 1000) + 3000,
            invoked_function_arn=ARN,
            trace_id=TRACE,
        )
        if "client_context" in headers:
            args["client_context"] = headers["client_context"]
        if "cognito_identity" in headers:
            args["cognito_identity"] = headers["cognito_identity"]
        return args

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.process.wait(), WAIT)


def lambda_env(address: str, code: Path, handler: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": address,
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(code),
    }


@asynccontextmanager
async def environment(
    tmp_path: Path, files: dict[str, str], handler: str = "app.handler", *, bootstrap: bool = False
) -> AsyncIterator[Environment]:
    """One environment: a server, and the runtime process started against it (cwd = the code, §1.11)."""
    code = tmp_path / "code"
    code.mkdir()
    for name, text in files.items():
        (code / name).write_text(textwrap.dedent(text))
    argv = [str(code / "bootstrap")] if bootstrap else [sys.executable, "-m", "awslambdaric", handler]
    if bootstrap:
        (code / "bootstrap").chmod(0o755)
    server = RuntimeApiServer(clock=SystemClock())
    address = await server.start()
    output = tmp_path / "runtime.log"
    process: asyncio.subprocess.Process | None = None
    with output.open("wb") as sink:
        try:
            # A session of its own, so the kill below reaches curl children of a bootstrap too.
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=code,
                env=lambda_env(address, code, handler),
                stdout=sink,
                stderr=sink,
                start_new_session=True,
            )
            yield Environment(server, process, code, output)
        finally:
            if process is not None:
                if process.returncode is None:
                    with suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            await server.close()


async def ready(env: Environment) -> None:
    assert await asyncio.wait_for(env.server.wait_ready(), WAIT) == InitOk(), env.log()


APP = """
    import os, time
    invocations = 0

    def handler(event, context):
        global invocations
        invocations += 1
        first = context.get_remaining_time_in_millis()
        now_ms = int(time.time() * 1000)
        time.sleep(0.05)
        return {
            "event": event,
            "invocations": invocations,
            "pid": os.getpid(),
            "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn,
            "function_name": context.function_name,
            "memory": context.memory_limit_in_mb,
            "remaining": [first, context.get_remaining_time_in_millis()],
            "now_ms": now_ms,
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            "identity": context.identity.cognito_identity_id if context.identity else None,
            "custom": context.client_context.custom if context.client_context else None,
        }

    def boom(event, context):
        raise ValueError("bad thing")

    def huge(event, context):
        return "x" * 7_000_000

    def wait_for_flag(event, context):
        open("started", "w").close()
        while not os.path.exists("release"):
            time.sleep(0.01)
        return {"late": True}
"""


# awslambdaric ------------------------------------------------------------------------------------


async def test_dict_result_context_and_warm_module_state(tmp_path: Path) -> None:
    """§1.3, §1.11: the event and headers reach the handler; the JSON result comes back; Init ran once."""
    async with environment(tmp_path, {"app.py": APP}) as env:
        await ready(env)
        args = env.args({"records": [1, 2]})
        reply = await asyncio.wait_for(env.server.invoke(**args), WAIT)
        assert isinstance(reply, Replied), reply
        assert reply.content_type == "application/json"
        first = orjson.loads(reply.body)
        assert first["event"] == {"records": [1, 2]}
        assert first["request_id"] == args["request_id"]
        assert first["arn"] == ARN
        assert first["function_name"] == "orders"
        assert first["memory"] == "128"  # a string, as in Lambda (§5 trap 8)
        assert first["trace"] == TRACE  # awslambdaric sets _X_AMZN_TRACE_ID from the header (§1.11)
        assert first["identity"] is None
        assert first["custom"] is None

        # get_remaining_time_in_millis() counts down to the deadline we sent (§1.11).
        deadline_ms = args["deadline_ms"]
        before, after = first["remaining"]
        # `before` was read just ahead of `now_ms`: equal to deadline - now, up to the gap between.
        assert 0 <= before - (deadline_ms - first["now_ms"]) <= 100
        assert 0 < before <= 3000
        assert before - after >= 40

        # Warm: same process, module state kept (DESIGN §1.5.1).
        second = await env.invoke({"n": 2})
        assert isinstance(second, Replied)
        warm = orjson.loads(second.body)
        assert warm["invocations"] == 2
        assert warm["pid"] == first["pid"]


async def test_client_context_and_cognito_identity_reach_the_context(tmp_path: Path) -> None:
    """§1.3: the optional headers, when sent, become `context.client_context` / `context.identity`."""
    async with environment(tmp_path, {"app.py": APP}) as env:
        await ready(env)
        reply = await env.invoke(
            client_context='{"custom": {"tenant": "t1"}, "client": {}, "env": {}}',
            cognito_identity='{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}',
        )
        assert isinstance(reply, Replied)
        body = orjson.loads(reply.body)
        assert body["identity"] == "id-1"
        assert body["custom"] == {"tenant": "t1"}


async def test_handler_exception_is_relayed_as_awslambdaric_posts_it(tmp_path: Path) -> None:
    """§1.5, §1.10: the error document as posted (errorType, errorMessage, requestId, stackTrace);
    no error-type header → Runtime.Unknown; a function error does not end the environment (§2.2)."""
    async with environment(tmp_path, {"app.py": APP}, "app.boom") as env:
        await ready(env)
        args = env.args()
        reply = await asyncio.wait_for(env.server.invoke(**args), WAIT)
        assert isinstance(reply, RuntimeErrored), reply
        assert reply.error_type == "Runtime.Unknown"
        doc = orjson.loads(reply.body)
        assert doc["errorType"] == "ValueError"
        assert doc["errorMessage"] == "bad thing"
        assert doc["requestId"] == args["request_id"]
        assert isinstance(doc["stackTrace"], list)
        assert any('raise ValueError("bad thing")' in line for line in doc["stackTrace"])
        again = await env.invoke()
        assert isinstance(again, RuntimeErrored)
        assert env.process.returncode is None


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        ({"app.py": APP}, "nomod.handler", "Runtime.ImportModuleError", "Unable to import module 'nomod'"),
        ({"app.py": APP}, "app.nope", "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"),
    ],
    ids=["import-error", "handler-not-found"],
)
async def test_init_errors_fail_init_and_every_invocation(
    tmp_path: Path, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    """§1.6, §1.10, §5 trap 17: /init/error ends Init at once with the runtime's own payload."""
    async with environment(tmp_path, files, handler) as env:
        result = await asyncio.wait_for(env.server.wait_ready(), WAIT)
        assert isinstance(result, InitFailed), env.log()
        assert result.error_type == error_type
        doc = orjson.loads(result.body)
        assert doc["errorType"] == error_type
        assert doc["errorMessage"].startswith(message)
        assert doc["requestId"] == ""
        assert await env.exit_code() == 1  # awslambdaric exits after a 202 (§1.6)
        env.server.process_exited()
        reply = await env.invoke()
        assert reply == RuntimeErrored(error_type, result.body)


async def test_response_over_the_limit(tmp_path: Path) -> None:
    """§1.4, §5 trap 5: the runtime gets 413 (and awslambdaric exits 1); the invoker TooLarge."""
    async with environment(tmp_path, {"app.py": APP}, "app.huge") as env:
        await ready(env)
        reply = await env.invoke()
        assert reply == TooLarge()
        assert orjson.loads(reply.body)["errorType"] == "Function.ResponseSizeTooLarge"
        assert await env.exit_code() == 1
        assert "Failed to post invocation response" in env.log()


async def test_abandoned_invocation_then_late_response_is_refused(tmp_path: Path) -> None:
    """§1.4, §1.7: after a timeout the late post gets 410 InvokeTimeout; awslambdaric treats any
    non-2xx as fatal and exits 1."""
    async with environment(tmp_path, {"app.py": APP}, "app.wait_for_flag") as env:
        await ready(env)
        args = env.args()
        task = asyncio.create_task(env.server.invoke(**args))
        await wait_until((env.code / "started").exists, timeout=WAIT, what="the handler to start")
        env.server.abandon(args["request_id"])
        with pytest.raises(InvocationAbandoned):
            await task
        (env.code / "release").touch()
        assert await env.exit_code() == 1


async def test_cancelling_invoke_abandons_it(tmp_path: Path) -> None:
    """The caller's timeout is a cancellation: the invocation is abandoned, the late post refused."""
    async with environment(tmp_path, {"app.py": APP}, "app.wait_for_flag") as env:
        await ready(env)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(env.server.invoke(**env.args()), 0.5)
        (env.code / "release").touch()
        assert await env.exit_code() == 1


async def test_process_exit_releases_an_invocation(tmp_path: Path) -> None:
    """§2.4: a process that dies mid-invocation; the pool says so and the waiter is released."""
    async with environment(tmp_path, {"app.py": APP}, "app.wait_for_flag") as env:
        await ready(env)
        task = asyncio.create_task(env.server.invoke(**env.args()))
        await wait_until((env.code / "started").exists, timeout=WAIT, what="the handler to start")
        env.process.kill()
        await env.exit_code()
        env.server.process_exited()
        with pytest.raises(RuntimeGone):
            await task


async def test_close_answers_the_parked_long_poll_at_once(tmp_path: Path) -> None:
    """§1.2: closing answers the parked /next with 500, and awslambdaric exits; close is prompt."""
    async with environment(tmp_path, {"app.py": APP}) as env:
        await ready(env)
        started = time.monotonic()
        await env.server.close()
        assert time.monotonic() - started < 1.0
        assert await env.exit_code() == 1


# The HTTP surface without a runtime ----------------------------------------------------------------


async def test_replies_are_json_typed_and_stubs_answer_as_rie() -> None:
    """§1.1 stubs; §1.7 exact error bodies; §1.11 Content-Type on every reply, errors included."""
    server = RuntimeApiServer(clock=SystemClock())
    base = f"http://{await server.start()}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/2018-06-01/runtime/invocation/nope/response", data=b"{}") as r:
                assert r.status == 400
                assert r.headers["Content-Type"] == "application/json"
                assert (
                    await r.read()
                    == b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}\n'
                )
            async with http.put(f"{base}/2020-08-15/logs", data=b"{}") as r:
                assert r.status == 202
                assert await r.json() == {
                    "errorMessage": "Logs API is not supported",
                    "errorType": "Logs.NotSupported",
                }
            async with http.put(f"{base}/2022-07-01/telemetry", data=b"{}") as r:
                assert r.status == 202
                assert (await r.json())["errorType"] == "Telemetry.NotSupported"
            async with http.post(f"{base}/2020-01-01/extension/register", data=b"{}") as r:
                assert r.status == 404
                assert await r.read() == b""
            async with http.post(f"{base}/2018-06-01/runtime/invocation/next") as r:
                assert r.status == 405
                assert r.headers["Content-Type"] == "application/json"
                assert (await r.json())["errorType"] == "MethodNotAllowed"
            async with http.get(f"{base}/2018-06-01/runtime/elsewhere") as r:
                assert r.status == 404
                assert r.headers["Content-Type"] == "application/json"
            # Init: a first /next parks; once it is parked Init is over and /init/error is a 403.
            poll = asyncio.create_task(http.get(f"{base}/2018-06-01/runtime/invocation/next"))
            assert await asyncio.wait_for(server.wait_ready(), WAIT) == InitOk()
            async with http.post(f"{base}/2018-06-01/runtime/init/error", data=b"{}") as r:
                assert r.status == 403
                assert r.headers["Content-Type"] == "application/json"
                assert (await r.json())["errorMessage"] == (
                    "State transition from Ready to InitError failed for runtime. "
                    "Error: State transition is not allowed"
                )
            await server.close()
            async with await asyncio.wait_for(poll, WAIT) as r:
                assert r.status == 500
                assert r.headers["Content-Type"] == "application/json"
    finally:
        await server.close()


async def test_chunked_response_over_the_limit_is_refused_while_read() -> None:
    """§1.4: a body without Content-Length is counted as it arrives and refused past the limit."""
    server = RuntimeApiServer(clock=SystemClock())
    base = f"http://{await server.start()}/2018-06-01/runtime/invocation"
    try:
        async with aiohttp.ClientSession() as http:
            poll = asyncio.create_task(http.get(f"{base}/next"))
            await asyncio.wait_for(server.wait_ready(), WAIT)
            invocation = asyncio.create_task(server.invoke(**Environment.args()))
            async with await asyncio.wait_for(poll, WAIT) as event:
                assert event.headers["Content-Type"] == "application/json"
                request_id = event.headers["Lambda-Runtime-Aws-Request-Id"]

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(7):
                    yield b"x" * 1_000_000

            async with http.post(f"{base}/{request_id}/response", data=chunks()) as r:
                assert r.status == 413
                assert (await r.json())["errorType"] == "RequestEntityTooLarge"
            assert await asyncio.wait_for(invocation, WAIT) == TooLarge()
    finally:
        await server.close()


# Custom runtime: a bash bootstrap using curl (§1.13) ---------------------------------------------

BOOTSTRAP = r"""
    #!/bin/bash
    # AWS's tutorial loop, under bash (Debian's /bin/sh is dash: no pipefail; §1.13, §5 trap 9).
    set -euo pipefail
    API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
    HANDLER_FILE="$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).sh"
    if [ ! -f "$HANDLER_FILE" ]; then
      curl -sS -o /dev/null -X POST "$API/init/error" \
        -H "Lambda-Runtime-Function-Error-Type: Runtime.NoSuchHandler" \
        -d "{\"errorMessage\":\"no $HANDLER_FILE\",\"errorType\":\"Runtime.NoSuchHandler\"}"
      exit 1
    fi
    source "$HANDLER_FILE"
    COUNT=0
    while true; do
      HEADERS="$(mktemp)"
      EVENT=$(curl -sS -D "$HEADERS" "$API/invocation/next")
      REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
      COUNT=$((COUNT + 1))
      if [[ "$EVENT" == *fail* ]]; then
        curl -sS -o /dev/null "$API/invocation/$REQUEST_ID/error" \
          -H "Lambda-Runtime-Function-Error-Type: Function.ShellFailure" \
          -d "{\"errorMessage\":\"failed on $REQUEST_ID\",\"errorType\":\"ShellFailure\"}"
      else
        RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT")
        curl -sS -o /dev/null "$API/invocation/$REQUEST_ID/response" -d "$RESPONSE (invocation $COUNT)"
      fi
    done
"""

FUNCTION_SH = """
    function handler () {
      echo "Echoing request: '$1'"
    }
"""


async def test_shell_bootstrap_with_curl(tmp_path: Path) -> None:
    """§1.13: a `bootstrap` speaking the Runtime API with curl: responses, errors, warm loop state."""
    files = {"bootstrap": BOOTSTRAP.lstrip("\n"), "function.sh": FUNCTION_SH}
    async with environment(tmp_path, files, "function.handler", bootstrap=True) as env:
        await ready(env)
        reply = await env.invoke({"text": "Hello"})
        # curl -d posts form-encoded, non-JSON bodies; they are relayed as they are.
        assert reply == Replied(
            b'Echoing request: \'{"text":"Hello"}\' (invocation 1)', "application/x-www-form-urlencoded"
        ), env.log()
        args = env.args({"fail": True})
        failed = await asyncio.wait_for(env.server.invoke(**args), WAIT)
        document = {"errorMessage": f"failed on {args['request_id']}", "errorType": "ShellFailure"}
        assert failed == RuntimeErrored("Function.ShellFailure", orjson.dumps(document))
        again = await env.invoke({"text": "again"})
        assert isinstance(again, Replied)
        assert again.body.endswith(b"(invocation 3)")


async def test_shell_bootstrap_init_error(tmp_path: Path) -> None:
    """§1.6, §1.13: a custom runtime reports its failed Init with the header's error type."""
    files = {"bootstrap": BOOTSTRAP.lstrip("\n")}
    async with environment(tmp_path, files, "missing.handler", bootstrap=True) as env:
        result = await asyncio.wait_for(env.server.wait_ready(), WAIT)
        assert isinstance(result, InitFailed), env.log()
        assert result.error_type == "Runtime.NoSuchHandler"
        assert orjson.loads(result.body)["errorType"] == "Runtime.NoSuchHandler"
        assert await env.exit_code() == 1
