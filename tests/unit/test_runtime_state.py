"""The Runtime API session without a server: RIE's states, status codes and exact bodies.

Section numbers are those of /work/shared/spec/functions-and-templates.md.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poller.core.clock import ManualClock
from poller.functions.results import (
    MAX_PAYLOAD_BYTES,
    InitFailed,
    InitOk,
    Replied,
    RuntimeErrored,
    RuntimeGone,
    TooLarge,
)
from poller.functions.runtime_state import (
    HttpReply,
    InitEnded,
    InvocationEnded,
    RuntimeSession,
    SessionEnded,
    State,
    Step,
    platform_error_type,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders"
TRACE = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
JSON_ONLY = (("Content-Type", "application/json"),)


def session() -> RuntimeSession:
    return RuntimeSession(clock=ManualClock())


def invoke(s: RuntimeSession, rid: str = "req-1", payload: bytes = b'{"a":1}', **extra: str) -> Step:
    return s.invoke(rid, payload, 1_700_000_003_000, ARN, TRACE, **extra)


def running(rid: str = "req-1") -> RuntimeSession:
    """A session whose runtime has received `rid` and is running it."""
    s = session()
    assert s.next_requested().reply is None
    invoke(s, rid)
    assert s.parked_next() is not None
    assert s.state is State.RUNNING
    return s


def forbidden_body(current: str, target: str) -> bytes:
    return (
        b'{"errorMessage":"State transition from '
        + f"{current} to {target}".encode()
        + b' failed for runtime. Error: State transition is not allowed","errorType":"InvalidStateTransition"}\n'
    )


def ended(step: Step) -> InvocationEnded:
    (notice,) = [n for n in step.notices if isinstance(n, InvocationEnded)]
    return notice


# §1.8 Init ends at the first /next; §1.3 the event and its headers -------------------------------


def test_first_next_ends_init_and_parks_until_an_invocation() -> None:
    """§1.8: Started --/next--> Ready; Init ends with the first Next request."""
    s = session()
    step = s.next_requested()
    assert step.reply is None
    assert step.notices == (InitEnded(InitOk()),)
    assert s.state is State.READY
    assert s.parked_next() is None


def test_event_headers_are_rendered_as_rie_does() -> None:
    """§1.3: each Lambda-Runtime-* header only when non-empty, Content-Type always and exactly JSON."""
    s = session()
    s.next_requested()
    invoke(s)
    assert s.state is State.RUNNING
    reply = s.parked_next()
    assert reply == HttpReply(
        200,
        b'{"a":1}',
        (
            ("Lambda-Runtime-Aws-Request-Id", "req-1"),
            ("Lambda-Runtime-Deadline-Ms", "1700000003000"),
            ("Lambda-Runtime-Invoked-Function-Arn", ARN),
            ("Lambda-Runtime-Trace-Id", TRACE),
            ("Content-Type", "application/json"),
        ),
    )


def test_client_context_and_cognito_identity_only_when_present() -> None:
    """§1.3: `Lambda-Runtime-Client-Context` / `-Cognito-Identity` are sent only when given."""
    s = session()
    s.next_requested()
    invoke(s, client_context='{"custom":{}}', cognito_identity='{"cognitoIdentityId":"x"}')
    reply = s.parked_next()
    assert reply is not None
    headers = dict(reply.headers)
    assert headers["Lambda-Runtime-Client-Context"] == '{"custom":{}}'
    assert headers["Lambda-Runtime-Cognito-Identity"] == '{"cognitoIdentityId":"x"}'


def test_invocation_before_init_is_delivered_by_the_first_next() -> None:
    """§1.8: an event queued during Init is rendered by the runtime's first /next, which also ends Init."""
    s = session()
    assert invoke(s) == Step()
    step = s.next_requested()
    assert step.notices == (InitEnded(InitOk()),)
    assert step.reply is not None
    assert step.reply.status == 200
    assert s.state is State.RUNNING


def test_next_while_running_re_renders_the_same_event() -> None:
    """§1.3: a second /next during an invocation is legal in RIE and renders the same event."""
    s = running()
    again = s.next_requested().reply
    assert again is not None
    assert dict(again.headers)["Lambda-Runtime-Aws-Request-Id"] == "req-1"


# §1.4 /response ------------------------------------------------------------------------------------


def test_response_is_accepted_and_relayed_with_its_content_type() -> None:
    """§1.4, §1.7: 202 {"status":"OK"}; the invoker gets the body and the runtime's Content-Type."""
    s = running()
    step = s.response("req-1", b'{"ok":true}', content_type="application/json")
    assert step.reply == HttpReply(202, b'{"status":"OK"}\n', JSON_ONLY)
    assert ended(step) == InvocationEnded("req-1", Replied(b'{"ok":true}', "application/json"))
    assert s.state is State.RESPONSE_SENT
    # §1.8: RuntimeResponseSentState --/next--> Ready, parked until the next invocation.
    assert s.next_requested().reply is None
    assert s.state.value == "Ready"  # (not `is`: mypy keeps the narrowing from above)


