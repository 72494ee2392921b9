"""The Lambda Runtime API (2018-06-01) served to ONE execution environment (spec functions-and-templates §1).

A thin aiohttp loop around `RuntimeSession`, which decides every reply. One server per runtime
process, on its own `127.0.0.1` port: no Runtime API request says which environment sent it, so
the listening socket is the identity (spec §1.1, §5 trap 2) — and a replacement process after a
reset gets a new server, because the session's states do not go back to `Started`.

What the runtime clients demand of the transport (spec §1.3, §1.11): `/next` is a long poll the
server never times out; `/next`, `/response`, `/next` travel on one keep-alive connection; every
reply carries `Content-Type: application/json`; bodies are bounded (6,291,556 bytes) while read, so
an oversized post is refused without being buffered.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

from poller.core.clock import Clock
from poller.functions.results import (
    MAX_PAYLOAD_BYTES,
    InitFailed,
    InitOk,
    InitResult,
    InvocationAbandoned,
    Replied,
    RuntimeErrored,
    RuntimeGone,
    RuntimeReply,
    TooLarge,
)
from poller.functions.runtime_state import (
    HttpReply,
    InitEnded,
    InvocationEnded,
    RuntimeSession,
    SessionEnded,
    Step,
    error_body,
)

__all__ = [
    "InitFailed",
    "InitOk",
    "InitResult",
    "InvocationAbandoned",
    "Replied",
    "RuntimeApiServer",
    "RuntimeErrored",
    "RuntimeGone",
    "RuntimeReply",
    "TooLarge",
]

log = structlog.get_logger("poller.functions.runtime_api")

RUNTIME = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
READ_CHUNK = 64 * 1024
SHUTDOWN_SECONDS = 1.0
"""close() wakes every parked `/next` first, so in-flight handlers end at once; this only bounds a
runtime that is still uploading a body when its environment is torn down."""

# RIE with extensions disabled: extension calls are 404s, and the Logs / Telemetry APIs answer
# 202 with a NotSupported error "to prevent customer code from crashing" (spec §1.1).
_LOGS_STUB = HttpReply(202, error_body("Logs.NotSupported", "Logs API is not supported"))
_TELEMETRY_STUB = HttpReply(202, error_body("Telemetry.NotSupported", "Telemetry API is not supported"))
_EXTENSION_STUB = HttpReply(404, b"")


class _Truncated(Exception):
    """The post's body ended before its declared length (the runtime went away mid-upload)."""


async def _read_bounded(request: web.Request) -> bytes | None:
    """The body, or None as soon as it is known to exceed `MAX_PAYLOAD_BYTES` (never buffered).

    What is left unread aiohttp discards after the reply (its lingering close), so the runtime
    still reads the 413 rather than a reset connection.
    """
    declared = request.content_length
    if declared is not None and declared > MAX_PAYLOAD_BYTES:
        return None
    body = bytearray()
    try:
        if declared is not None:  # every runtime client's case: one read, of a length known to fit
            return await request.content.readexactly(declared)
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            body += chunk
            if len(body) > MAX_PAYLOAD_BYTES:
                return None
    except (ConnectionError, HttpProcessingError, asyncio.IncompleteReadError) as exc:
        # A lost connection (`ConnectionResetError`) or a body shorter than its Content-Length or
        # broken chunking (`ContentLengthError`, `TransferEncodingError`), as aiohttp reports them.
        raise _Truncated from exc
    return bytes(body)


def _render(reply: HttpReply, path: str) -> web.Response:
    if 400 <= reply.status < 500:
        # A runtime breaking the protocol (a custom bootstrap's bug, a post after a timeout). The
        # path and status only: bodies (events, results, errors) are never logged (DESIGN §1.8).
        log.warning("runtime_api_refused", path=path, status=reply.status)
    return web.Response(status=reply.status, body=reply.body, headers=CIMultiDict(reply.headers))


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (unknown path, wrong method) as JSON too: RIE defines no body for
    them, but a runtime client must never get a reply without `Content-Type` (spec §1.11)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reply = HttpReply(exc.status, error_body(exc.reason.replace(" ", ""), exc.reason))
        return _render(reply, request.path)


