"""One execution environment's Runtime API session, without I/O (spec functions-and-templates §1).

The I/O loop (`runtime_api.py`) hands this core each request the runtime makes and each call the
invoker makes; it gets back what to answer the runtime (`HttpReply`) and what to tell the invoker
(`Notice`s). States, status codes and error bodies are RIE's (`internal/lambda/core/states.go`,
`rapi/rendering/*.go`), so a runtime client sees exactly what it sees in Lambda (spec §1.7–§1.8):

    Started --/next--> Ready --event--> Running --/response--> RuntimeResponseSentState --/next--> Ready …
                                        Running --/error-----> RuntimeResponseSentState
    Started --/init/error--> InitError (terminal)

`InvocationResponse` / `InvocationErrorResponse` are RIE's transient states between accepting a
post and `ResponseSent`; here a post is handled in one step, so they exist only as the target names
of a refused transition in 403 messages. Anything RIE does not allow is `403 InvalidStateTransition`.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import orjson

from poller.core.clock import Clock
from poller.functions.results import (
    MAX_PAYLOAD_BYTES,
    InitFailed,
    InitOk,
    InitResult,
    Replied,
    RuntimeErrored,
    RuntimeGone,
    RuntimeReply,
    TooLarge,
)

JSON = "application/json"
STREAMING = "streaming"
INVALID_RESPONSE_MODE = "Runtime.InvalidResponseModeHeader"
TRUNCATED_RESPONSE = "Runtime.TruncatedResponse"
ABANDONED_MEMORY = 64
"""How many abandoned request ids are remembered for the late-post answer (bounded: ids never stop)."""

_VALID_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class State(StrEnum):
    """RIE's runtime state names, as they appear in `InvalidStateTransition` messages (spec §1.7)."""

    STARTED = "Started"
    INIT_ERROR = "InitError"
    READY = "Ready"
    RUNNING = "Running"
    INVOCATION_RESPONSE = "InvocationResponse"
    INVOCATION_ERROR_RESPONSE = "InvocationErrorResponse"
    RESPONSE_SENT = "RuntimeResponseSentState"


@dataclass(frozen=True, slots=True)
class HttpReply:
    """What to answer one runtime request. Every reply is JSON-typed: awslambdaric's C++ client
    dereferences the `Content-Type` before it looks at the status and segfaults without it (§1.11)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", JSON),)


@dataclass(frozen=True, slots=True)
class InitEnded:
    result: InitResult


@dataclass(frozen=True, slots=True)
class InvocationEnded:
    request_id: str
    result: RuntimeReply


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The process exited or the server closed: whoever still waits for Init or a result must stop."""

    reason: str


Notice = InitEnded | InvocationEnded | SessionEnded


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one input: a reply for the runtime (None = keep its `/next` parked) and notices."""

    reply: HttpReply | None = None
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True, slots=True)
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None

    def render(self) -> HttpReply:
        """RIE's `renderInvokeHeaders`: each header only when non-empty, `Content-Type` always (§1.3)."""
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.invoked_function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
            ("Lambda-Runtime-Client-Context", self.client_context or ""),
            ("Lambda-Runtime-Cognito-Identity", self.cognito_identity or ""),
        ]
        kept = tuple((name, value) for name, value in headers if value)
        # Exactly `application/json`: with parameters awslambdaric hands the handler raw bytes (§1.11).
        return HttpReply(200, self.payload, (*kept, ("Content-Type", JSON)))


def error_body(error_type: str, message: str) -> bytes:
    """RIE's `json.Encoder` rendering of `model.ErrorResponse`: message first, trailing newline (§1.7)."""
    return orjson.dumps({"errorMessage": message, "errorType": error_type}) + b"\n"