def test_unknown_request_id_is_400_before_any_state_change() -> None:
    """§1.4: an id that is not the current invocation's → 400 InvalidRequestID, checked first."""
    s = running()
    step = s.response("req-other", b"{}", content_type="application/json")
    assert step.reply == HttpReply(
        400, b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}\n', JSON_ONLY
    )
    assert step.notices == ()
    assert s.state is State.RUNNING
    assert ended(s.response("req-1", b"{}", content_type="application/json")).result == Replied(
        b"{}", "application/json"
    )


def test_post_before_any_event_is_an_invalid_request_id() -> None:
    """§1.4: with no current invocation no id is valid."""
    s = session()
    assert s.error("req-1", b"{}", error_type_header=None).reply == HttpReply(
        400, b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}\n', JSON_ONLY
    )


def test_second_response_for_the_current_id_is_403_with_rie_message() -> None:
    """§1.4, §1.7: a second post for the current id → 403 InvalidStateTransition, RIE's wording."""
    s = running()
    s.response("req-1", b"{}", content_type="application/json")
    again = s.response("req-1", b"{}", content_type="application/json")
    assert again.reply == HttpReply(
        403, forbidden_body("RuntimeResponseSentState", "InvocationResponse"), JSON_ONLY
    )
    assert again.notices == ()
    error = s.error("req-1", b"{}", error_type_header=None)
    assert error.reply is not None
    assert error.reply.body == forbidden_body("RuntimeResponseSentState", "InvocationErrorResponse")


@pytest.mark.parametrize("size", [MAX_PAYLOAD_BYTES + 1, None])
def test_response_over_the_limit_is_413_and_the_invoker_gets_function_response_size_too_large(
    size: int | None,
) -> None:
    """§1.4: over 6,291,556 bytes the runtime gets RIE's 413, the invoker AWS's invoker-side error."""
    s = running()
    body = None if size is None else b"x" * size
    step = s.response("req-1", body, content_type="application/json")
    assert step.reply == HttpReply(
        413,
        b'{"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).",'
        b'"errorType":"RequestEntityTooLarge"}\n',
        JSON_ONLY,
    )
    result = ended(step).result
    assert isinstance(result, TooLarge)
    assert result.error_type == "Function.ResponseSizeTooLarge"
    assert orjson.loads(result.body) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    assert s.state is State.RESPONSE_SENT


def test_response_of_exactly_the_limit_is_accepted() -> None:
    """§1.4: the limit is inclusive (RIE reads at most MaxPayloadSize bytes)."""
    s = running()
    step = s.response("req-1", b"x" * MAX_PAYLOAD_BYTES, content_type="application/unknown")
    assert step.reply is not None
    assert step.reply.status == 202


def test_response_mode_other_than_streaming_is_400() -> None:
    """§1.7: invalid Lambda-Runtime-Function-Response-Mode → 400; invoker gets Runtime.InvalidResponseModeHeader."""
    s = running()
    step = s.response("req-1", b"{}", content_type="application/json", response_mode="buffered")
    assert step.reply == HttpReply(
        400,
        b'{"errorMessage":"Invalid function response mode","errorType":"InvalidFunctionResponseMode"}\n',
        JSON_ONLY,
    )
    assert ended(step).result == RuntimeErrored("Runtime.InvalidResponseModeHeader", b"")


def test_truncated_post_is_400() -> None:
    """§1.7: a body shorter than declared → 400 TruncatedHTTPRequest."""
    s = running()
    step = s.truncated("req-1")
    assert step.reply == HttpReply(
        400,
        b'{"errorMessage":"HTTP request detected as truncated","errorType":"TruncatedHTTPRequest"}\n',
        JSON_ONLY,
    )
    assert ended(step).result == RuntimeErrored("Runtime.TruncatedResponse", b"")


# §1.5 /error --------------------------------------------------------------------------------------


