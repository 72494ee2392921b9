"""HttpTarget against a real aiohttp server on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from poller.core.outcome import FunctionFailed, NotInvoked, Succeeded, TimedOut
from poller.dispatch.invoker import Invoker
from poller.errors import TargetConfigError
from poller.observability.metrics import Metrics
from poller.targets.base import Target
from poller.targets.factory import TargetSpec, open_target

pytestmark = pytest.mark.integration

MARKER = "card-4111-1111-1111-1111"
QUOTING_BODY = f"slow down, still busy with {MARKER}".encode()
ERROR_DOC = {"errorMessage": "bad record", "errorType": "ValueError", "stackTrace": ["  File x", "  y"]}


@dataclass
class FunctionServer:
    base_url: str
    received: list[tuple[bytes, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)


def make_app(server: FunctionServer) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        server.received.append((body, request.headers.get("Content-Type", "")))
        return web.Response(body=body, content_type="application/json", headers={"X-Amz-Request-Id": "req-1"})

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"batchItemFailures": []})

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def function_error(request: web.Request) -> web.Response:
        headers = {"X-Amz-Function-Error": "Handled", "X-Amz-Request-Id": "req-2"}
        return web.json_response(ERROR_DOC, headers=headers)

    async def function_error_text(request: web.Request) -> web.Response:
        return web.Response(status=502, text="x" * 5000, headers={"X-Amz-Function-Error": "Oops"})

    async def fails(request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal trouble")

    async def throttled(request: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "2"})

    async def throttled_quoting(request: web.Request) -> web.Response:
        status = int(request.path.split("-")[0].removeprefix("/"))
        return web.Response(status=status, body=QUOTING_BODY, headers={"Retry-After": "7"})

    async def unavailable(request: web.Request) -> web.Response:
        later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
        return web.Response(status=503, headers={"Retry-After": later})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def slow(request: web.Request) -> web.Response:
        server.slow_started.set()
        await server.release.wait()  # released by the fixture, so shutdown never waits on it
        return web.json_response("late")

    async def hang_up(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # the request arrived; the reply never will
        return web.Response()

    app = web.Application()
    for path, handler in {
        "/echo": echo,
        "/ok": ok,
        "/empty": empty,
        "/function-error": function_error,
        "/function-error-text": function_error_text,
        "/500": fails,
        "/429": throttled,
        "/503": unavailable,
        "/429-quoting": throttled_quoting,
        "/503-quoting": throttled_quoting,
        "/redirect": redirect,
        "/slow": slow,
        "/hang-up": hang_up,
    }.items():
        app.router.add_post(path, handler)
    return app


@pytest.fixture
async def function_server() -> AsyncIterator[FunctionServer]:
    server = FunctionServer(base_url="")
    runner = web.AppRunner(make_app(server), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"http://{host}:{port}"
    yield server
    server.release.set()
    await runner.cleanup()


@pytest.fixture
async def open_http() -> AsyncIterator[Callable[..., Awaitable[Target]]]:
    targets: list[Target] = []

    async def opener(url: str, timeout: float = 5.0) -> Target:
        spec = TargetSpec(
            function_name=url,
            mapping_name="http-mapping",
            timeout_seconds=timeout,
            region="us-east-1",
            account_id="000000000000",
            endpoint_url=None,
        )
        target = await open_target(spec)
        targets.append(target)
        return target

    yield opener
    for target in targets:
        await target.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_payload_arrives_byte_for_byte_as_json(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    target = await open_http(f"{function_server.base_url}/echo")
    assert target.kind == "http"
    payload = orjson.dumps({"Records": [{"body": "ünïcode \u2028", "n": 1}]}) + b"  "
    outcome = await target.invoke(payload)
    assert isinstance(outcome, Succeeded)
    assert function_server.received == [(payload, "application/json")]
    assert outcome.payload == payload
    assert outcome.request_id == "req-1"


async def test_json_reply_is_the_response(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/ok")).invoke(b"{}")
    assert isinstance(outcome, Succeeded)
    assert orjson.loads(outcome.payload) == {"batchItemFailures": []}
    assert outcome.status_code == 200
    assert outcome.request_id  # generated when the server sends none


async def test_empty_reply_is_a_success_with_an_empty_body(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/empty")).invoke(b"{}")
    assert isinstance(outcome, Succeeded)
    assert outcome.payload == b""


async def test_function_error_header_is_a_function_error(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/function-error")).invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.function_error == "Handled"
    assert (outcome.error_type, outcome.error_message) == ("ValueError", "bad record")
    assert outcome.stack_trace == ("  File x", "  y")
    assert outcome.status_code == 200
    assert outcome.request_id == "req-2"
    assert orjson.loads(outcome.payload) == ERROR_DOC


async def test_function_error_with_a_body_that_is_not_json(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/function-error-text")).invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.function_error == "Unhandled"  # an unknown header value
    assert outcome.error_type == "FunctionError"
    assert outcome.error_message == "x" * 1024 + "…"
    assert outcome.status_code == 502


async def test_server_error_is_a_function_error(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/500")).invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert (outcome.error_type, outcome.error_message, outcome.status_code) == (
        "HTTP500",
        "internal trouble",
        500,
    )


async def test_redirect_is_not_followed(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/redirect")).invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.error_type == "HTTP302"


async def test_429_is_throttled_with_retry_after_seconds(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/429")).invoke(b"{}")
    assert outcome == NotInvoked(
        "throttled", "HTTP 429; Retry-After: 2; body 9 bytes", retry_after_seconds=2.0
    )


@pytest.mark.parametrize("status", [429, 503])
async def test_a_throttle_reply_body_is_in_no_outcome_text_or_log_line(
    status: int, function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    """DESIGN §1.8: a 429/503 body may quote the batch; the throttle says its status, Retry-After
    and size only."""
    target = await open_http(f"{function_server.base_url}/{status}-quoting")
    invoker = Invoker(
        target=target,
        metrics=Metrics(CollectorRegistry()).for_mapping("http-mapping"),
        source_kind="sqs",
        report_batch_item_failures=False,
    )
    with capture_logs() as logs:
        attempt = await invoker.invoke(b"{}", ["id-1"], attempt=1, log_fields={"mapping": "http-mapping"})
    outcome = attempt.outcome
    assert MARKER not in str(outcome)
    [line] = [entry for entry in logs if entry["event"] == "batch_attempt"]
    for entry in logs:
        assert MARKER not in str(entry), entry
    detail = f"HTTP {status}; Retry-After: 7; body {len(QUOTING_BODY)} bytes"
    assert outcome == NotInvoked("throttled", detail, retry_after_seconds=7.0)
    assert line["outcome"] == "throttled"
    assert line["error"] == f"throttled: {detail}"


async def test_503_is_throttled_with_retry_after_date(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/503")).invoke(b"{}")
    assert isinstance(outcome, NotInvoked)
    assert outcome.reason == "throttled"
    assert outcome.retry_after_seconds is not None
    assert 25 <= outcome.retry_after_seconds <= 30


async def test_slow_function_times_out(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    target = await open_http(f"{function_server.base_url}/slow", timeout=0.5)
    started = time.monotonic()
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, TimedOut)
    assert function_server.slow_started.is_set()  # it did reach the function
    assert outcome.timeout_seconds == 0.5
    assert time.monotonic() - started < 2.0


async def test_connection_lost_after_sending_is_a_function_error(
    function_server: FunctionServer, open_http: Callable[..., Awaitable[Target]]
) -> None:
    outcome = await (await open_http(f"{function_server.base_url}/hang-up")).invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.error_type == "ConnectionError"


async def test_connection_refused_is_unreachable(open_http: Callable[..., Awaitable[Target]]) -> None:
    outcome = await (await open_http(f"http://127.0.0.1:{closed_port()}/fn")).invoke(b"{}")
    assert isinstance(outcome, NotInvoked)
    assert outcome.reason == "unreachable"
    assert "ClientConnectorError" in outcome.detail


async def test_url_without_host_is_refused_at_open(open_http: Callable[..., Awaitable[Target]]) -> None:
    with pytest.raises(TargetConfigError):
        await open_http("http:///no-host")