ACCEPTED = HttpReply(202, b'{"status":"OK"}\n')
INVALID_REQUEST_ID = HttpReply(400, error_body("InvalidRequestID", "Invalid request ID"))
INVALID_RESPONSE_MODE_REPLY = HttpReply(
    400, error_body("InvalidFunctionResponseMode", "Invalid function response mode")
)
TRUNCATED = HttpReply(400, error_body("TruncatedHTTPRequest", "HTTP request detected as truncated"))
_TOO_LARGE_MESSAGE = f"Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."
TOO_LARGE_REPLY = HttpReply(413, error_body("RequestEntityTooLarge", _TOO_LARGE_MESSAGE))
# A post for a request id the invoker gave up on (it timed out). Classic RIE resets the whole
# runtime at a timeout and has no answer for this; Lambda Managed Instances' RAPID answers 410
# `InvokeTimeout` (RIE `internal/lambda-managed-instances/rapi/handler/invocationresponse.go`,
# `rapi/rendering/render_error.go` `RenderInvokeTimeout`; spec §1.4, §1.7), so poller does too.
INVOKE_TIMEOUT = HttpReply(410, error_body("InvokeTimeout", "Invoke timeout"))
# OpenAPI: "Container error. Non-recoverable state. Runtime should exit promptly." (spec §1.2)
INTERNAL_ERROR = HttpReply(500, error_body("InternalServerError", "Internal Server Error"))


def forbidden(current: State, target: State) -> HttpReply:
    message = (
        f"State transition from {current} to {target} failed for runtime. "
        "Error: State transition is not allowed"
    )
    return HttpReply(403, error_body("InvalidStateTransition", message))


def platform_error_type(header: str | None) -> str:
    """RIE's `GetValidRuntimeOrFunctionErrorType` (spec §1.5): the unanchored regex keeps the value,
    else a `Function.` prefix gives `Function.Unknown`, else (a missing header too) `Runtime.Unknown`."""
    value = header or ""
    if _VALID_ERROR_TYPE.search(value):
        return value
    return "Function.Unknown" if value.startswith("Function.") else "Runtime.Unknown"