def test_error_document_is_relayed_as_posted() -> None:
    """§1.5: the body is never rebuilt; without the header the platform type is Runtime.Unknown."""
    posted = (
        b'{"errorMessage": "bad thing", "errorType": "ValueError", "requestId": "req-1", "stackTrace": []}'
    )
    s = running()
    step = s.error("req-1", posted, error_type_header=None)
    assert step.reply == HttpReply(202, b'{"status":"OK"}\n', JSON_ONLY)
    assert ended(step).result == RuntimeErrored("Runtime.Unknown", posted)
    assert s.state is State.RESPONSE_SENT


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "Runtime.Unknown"),
        ("", "Runtime.Unknown"),
        ("Runtime.ImportModuleError", "Runtime.ImportModuleError"),
        ("Function.MyError", "Function.MyError"),
        ("Function.lowercase", "Function.Unknown"),
        ("Function.", "Function.Unknown"),
        ("ValueError", "Runtime.Unknown"),
        ("Runtime.X", "Runtime.Unknown"),  # `[A-Z][a-zA-Z]+`: at least two letters
        ("Custom.Runtime.Crash", "Custom.Runtime.Crash"),  # unanchored, as Go's MatchString
    ],
)
def test_error_type_header_normalisation(header: str | None, expected: str) -> None:
    """§1.5: RIE's `GetValidRuntimeOrFunctionErrorType`, regex `(Runtime|Function)\\.[A-Z][a-zA-Z]+`."""
    assert platform_error_type(header) == expected


def test_error_body_over_the_limit_is_413() -> None:
    """§1.4 limit applied to /error too, so no post is buffered without bound."""
    s = running()
    step = s.error("req-1", None, error_type_header="Function.Big")
    assert step.reply is not None
    assert step.reply.status == 413
    assert ended(step).result == TooLarge()


# §1.6 /init/error ---------------------------------------------------------------------------------


IMPORT_ERROR = (
    b"{\"errorMessage\": \"Unable to import module 'app': No module named 'nomod'\", "
    b'"errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}'
)


def test_init_error_is_terminal_and_served_to_every_invocation() -> None:
    """§1.6, §1.8: Started --/init/error--> InitError (terminal); the error answers the first invoke."""
    s = session()
    step = s.init_error(IMPORT_ERROR, error_type_header="Runtime.ImportModuleError")
    assert step.reply == HttpReply(202, b'{"status":"OK"}\n', JSON_ONLY)
    assert step.notices == (InitEnded(InitFailed("Runtime.ImportModuleError", IMPORT_ERROR)),)
    assert s.state is State.INIT_ERROR
    assert s.next_requested().reply == HttpReply(403, forbidden_body("InitError", "Ready"), JSON_ONLY)
    for rid in ("req-1", "req-2"):
        assert ended(invoke(s, rid)) == InvocationEnded(
            rid, RuntimeErrored("Runtime.ImportModuleError", IMPORT_ERROR)
        )
    # Even once the process is gone (awslambdaric exits right after posting it).
    s.process_exited()
    assert ended(invoke(s, "req-3")).result == RuntimeErrored("Runtime.ImportModuleError", IMPORT_ERROR)


def test_init_error_ends_an_invocation_waiting_for_init() -> None:
    """§1.6: "Error will be served in response to the first invoke"."""
    s = session()
    invoke(s)
    step = s.init_error(b'{"errorType":"RuntimeError"}', error_type_header="RuntimeError")
    assert step.notices == (
        InitEnded(InitFailed("Runtime.Unknown", b'{"errorType":"RuntimeError"}')),
        InvocationEnded("req-1", RuntimeErrored("Runtime.Unknown", b'{"errorType":"RuntimeError"}')),
    )


def test_init_error_after_init_is_403() -> None:
    """§1.6, §1.7: only in Started; e.g. "State transition from Running to InitError failed …"."""
    s = session()
    s.next_requested()
    assert s.init_error(b"{}", error_type_header=None).reply == HttpReply(
        403, forbidden_body("Ready", "InitError"), JSON_ONLY
    )
    r = running()
    assert r.init_error(b"{}", error_type_header=None).reply == HttpReply(
        403, forbidden_body("Running", "InitError"), JSON_ONLY
    )


def test_oversized_init_error_is_413() -> None:
    s = session()
    step = s.init_error(None, error_type_header="Runtime.ImportModuleError")
    assert step.reply is not None
    assert step.reply.status == 413
    assert step.notices == (InitEnded(InitFailed(TooLarge().error_type, TooLarge().body)),)
    assert ended(invoke(s)).result == TooLarge()


# Timeouts: abandon and late posts (§1.4, §1.7 LMI's 410) -------------------------------------------


def test_late_post_for_an_abandoned_invocation_is_410_invoke_timeout() -> None:
    """§1.4, §1.7: LMI RAPID answers a post after the invocation timed out with 410 InvokeTimeout."""
    s = running()
    s.abandon("req-1")
    assert s.state is State.RESPONSE_SENT
    gone = HttpReply(410, b'{"errorMessage":"Invoke timeout","errorType":"InvokeTimeout"}\n', JSON_ONLY)
    late = s.response("req-1", b"{}", content_type="application/json")
    assert late == Step(gone)
    assert s.error("req-1", b"{}", error_type_header=None) == Step(gone)
    # The environment can still serve the next invocation if the pool keeps it.
    assert s.next_requested().reply is None
    invoke(s, "req-2")
    assert s.parked_next() is not None


