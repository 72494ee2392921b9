"""LambdaTarget against moto's Lambda (server mode, no Docker) and a stub of the Invoke REST API.

moto without Docker never runs the function: it echoes the payload or replays queued replies,
never sets FunctionError, never throttles and never checks that the function exists. What moto
cannot produce (function errors, throttles, slow replies) comes from a small aiohttp stub that
speaks the same `POST /2015-03-31/functions/{name}/invocations` path.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import urllib.request
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiobotocore.session
import orjson
import pytest
from aiohttp import web

from poller.core.outcome import FunctionFailed, NotInvoked, Succeeded, TimedOut
from poller.targets.factory import TargetSpec, open_target
from poller.targets.lambda_invoke import LambdaTarget

pytestmark = pytest.mark.integration

REGION = "us-east-1"
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def post_json(url: str, doc: dict[str, Any]) -> dict[str, Any] | None:
    request = urllib.request.Request(
        url, data=json.dumps(doc).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        body = reply.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def moto_lambda_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto's config is process-wide (the server runs in this process): put back what we found.
    with urllib.request.urlopen(f"{endpoint}/moto-api/config", timeout=10) as reply:
        found = json.loads(reply.read())["lambda"]
    post_json(f"{endpoint}/moto-api/config", {"lambda": {"use_docker": False}})
    yield endpoint
    post_json(f"{endpoint}/moto-api/config", {"lambda": found})
    server.stop()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


def spec_for(function_name: str, endpoint: str, timeout: float = 3.0) -> TargetSpec:
    return TargetSpec(
        function_name=function_name,
        mapping_name="lambda-mapping",
        timeout_seconds=timeout,
        region=REGION,
        account_id="123456789012",
        endpoint_url=endpoint,
    )


async def create_function(endpoint: str) -> str:
    """A role and a function with unique names: moto's state outlives each test."""
    name = f"fn-{uuid.uuid4().hex[:12]}"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    session = aiobotocore.session.get_session()
    async with (
        session.create_client("iam", region_name=REGION, endpoint_url=endpoint) as iam,
        session.create_client("lambda", region_name=REGION, endpoint_url=endpoint) as lam,
    ):
        role = await iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))
        await lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="app.handler",
            Code={"ZipFile": archive.getvalue()},
        )
    return name


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_invoke_returns_the_function_response(moto_lambda_endpoint: str) -> None:
    name = await create_function(moto_lambda_endpoint)
    target = await open_target(spec_for(name, moto_lambda_endpoint))
    try:
        assert isinstance(target, LambdaTarget)
        assert target.kind == "lambda"
        payload = orjson.dumps({"Records": [{"messageId": "m-1", "body": "hello"}]})
        echoed = await target.invoke(payload)  # moto's simple Lambda echoes the event
        assert isinstance(echoed, Succeeded)
        assert echoed.payload == payload
        assert echoed.status_code == 200
        assert echoed.request_id

        reply = {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
        post_json(
            f"{moto_lambda_endpoint}/moto-api/static/lambda-simple/response",
            {"results": [json.dumps(reply)], "region": REGION},
        )
        queued = await target.invoke(payload)
        assert isinstance(queued, Succeeded)
        assert orjson.loads(queued.payload) == reply
    finally:
        await target.aclose()


async def test_function_arn_is_accepted(moto_lambda_endpoint: str) -> None:
    name = await create_function(moto_lambda_endpoint)
    target = await open_target(
        spec_for(f"arn:aws:lambda:{REGION}:123456789012:function:{name}", moto_lambda_endpoint)
    )
    try:
        assert isinstance(await target.invoke(b"{}"), Succeeded)
    finally:
        await target.aclose()


async def test_unknown_function_is_unreachable(moto_lambda_endpoint: str) -> None:
    # Only moto's Docker backend looks functions up (and fails before touching Docker); the
    # simple backend answers for any name. Switch for this one test.
    post_json(f"{moto_lambda_endpoint}/moto-api/config", {"lambda": {"use_docker": True}})
    target = await open_target(spec_for("no-such-function", moto_lambda_endpoint))
    try:
        outcome = await target.invoke(b"{}")
    finally:
        await target.aclose()
        post_json(f"{moto_lambda_endpoint}/moto-api/config", {"lambda": {"use_docker": False}})
    assert isinstance(outcome, NotInvoked)
    assert outcome.reason == "unreachable"
    assert outcome.detail.startswith("ResourceNotFoundException: Function not found")


async def test_closed_endpoint_is_unreachable() -> None:
    target = await open_target(spec_for("fn", f"http://127.0.0.1:{closed_port()}"))
    try:
        outcome = await target.invoke(b"{}")
    finally:
        await target.aclose()
    assert isinstance(outcome, NotInvoked)
    assert outcome.reason == "unreachable"
    assert "Could not connect to the endpoint URL" in outcome.detail


# --- What moto cannot produce: a stub of the Invoke REST API -------------------------------------

ERROR_DOC = {"errorMessage": "bad record", "errorType": "ValueError", "requestId": "r", "stackTrace": ["  a"]}


class InvokeStub:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.release = asyncio.Event()

    async def invoke(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        await request.read()
        rid = {"x-amzn-RequestId": f"stub-{name}"}
        if name == "fails":
            headers = {**rid, "X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "7"}
            return web.json_response(ERROR_DOC, headers=headers)
        if name == "times-out":
            doc = {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}
            return web.json_response(doc, headers={**rid, "X-Amz-Function-Error": "Unhandled"})
        if name == "throttled":
            headers = {**rid, "x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "7"}
            doc = {"Type": "User", "message": "Rate exceeded", "Reason": "CallerRateLimitExceeded"}
            return web.json_response(doc, status=429, headers=headers)
        if name == "conflict":
            headers = {**rid, "x-amzn-ErrorType": "ResourceConflictException"}
            doc = {"Type": "User", "message": "The operation cannot be performed at this time."}
            return web.json_response(doc, status=409, headers=headers)
        if name == "slow":
            await self.release.wait()
        return web.json_response({"ok": True}, headers=rid)


@pytest.fixture
async def stub_endpoint() -> AsyncIterator[tuple[str, InvokeStub]]:
    stub = InvokeStub()
    app = web.Application()
    app.router.add_post("/2015-03-31/functions/{name}/invocations", stub.invoke)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", stub
    stub.release.set()
    await runner.cleanup()


async def invoke_stub(endpoint: str, name: str, *, read_timeout_margin_seconds: float = 5.0) -> Any:
    target = await LambdaTarget.open(
        name,
        timeout_seconds=1.0,
        region=REGION,
        endpoint_url=endpoint,
        read_timeout_margin_seconds=read_timeout_margin_seconds,
    )
    try:
        return await target.invoke(b"{}")
    finally:
        await target.aclose()


async def test_function_error_reply_is_a_function_error(stub_endpoint: tuple[str, InvokeStub]) -> None:
    outcome = await invoke_stub(stub_endpoint[0], "fails")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.function_error == "Unhandled"
    assert (outcome.error_type, outcome.error_message, outcome.stack_trace) == (
        "ValueError",
        "bad record",
        ("  a",),
    )
    assert (outcome.status_code, outcome.executed_version, outcome.request_id) == (200, "7", "stub-fails")
    assert orjson.loads(outcome.payload) == ERROR_DOC


async def test_sandbox_timeout_reply_is_a_timeout(stub_endpoint: tuple[str, InvokeStub]) -> None:
    outcome = await invoke_stub(stub_endpoint[0], "times-out")
    assert outcome == TimedOut(1.0, request_id="stub-times-out", detail="Task timed out after 1.00 seconds")


async def test_throttle_is_not_invoked_and_not_retried_by_the_sdk(
    stub_endpoint: tuple[str, InvokeStub],
) -> None:
    endpoint, stub = stub_endpoint
    outcome = await invoke_stub(endpoint, "throttled")
    assert outcome == NotInvoked(
        "throttled", "TooManyRequestsException: Rate exceeded", retry_after_seconds=7.0
    )
    assert stub.hits["throttled"] == 1  # one decision, one invoke: the SDK's retries are off


async def test_other_error_codes_are_unreachable(stub_endpoint: tuple[str, InvokeStub]) -> None:
    outcome = await invoke_stub(stub_endpoint[0], "conflict")
    assert outcome == NotInvoked(
        "unreachable", "ResourceConflictException: The operation cannot be performed at this time."
    )


async def test_reply_slower_than_the_read_timeout_is_a_timeout(stub_endpoint: tuple[str, InvokeStub]) -> None:
    outcome = await invoke_stub(stub_endpoint[0], "slow", read_timeout_margin_seconds=0.0)
    assert isinstance(outcome, TimedOut)
    assert outcome.timeout_seconds == 1.0