class RuntimeSession:
    """The Runtime API as one environment's runtime sees it: one invocation at a time."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._state = State.STARTED
        self.state_since = clock.monotonic()
        """When the state last changed (monotonic), as RIE's runtime description reports it."""
        self._gone: str | None = None
        self._init: InitResult | None = None
        self._init_failure: RuntimeErrored | TooLarge | None = None
        """What every invocation of an environment whose Init failed ends with."""
        self._invocation: Invocation | None = None
        """Invoked and not ended: queued until the runtime asks, then running."""
        self._delivered = False
        self._invoke_id: str | None = None
        """The id posts are validated against: the last event rendered (RIE's `AwsRequestIDValidator`
        keeps it after the response, so a second post for it is a 403, not a 400; spec §1.4)."""
        self._abandoned: deque[str] = deque(maxlen=ABANDONED_MEMORY)

    @property
    def state(self) -> State:
        return self._state

    @property
    def gone(self) -> bool:
        return self._gone is not None

    @property
    def init_result(self) -> InitResult | None:
        return self._init

    def delivered(self, request_id: str) -> bool:
        """A `/next` was answered with this invocation: from then on it is the function's, whatever
        happens to the process (request ids are unique, so the last rendered id is enough)."""
        return self._invoke_id == request_id

    def _move(self, state: State) -> None:
        self._state = state
        self.state_since = self._clock.monotonic()

    # The runtime's requests ---------------------------------------------------------------------

    def next_requested(self) -> Step:
        """`GET /runtime/invocation/next`: the event now, or None to park the long poll (§1.3)."""
        if self._gone is not None:
            return Step(INTERNAL_ERROR)
        notices: tuple[Notice, ...] = ()
        match self._state:
            case State.STARTED:
                # "The Init phase ends when the runtime … sends a Next API request" (§1.8).
                self._init = InitOk()
                notices = (InitEnded(self._init),)
                self._move(State.READY)
            case State.RESPONSE_SENT:
                self._move(State.READY)
            case State.READY | State.RUNNING:
                pass  # RIE suspends a second poller in Ready and re-renders the event in Running
            case _:
                return Step(forbidden(self._state, State.READY))
        if self._state is State.READY and self._invocation is not None:
            self._move(State.RUNNING)
        return Step(self.parked_next(), notices)

    def parked_next(self) -> HttpReply | None:
        """Re-asked by a parked `/next` whenever the session changed: its reply, or None to wait on."""
        if self._gone is not None:
            return INTERNAL_ERROR
        if self._state is not State.RUNNING or self._invocation is None:
            return None
        self._delivered = True
        self._invoke_id = self._invocation.request_id
        return self._invocation.render()

    def response(
        self, request_id: str, body: bytes | None, *, content_type: str, response_mode: str | None = None
    ) -> Step:
        """`POST /runtime/invocation/{id}/response`; `body` None = over the limit, not read (§1.4)."""
        refused = self._refuse_post(request_id, State.INVOCATION_RESPONSE)
        if refused is not None:
            return Step(refused)
        if response_mode and response_mode != STREAMING:
            # RIE: the invoker gets `Runtime.InvalidResponseModeHeader` with an empty payload (§1.7).
            invalid = RuntimeErrored(INVALID_RESPONSE_MODE, b"")
            return self._end(request_id, INVALID_RESPONSE_MODE_REPLY, invalid)
        if body is None or len(body) > MAX_PAYLOAD_BYTES:
            return self._end(request_id, TOO_LARGE_REPLY, TooLarge())
        return self._end(request_id, ACCEPTED, Replied(body, content_type))

    def error(self, request_id: str, body: bytes | None, *, error_type_header: str | None) -> Step:
        """`POST /runtime/invocation/{id}/error`: the document is relayed as posted (§1.5).

        A body over the response limit is refused like an oversized response, so no post is ever
        buffered without bound (RIE reads error bodies whole; AWS caps every payload at 6 MB).
        """
        refused = self._refuse_post(request_id, State.INVOCATION_ERROR_RESPONSE)
        if refused is not None:
            return Step(refused)
        if body is None or len(body) > MAX_PAYLOAD_BYTES:
            return self._end(request_id, TOO_LARGE_REPLY, TooLarge())
        return self._end(request_id, ACCEPTED, RuntimeErrored(platform_error_type(error_type_header), body))

    def truncated(self, request_id: str, *, error: bool = False) -> Step:
        """The post's body ended before its `Content-Length` (RIE: 400, `Runtime.TruncatedResponse`)."""
        target = State.INVOCATION_ERROR_RESPONSE if error else State.INVOCATION_RESPONSE
        refused = self._refuse_post(request_id, target)
        if refused is not None:
            return Step(refused)
        return self._end(request_id, TRUNCATED, RuntimeErrored(TRUNCATED_RESPONSE, b""))

    def init_error(self, body: bytes | None, *, error_type_header: str | None) -> Step:
        """`POST /runtime/init/error`: only before the first `/next`; InitError is terminal (§1.6).

        "Error will be served in response to the first invoke": an invocation already waiting for
        Init ends with it, and so does every later one.
        """
        if self._gone is not None:
            return Step(INTERNAL_ERROR)
        if self._state is not State.STARTED:
            return Step(forbidden(self._state, State.INIT_ERROR))
        self._move(State.INIT_ERROR)
        served: RuntimeReply
        if body is None or len(body) > MAX_PAYLOAD_BYTES:
            reply, served = TOO_LARGE_REPLY, TooLarge()
        else:
            reply, served = ACCEPTED, RuntimeErrored(platform_error_type(error_type_header), body)
        self._init = InitFailed(served.error_type, served.body)
        self._init_failure = served
        notices: list[Notice] = [InitEnded(self._init)]
        if self._invocation is not None:
            notices.append(InvocationEnded(self._invocation.request_id, served))
            self._invocation = None
        return Step(reply, tuple(notices))

    def _refuse_post(self, request_id: str, target: State) -> HttpReply | None:
        """The checks before any state change, in RIE's order (§1.4, §1.7): late, unknown id, state."""
        if self._gone is not None:
            return INTERNAL_ERROR
        if request_id in self._abandoned:
            return INVOKE_TIMEOUT
        if request_id != self._invoke_id:
            return INVALID_REQUEST_ID
        if self._state is not State.RUNNING or self._invocation is None:
            return forbidden(self._state, target)
        return None

    def _end(self, request_id: str, reply: HttpReply, result: RuntimeReply) -> Step:
        self._invocation = None
        self._delivered = False
        self._move(State.RESPONSE_SENT)
        return Step(reply, (InvocationEnded(request_id, result),))

    # The invoker's calls ------------------------------------------------------------------------

    def invoke(
        self,
        request_id: str,
        payload: bytes,
        deadline_ms: int,
        invoked_function_arn: str,
        trace_id: str,
        client_context: str | None = None,
        cognito_identity: str | None = None,
    ) -> Step:
        """Hand the runtime an event: delivered to a parked `/next`, or queued for the next one.

        Raises `RuntimeGone` once the process exited, `RuntimeError` if another invocation has not
        ended (one at a time per environment), `ValueError` for arguments the runtime cannot take.
        """
        if not _REQUEST_ID.fullmatch(request_id):
            raise ValueError(f"request id {request_id!r} cannot travel in a Runtime API path")
        if deadline_ms <= 0:
            # awslambdaric asserts `ms > 0` and aborts (SIGABRT) otherwise (spec §1.11, §5 trap 1).
            raise ValueError(f"Lambda-Runtime-Deadline-Ms must be positive, not {deadline_ms}")
        for name, value in (
            ("invoked_function_arn", invoked_function_arn),
            ("trace_id", trace_id),
            ("client_context", client_context or ""),
            ("cognito_identity", cognito_identity or ""),
        ):
            if "\r" in value or "\n" in value:
                raise ValueError(f"{name} must not contain a line break: it travels as a header")
        if self._init_failure is not None:
            # Served even after the process exited: awslambdaric exits right after posting it.
            return Step(notices=(InvocationEnded(request_id, self._init_failure),))
        if self._gone is not None:
            raise RuntimeGone(self._gone)
        if self._invocation is not None:
            raise RuntimeError(
                f"invocation {self._invocation.request_id} has not ended: one at a time per environment"
            )
        if request_id in self._abandoned:
            self._abandoned.remove(request_id)  # an id given again is a new invocation, not a late one
        self._invocation = Invocation(
            request_id, payload, deadline_ms, invoked_function_arn, trace_id, client_context, cognito_identity
        )
        self._delivered = False
        if self._state is State.READY:
            self._move(State.RUNNING)  # a /next is parked: it renders the event when woken
        return Step()

    def abandon(self, request_id: str) -> None:
        """The invoker gave up on `request_id` (timeout). A late post for it gets 410 `InvokeTimeout`."""
        if request_id not in self._abandoned:
            self._abandoned.append(request_id)
        if self._invocation is None or self._invocation.request_id != request_id:
            return
        self._invocation = None
        if self._state is State.RUNNING:
            # Not yet rendered: the runtime is still waiting in /next. Rendered: it is busy with
            # the event; its /next after a (late) post starts the next cycle.
            self._move(State.RESPONSE_SENT if self._delivered else State.READY)
        self._delivered = False

    def process_exited(self, reason: str = "the runtime process exited") -> Step:
        """Terminal: waiters for Init or the running invocation are released, later requests get 500."""
        if self._gone is not None:
            return Step()
        self._gone = reason
        self._invocation = None
        return Step(notices=(SessionEnded(reason),))
