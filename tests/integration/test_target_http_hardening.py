"""HTTP targets against real aiohttp servers: whole bodies up to Lambda's limit, per-host headers
from the settings, and no credential or function body in /status or the logs (DESIGN §1.5, §1.8)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from poller.core.batch_result import BatchPartiallyFailed, classify
from poller.core.outcome import FunctionFailed, Succeeded
from poller.targets.base import Target
from poller.targets.factory import TargetSpec, open_target
from poller.targets.http import MAX_RESPONSE_BYTES
from tests.integration.conftest import StartPoller, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

CHUNK_PAUSE_SECONDS = 0.05
"""Simulated network between chunks: long enough that they arrive as separate reads."""


@dataclass
class Server:
    base_url: str = ""
    headers: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


async def stream(request: web.Request, parts: list[bytes], **headers: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i, part in enumerate(parts):
        if i:
            await asyncio.sleep(CHUNK_PAUSE_SECONDS)
        await response.write(part)
    await response.write_eof()
    return response


def make_app(server: Server) -> web.Application:
    partial = orjson.dumps(
        {"batchItemFailures": [{"itemIdentifier": "id-2"}, {"itemIdentifier": "id-4"}], "pad": "p" * 20_000}
    )

    async def chunked_partial(request: web.Request) -> web.StreamResponse:
        await request.read()
        return await stream(request, [partial[i : i + 4096] for i in range(0, len(partial), 4096)])

    def body_of(size: int) -> list[bytes]:
        # A JSON string of exactly `size` bytes, sent 1 MiB at a time.
        text = b'"' + b"x" * (size - 2) + b'"'
        mib = 1 << 20
        return [text[i : i + mib] for i in range(0, len(text), mib)]

    async def at_limit(request: web.Request) -> web.StreamResponse:
        return await stream(request, body_of(MAX_RESPONSE_BYTES))

    async def over_limit(request: web.Request) -> web.StreamResponse:
        return await stream(request, body_of(MAX_RESPONSE_BYTES + 1), **{"X-Amz-Request-Id": "big-1"})

    async def declared_over_limit(request: web.Request) -> web.Response:
        return web.Response(body=b"0" * (MAX_RESPONSE_BYTES + 1), content_type="application/json")

    async def headers(request: web.Request) -> web.Response:
        server.headers.append(dict(request.headers))
        return web.json_response(None)

    app = web.Application()
    for path, handler in {
        "/chunked-partial": chunked_partial,
        "/at-limit": at_limit,
        "/over-limit": over_limit,
        "/declared-over-limit": declared_over_limit,
        "/headers": headers,
    }.items():
        app.router.add_post(path, handler)
    return app


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    runner = web.AppRunner(make_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.base_url = f"http://{host}:{port}"
    yield state
    await runner.cleanup()


OpenHttp = Callable[..., Awaitable[Target]]


@pytest.fixture
async def open_http() -> AsyncIterator[OpenHttp]:
    targets: list[Target] = []

    async def opener(url: str, http_headers: dict[str, dict[str, SecretStr]] | None = None) -> Target:
        spec = TargetSpec(
            function_name=url,
            mapping_name="http-mapping",
            timeout_seconds=10,
            region="us-east-1",
            account_id="000000000000",
            endpoint_url=None,
            http_headers=http_headers or {},
        )
        target = await open_target(spec)
        targets.append(target)
        return target

    yield opener
    for target in targets:
        await target.aclose()


async def test_a_partial_batch_response_in_many_chunks_is_read_whole(
    server: Server, open_http: OpenHttp
) -> None:
    outcome = await (await open_http(f"{server.base_url}/chunked-partial")).invoke(b"{}")
    assert isinstance(outcome, Succeeded)
    result = classify(outcome, ["id-1", "id-2", "id-3", "id-4"], report_batch_item_failures=True)
    assert result == BatchPartiallyFailed(("id-2", "id-4"))


async def test_a_response_of_exactly_the_limit_is_accepted(server: Server, open_http: OpenHttp) -> None:
    outcome = await (await open_http(f"{server.base_url}/at-limit")).invoke(b"{}")
    assert isinstance(outcome, Succeeded)
    assert len(outcome.payload) == MAX_RESPONSE_BYTES == 6_291_556


@pytest.mark.parametrize("path", ["/over-limit", "/declared-over-limit"])
async def test_a_response_over_the_limit_is_lambdas_function_error(
    server: Server, open_http: OpenHttp, path: str
) -> None:
    """spec functions-and-templates §1.4, §1.10: Function.ResponseSizeTooLarge, Unhandled."""
    target = await open_http(f"{server.base_url}{path}")
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.function_error == "Unhandled"
    assert outcome.error_type == "Function.ResponseSizeTooLarge"
    assert (
        outcome.error_message
        == "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
    )
    assert orjson.loads(outcome.payload)["errorType"] == "Function.ResponseSizeTooLarge"
    if path == "/over-limit":
        assert outcome.request_id == "big-1"
    # The cut-off connection is not reused: the next reply is read from a clean one.
    again = await target.invoke(b"{}")
    assert isinstance(again, FunctionFailed)
    assert again.error_type == "Function.ResponseSizeTooLarge"


async def test_configured_headers_reach_the_function_host_and_port_first(
    server: Server, open_http: OpenHttp
) -> None:
    host_port = server.base_url.removeprefix("http://")
    table = {
        "127.0.0.1": {"Authorization": SecretStr("Bearer host-only"), "X-Other": SecretStr("o")},
        host_port: {"Authorization": SecretStr("Bearer host-and-port")},
    }
    await (await open_http(f"{server.base_url}/headers", table)).invoke(b"{}")
    await (await open_http(f"{server.base_url}/headers", {"127.0.0.1": table["127.0.0.1"]})).invoke(b"{}")
    await (await open_http(f"{server.base_url}/headers", {"other.example.com": table["127.0.0.1"]})).invoke(
        b"{}"
    )
    exact, host_only, none = server.headers
    assert exact["Authorization"] == "Bearer host-and-port"
    assert "X-Other" not in exact
    assert (host_only["Authorization"], host_only["X-Other"]) == ("Bearer host-only", "o")
    assert "Authorization" not in none
    assert all(h["Content-Type"] == "application/json" for h in server.headers)


# -- through `poller run` ------------------------------------------------------------------------

MARKER = "card-4111-1111-1111-1111"
SECRETS = ("hunter2pw", "t0ksecret", "k3ysecret")


ERROR_BODY = json.dumps({"errorType": "CardDeclined", "errorMessage": f"declined {MARKER}", "stackTrace": []})


@pytest.fixture
async def failing_function() -> AsyncIterator[Server]:
    """A function that records each request's headers and fails with an error quoting the batch."""
    state = Server()

    async def handle(request: web.Request) -> web.Response:
        state.headers.append(dict(request.headers))
        state.events.append(json.loads(await request.read()))
        return web.Response(
            text=ERROR_BODY, content_type="application/json", headers={"X-Amz-Function-Error": "Unhandled"}
        )

    app = web.Application()
    app.router.add_post("/invoke", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


async def test_service_sends_configured_headers_and_shows_no_secret_or_body(
    sqs: Any, make_queue: Any, failing_function: Server, start_poller: StartPoller
) -> None:
    """Credentials in FunctionName, a header from POLLER_TARGETS__HTTP_HEADERS and a function error
    quoting the batch: /status and every log line show none of them, but the error's type and size."""
    queue = make_queue(visibility=2)
    host_port = failing_function.base_url.removeprefix("http://")
    url = f"http://fnuser:hunter2pw@{host_port}/invoke?token=t0ksecret&region=eu"
    poller = await start_poller(
        [{"Name": "guarded", "EventSourceArn": queue.arn, "FunctionName": url}],
        env={"POLLER_TARGETS__HTTP_HEADERS": json.dumps({host_port: {"X-Api-Key": "k3ysecret"}})},
    )
    sqs.send_message(QueueUrl=queue.url, MessageBody="charge")
    await wait_until(lambda: len(failing_function.events) >= 1, what="an invocation")
    received = failing_function.headers[0]
    assert received["X-Api-Key"] == "k3ysecret"
    assert received["Authorization"].startswith("Basic ")  # aiohttp sends the URL's userinfo so

    def attempts() -> list[dict[str, Any]]:
        return [line for line in poller.logs() if line.get("event") == "batch_attempt"]

    await wait_until(lambda: len(attempts()) >= 1, what="the attempt's log line")
    _, status_body = poller.get("/status")
    [mapping] = json.loads(status_body)["mappings"]
    assert mapping["FunctionName"] == f"http://***@{host_port}/invoke?token=***&region=***"
    assert poller.terminate() == 0

    line = attempts()[0]
    assert (line["outcome"], line["error_type"]) == ("error", "CardDeclined")
    assert line["error_bytes"] == len(ERROR_BODY.encode())
    logs = poller.log_path.read_text()
    for secret in (*SECRETS, MARKER):
        assert secret not in status_body.decode(), secret
        assert secret not in logs, secret