class RuntimeApiServer:
    """The Runtime API of one environment, bound to `127.0.0.1` on an ephemeral port."""

    def __init__(self, *, clock: Clock) -> None:
        self._session = RuntimeSession(clock=clock)
        self._runner: web.AppRunner | None = None
        self._address: str | None = None
        self._changed = asyncio.Event()
        """Replaced at every change of the session: a parked `/next` waits on the one it saw."""
        self._init: asyncio.Future[InitResult] | None = None
        self._pending: dict[str, asyncio.Future[RuntimeReply]] = {}

    @property
    def address(self) -> str | None:
        return self._address

    async def start(self) -> str:
        """Listen; returns `127.0.0.1:PORT`, the value of the runtime's `AWS_LAMBDA_RUNTIME_API`."""
        if self._runner is not None or self._session.gone:
            raise RuntimeError("a Runtime API server serves one runtime process: start a new one")
        self._init = asyncio.get_running_loop().create_future()
        app = web.Application(middlewares=[_json_errors])
        app.router.add_get(f"{RUNTIME}/invocation/next", self._next)
        app.router.add_post(f"{RUNTIME}/invocation/{{request_id}}/response", self._response)
        app.router.add_post(f"{RUNTIME}/invocation/{{request_id}}/error", self._error)
        app.router.add_post(f"{RUNTIME}/init/error", self._init_error)
        app.router.add_route("*", "/2020-01-01/extension/{tail:.*}", self._stub(_EXTENSION_STUB))
        app.router.add_put("/2020-08-15/logs", self._stub(_LOGS_STUB))
        app.router.add_put("/2022-07-01/telemetry", self._stub(_TELEMETRY_STUB))
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        # A socket of our own, bound before the site starts, so the port is known without
        # reaching into aiohttp's internals; a bare IPv4 literal is the only form every
        # runtime client parses (spec §1.1).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._address = f"127.0.0.1:{sock.getsockname()[1]}"
        return self._address

    async def wait_ready(self) -> InitResult:
        """Init's end: `InitOk` at the runtime's first `/next`, `InitFailed` at `/init/error`.

        Raises `RuntimeGone` if the process exited (`process_exited()`) or the server closed first.
        The caller bounds the wait (Init's 10 s); cancelling it leaves the session untouched.
        """
        if self._init is None:
            raise RuntimeError("start() the Runtime API server first")
        return await asyncio.shield(self._init)

    async def invoke(
        self,
        *,
        request_id: str,
        payload: bytes,
        deadline_ms: int,
        invoked_function_arn: str,
        trace_id: str,
        client_context: str | None = None,
        cognito_identity: str | None = None,
    ) -> RuntimeReply:
        """Hand the runtime one event and wait for its `/response` or `/error` (or the 413).

        The caller enforces the timeout: cancelling this call abandons the invocation, and so does
        `abandon(request_id)` from elsewhere (this call then raises `InvocationAbandoned`). An
        environment whose Init failed ends every invocation at once with the init error.
        """
        future = self.submit(
            request_id=request_id,
            payload=payload,
            deadline_ms=deadline_ms,
            invoked_function_arn=invoked_function_arn,
            trace_id=trace_id,
            client_context=client_context,
            cognito_identity=cognito_identity,
        )
        try:
            return await future
        except asyncio.CancelledError:
            self.abandon(request_id)
            raise
        finally:
            self._pending.pop(request_id, None)

    def submit(
        self,
        *,
        request_id: str,
        payload: bytes,
        deadline_ms: int,
        invoked_function_arn: str,
        trace_id: str,
        client_context: str | None = None,
        cognito_identity: str | None = None,
    ) -> asyncio.Future[RuntimeReply]:
        """`invoke` without a coroutine: the future of the reply, for a caller racing it itself.

        The future fails with `RuntimeGone` if the process is gone (now or later). A caller that
        stops waiting must `cancel()` it and `abandon(request_id)`, in that order: `abandon` sets
        `InvocationAbandoned` on a future still pending, which nobody would retrieve.
        """
        if self._init is None:
            raise RuntimeError("start() the Runtime API server first")
        future: asyncio.Future[RuntimeReply] = asyncio.get_running_loop().create_future()
        try:
            step = self._session.invoke(
                request_id,
                payload,
                deadline_ms,
                invoked_function_arn,
                trace_id,
                client_context=client_context,
                cognito_identity=cognito_identity,
            )
        except RuntimeGone as gone:
            future.set_exception(gone)
            return future
        self._pending[request_id] = future
        self._apply(step)
        return future

    def abandon(self, request_id: str) -> None:
        """Give up on `request_id` (it timed out); a late post for it is answered 410 `InvokeTimeout`."""
        self._session.abandon(request_id)
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_exception(InvocationAbandoned(request_id))
        self._wake()

    def delivered(self, request_id: str) -> bool:
        """The runtime's `/next` was handed this invocation (an exit before that means it never ran)."""
        return self._session.delivered(request_id)

    def process_exited(self) -> None:
        """The runtime's process ended: `wait_ready()` / `invoke()` waiters raise `RuntimeGone`."""
        self._apply(self._session.process_exited())

    async def close(self) -> None:
        """Stop listening; parked long polls are answered 500 and waiters raise `RuntimeGone`."""
        self._apply(self._session.process_exited("the Runtime API server closed"))
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # I/O around the session ---------------------------------------------------------------------

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _apply(self, step: Step) -> None:
        for notice in step.notices:
            match notice:
                case InitEnded(result=result):
                    if self._init is not None and not self._init.done():
                        self._init.set_result(result)
                case InvocationEnded(request_id=request_id, result=result):
                    future = self._pending.pop(request_id, None)
                    if future is not None and not future.done():
                        future.set_result(result)
                case SessionEnded(reason=reason):
                    self._release(RuntimeGone(reason))
        self._wake()

    def _release(self, gone: RuntimeGone) -> None:
        if self._init is not None and not self._init.done():
            self._init.set_exception(gone)
            # Mark it retrieved: nobody need be waiting for Init when the process exits.
            self._init.exception()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(gone)

    async def _next(self, request: web.Request) -> web.Response:
        step = self._session.next_requested()
        self._apply(step)
        reply = step.reply
        while reply is None:
            # Long poll: parked until an invocation (or the end) changes the session; never timed out.
            changed = self._changed
            await changed.wait()
            reply = self._session.parked_next()
        return _render(reply, request.path)

    async def _response(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        try:
            body = await _read_bounded(request)
        except _Truncated:
            step = self._session.truncated(request_id)
        else:
            step = self._session.response(
                request_id,
                body,
                content_type=request.headers.get("Content-Type", ""),
                response_mode=request.headers.get(RESPONSE_MODE_HEADER),
            )
        return self._answer(step, request)

    async def _error(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        try:
            body = await _read_bounded(request)
        except _Truncated:
            step = self._session.truncated(request_id, error=True)
        else:
            error_type = request.headers.get(ERROR_TYPE_HEADER)
            step = self._session.error(request_id, body, error_type_header=error_type)
        return self._answer(step, request)

    async def _init_error(self, request: web.Request) -> web.Response:
        try:
            body: bytes | None = await _read_bounded(request)
        except _Truncated:
            body = b""  # RIE logs the read failure and keeps what it has (spec §1.6)
        step = self._session.init_error(body, error_type_header=request.headers.get(ERROR_TYPE_HEADER))
        return self._answer(step, request)

    def _answer(self, step: Step, request: web.Request) -> web.Response:
        self._apply(step)
        assert step.reply is not None, "posts are always answered at once"
        return _render(step.reply, request.path)

    @staticmethod
    def _stub(reply: HttpReply) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=reply.status, body=reply.body, headers=CIMultiDict(reply.headers))

        return handler