def test_abandon_before_delivery_leaves_the_runtime_waiting() -> None:
    """§1.8: an event never rendered is withdrawn; the parked /next keeps waiting (Ready)."""
    s = session()
    s.next_requested()
    invoke(s)
    s.abandon("req-1")
    assert s.state is State.READY
    assert s.parked_next() is None
    invoke(s, "req-2")
    reply = s.parked_next()
    assert reply is not None
    assert dict(reply.headers)["Lambda-Runtime-Aws-Request-Id"] == "req-2"


def test_abandoned_queued_invocation_is_dropped() -> None:
    s = running()
    s.response("req-1", b"{}", content_type="application/json")
    invoke(s, "req-2")  # queued: the runtime has not asked yet
    s.abandon("req-2")
    assert s.next_requested().reply is None


# The invoker's contract ----------------------------------------------------------------------------


def test_one_invocation_at_a_time() -> None:
    """DESIGN §1.5.1: one invocation per environment at a time."""
    s = running()
    with pytest.raises(RuntimeError, match="one at a time"):
        invoke(s, "req-2")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"deadline_ms": 0},  # §1.11: awslambdaric asserts ms > 0 and aborts
        {"deadline_ms": -5},
        {"request_id": "a/b"},
        {"request_id": ""},
        {"trace_id": "Root=1\r\nX-Evil: 1"},
        {"client_context": "{}\n"},
    ],
)
def test_arguments_the_runtime_cannot_take_are_refused(kwargs: dict[str, object]) -> None:
    """§1.11, §5 trap 1: a positive numeric deadline; values that travel as headers and paths."""
    args: dict[str, object] = {
        "request_id": "req-1",
        "payload": b"{}",
        "deadline_ms": 1,
        "invoked_function_arn": ARN,
        "trace_id": TRACE,
    } | kwargs
    with pytest.raises(ValueError):  # noqa: PT011 - several distinct messages
        session().invoke(**args)  # type: ignore[arg-type]


def test_process_exit_releases_waiters_and_later_requests_get_500() -> None:
    """§1.2: 500 = "Container error. Non-recoverable state."; waiters are told the session ended."""
    s = running()
    assert s.process_exited() == Step(notices=(SessionEnded("the runtime process exited"),))
    assert s.process_exited() == Step()  # once
    internal = HttpReply(
        500, b'{"errorMessage":"Internal Server Error","errorType":"InternalServerError"}\n', JSON_ONLY
    )
    assert s.parked_next() == internal
    assert s.next_requested().reply == internal
    assert s.response("req-1", b"{}", content_type="application/json").reply == internal
    with pytest.raises(RuntimeGone):
        invoke(s, "req-2")


def test_state_changes_are_timestamped_on_the_injected_clock() -> None:
    clock = ManualClock()
    s = RuntimeSession(clock=clock)
    assert s.state_since == clock.now
    clock.advance(2.5)
    s.next_requested()
    assert s.state_since == clock.now


# Invariants over any sequence of inputs (§1.7, §1.11) -------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["next", "parked", "invoke", "response", "error", "init_error", "abandon", "exit", "big"]
        ),
        st.sampled_from(["r1", "r2", "r3"]),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_every_reply_is_json_typed_and_every_invocation_ends_at_most_once(ops: list[tuple[str, str]]) -> None:
    """§1.11: every reply carries Content-Type application/json (awslambdaric segfaults without);
    statuses are the documented ones; an invocation ends at most once."""
    s = session()
    ended_ids: list[str] = []
    invoked: set[str] = set()
    for op, rid in ops:
        step: Step | None = None
        reply: HttpReply | None = None
        try:
            match op:
                case "next":
                    step = s.next_requested()
                case "parked":
                    reply = s.parked_next()
                case "invoke":
                    if rid in invoked:
                        continue
                    step = invoke(s, rid)
                    invoked.add(rid)
                case "response":
                    step = s.response(rid, b"{}", content_type="application/json")
                case "big":
                    step = s.response(rid, None, content_type="application/json")
                case "error":
                    step = s.error(rid, b"{}", error_type_header=None)
                case "init_error":
                    step = s.init_error(b"{}", error_type_header="Runtime.X")
                case "abandon":
                    s.abandon(rid)
                case "exit":
                    step = s.process_exited()
        except (RuntimeError, RuntimeGone):
            continue
        if step is not None:
            reply = step.reply
            ended_ids += [n.request_id for n in step.notices if isinstance(n, InvocationEnded)]
        if reply is not None:
            assert ("Content-Type", "application/json") in reply.headers
            assert reply.status in {200, 202, 400, 403, 410, 413, 500}
    assert len(ended_ids) == len(set(ended_ids))
