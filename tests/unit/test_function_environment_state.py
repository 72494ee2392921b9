"""The pure core of one execution environment, driven by a ManualClock (spec §1.10, §2.3–§2.5, §3.4)."""

from __future__ import annotations

import orjson
import pytest

from poller.core.clock import ManualClock
from poller.core.outcome import FunctionFailed, Succeeded, TimedOut
from poller.functions.environment_state import (
    MIB,
    DeadlineExceeded,
    EnvironmentState,
    Errored,
    Exited,
    OutOfMemory,
    Responded,
    ResponseTooLarge,
    StorageExceeded,
    Unstartable,
    trace_header,
)
from poller.functions.error_types import exit_reason, metric_error_type, report_error_type
from poller.functions.output_lines import LineSplitter


def ready(
    clock: ManualClock, *, timeout: float = 3, memory: int = 128, init_s: float = 0.1
) -> EnvironmentState:
    state = EnvironmentState(
        memory_size_mb=memory, timeout_seconds=timeout, ephemeral_storage_mb=512, clock=clock
    )
    state.begin_init()
    clock.advance(init_s)
    state.init_succeeded()
    return state


def test_init_is_limited_to_ten_seconds_and_timed_from_its_start() -> None:
    clock = ManualClock()
    state = EnvironmentState(memory_size_mb=128, timeout_seconds=3, ephemeral_storage_mb=512, clock=clock)
    assert state.begin_init() == clock.now + 10.0
    clock.advance(0.12345)
    report = state.init_succeeded()
    assert (report.init_duration_ms, report.status, report.error_type) == (123.45, "success", None)


def test_the_deadline_header_is_the_epoch_millisecond_of_start_plus_timeout() -> None:
    clock = ManualClock(now=50.0, epoch=1_700_000_000.0)
    state = ready(clock, timeout=3, init_s=0.0)
    invocation = state.begin_invocation("r1")
    assert invocation.deadline == 53.0
    assert invocation.deadline_epoch_ms == (1_700_000_000 + 50 + 3) * 1000
    clock.advance(1.25)
    assert state.remaining() == pytest.approx(1.75)


def test_a_cold_start_bills_init_and_reports_it_once() -> None:
    clock = ManualClock()
    state = ready(clock, init_s=0.13049)
    state.begin_invocation("r1")
    clock.advance(0.01574)
    state.observe_memory(75 * MIB + 1)
    first = state.finish(Responded(b'{"ok":1}'))
    assert first.outcome == Succeeded(payload=b'{"ok":1}', request_id="r1")
    assert first.report.fields() == {
        "requestId": "r1",
        "status": "success",
        "durationMs": 15.74,
        "billedDurationMs": 147,  # ceil(15.74 + 130.49): the docs' own example (spec §2.5)
        "memorySizeMB": 128,
        "maxMemoryUsedMB": 76,
        "initDurationMs": 130.49,
    }
    assert not first.reset
    state.begin_invocation("r2")
    clock.advance(0.0267301)
    second = state.finish(Responded(b"{}"))
    assert "initDurationMs" not in second.report.fields()
    assert (second.report.duration_ms, second.report.billed_duration_ms) == (26.73, 27)
    assert second.report.max_memory_used_mb == 76  # the environment's high-water mark


def test_a_timeout_is_sandbox_timedout_with_the_configured_timeout_and_resets() -> None:
    clock = ManualClock()
    state = ready(clock, timeout=1)
    state.begin_invocation("abc")
    clock.advance(1.0)
    finished = state.finish(DeadlineExceeded())
    assert finished.outcome == TimedOut(
        1.0, request_id="abc", detail="RequestId: abc Error: Task timed out after 1.00 seconds"
    )
    assert finished.report.status == "timeout"
    assert finished.report.error_type == "Sandbox.Timedout"
    assert finished.metric_error_type == "Sandbox.Timedout"
    assert finished.reset


def test_a_runtime_error_is_relayed_as_posted_and_keeps_the_environment() -> None:
    clock = ManualClock()
    state = ready(clock)
    posted = orjson.dumps(
        {
            "errorMessage": "bad thing",
            "errorType": "ValueError",
            "requestId": "r",
            "stackTrace": ["  File x\n"],
        }
    )
    state.begin_invocation("r")
    finished = state.finish(Errored(None, posted))
    assert isinstance(finished.outcome, FunctionFailed)
    assert finished.outcome.payload == posted
    assert (finished.outcome.error_type, finished.outcome.error_message) == ("ValueError", "bad thing")
    assert finished.outcome.stack_trace == ("  File x\n",)
    assert finished.outcome.function_error == "Unhandled"
    assert finished.report.status == "error"
    assert finished.report.error_type == "Runtime.Unknown"  # RIE's normalisation of a class name
    assert not finished.reset


def test_node_error_bodies_carry_trace_not_stack_trace() -> None:
    clock = ManualClock()
    state = ready(clock)
    state.begin_invocation("r")
    posted = b'{"errorType":"Error","errorMessage":"boom","trace":["Error: boom","    at x"]}'
    outcome = state.finish(Errored(None, posted)).outcome
    assert isinstance(outcome, FunctionFailed)
    assert outcome.stack_trace == ("Error: boom", "    at x")


def test_an_error_body_that_is_not_a_document_falls_back_to_the_header() -> None:
    clock = ManualClock()
    state = ready(clock)
    state.begin_invocation("r")
    finished = state.finish(Errored("Function.MyError", b"plain text"))
    assert isinstance(finished.outcome, FunctionFailed)
    assert (finished.outcome.error_type, finished.outcome.error_message) == ("Function.MyError", "plain text")
    assert finished.report.error_type == "Function.MyError"
    assert finished.metric_error_type == "Function.Unknown"  # bounded: not a known type


@pytest.mark.parametrize(
    ("ending", "error_type", "message"),
    [
        (Exited(2), "Runtime.ExitError", "RequestId: r Error: Runtime exited with error: exit status 2"),
        (Exited(0), "Runtime.ExitError", "RequestId: r Error: Runtime exited without providing a reason"),
        (Exited(-9), "Runtime.ExitError", "RequestId: r Error: Runtime exited with error: signal: killed"),
        (
            Exited(-11),
            "Runtime.ExitError",
            "RequestId: r Error: Runtime exited with error: signal: segmentation fault",
        ),
        (
            OutOfMemory(),
            "Runtime.OutOfMemory",
            "RequestId: r Error: Runtime exited with error: signal: killed",
        ),
        (
            StorageExceeded(),
            "Runtime.ExitError",
            "RequestId: r Error: Runtime exited with error: signal: killed",
        ),
        (
            ResponseTooLarge(),
            "Function.ResponseSizeTooLarge",
            "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        ),
    ],
)
def test_platform_detected_failures_reset_the_environment(
    ending: object, error_type: str, message: str
) -> None:
    clock = ManualClock()
    state = ready(clock)
    state.begin_invocation("r")
    finished = state.finish(ending)  # type: ignore[arg-type]
    assert isinstance(finished.outcome, FunctionFailed)
    assert (finished.outcome.error_type, finished.outcome.error_message) == (error_type, message)
    assert orjson.loads(finished.outcome.payload) == {"errorMessage": message, "errorType": error_type}
    assert finished.reset
    assert finished.report.status == "error"
    assert finished.metric_error_type == error_type


def test_an_init_failure_fails_every_invocation_with_the_posted_body() -> None:
    clock = ManualClock()
    state = EnvironmentState(memory_size_mb=128, timeout_seconds=3, ephemeral_storage_mb=512, clock=clock)
    state.begin_init()
    clock.advance(0.2)
    posted = (
        b'{"errorMessage": "Handler \'h\' missing on module \'app\'", "errorType": "Runtime.HandlerNotFound"}'
    )
    report = state.init_failed(Errored("Runtime.HandlerNotFound", posted))
    assert (report.status, report.error_type, report.init_duration_ms) == (
        "error",
        "Runtime.HandlerNotFound",
        200.0,
    )
    assert state.init_failure is not None
    state.begin_invocation("r1")
    finished = state.finish(state.init_failure)
    assert isinstance(finished.outcome, FunctionFailed)
    assert finished.outcome.payload == posted
    assert finished.outcome.error_type == "Runtime.HandlerNotFound"
    assert finished.report.duration_ms == 0.0
    assert finished.report.init_duration_ms == 200.0
    assert finished.report.billed_duration_ms == 200
    assert finished.reset


def test_an_init_that_overruns_is_a_timeout() -> None:
    clock = ManualClock()
    state = EnvironmentState(memory_size_mb=128, timeout_seconds=3, ephemeral_storage_mb=512, clock=clock)
    state.begin_init()
    clock.advance(10.0)
    report = state.init_failed(DeadlineExceeded())
    assert (report.status, report.error_type) == ("timeout", "Sandbox.Timedout")


def test_an_unstartable_runtime_fails_with_its_type() -> None:
    clock = ManualClock()
    state = EnvironmentState(memory_size_mb=128, timeout_seconds=3, ephemeral_storage_mb=512, clock=clock)
    state.begin_init()
    state.init_failed(
        Unstartable("Runtime.InvalidEntrypoint", "Couldn't find valid bootstrap(s): [/x/bootstrap]")
    )
    state.begin_invocation("r")
    assert state.init_failure is not None
    outcome = state.finish(state.init_failure).outcome
    assert isinstance(outcome, FunctionFailed)
    assert outcome.error_type == "Runtime.InvalidEntrypoint"
    assert outcome.error_message == "RequestId: r Error: Couldn't find valid bootstrap(s): [/x/bootstrap]"


def test_memory_over_the_limit_is_a_kill_and_the_peak_is_kept() -> None:
    state = ready(ManualClock(), memory=128)
    assert not state.observe_memory(128 * MIB)
    assert state.observe_memory(128 * MIB + 1)
    assert not state.observe_memory(10 * MIB)
    assert state.max_memory_bytes == 128 * MIB + 1
    assert state.observe_memory(10 * MIB, peak=129 * MIB)  # the process's own high-water mark
    assert state.max_memory_bytes == 129 * MIB
    assert not state.storage_exceeded(512 * MIB)
    assert state.storage_exceeded(512 * MIB + 1)


def test_exit_reasons_use_go_wording() -> None:
    assert exit_reason(127) == "Runtime exited with error: exit status 127"
    assert exit_reason(-6) == "Runtime exited with error: signal: aborted"
    assert exit_reason(-40) == "Runtime exited with error: signal: signal 40"


def test_error_types_are_normalised_as_rie_for_reports_and_bounded_for_metrics() -> None:
    assert report_error_type("Runtime.ImportModuleError") == "Runtime.ImportModuleError"
    assert report_error_type("Function.x") == "Function.Unknown"
    assert report_error_type("KeyError") == "Runtime.Unknown"
    assert report_error_type(None) == "Runtime.Unknown"
    assert metric_error_type("Runtime.ImportModuleError") == "Runtime.ImportModuleError"
    assert metric_error_type("Runtime.SomethingNew") == "Runtime.Unknown"
    assert metric_error_type("Function.Custom") == "Function.Unknown"


def test_trace_header_is_an_x_ray_root() -> None:
    header = trace_header(1_700_000_000.5, "a" * 32, "b" * 32)
    assert header == f"Root=1-6553f100-{'a' * 24};Parent={'b' * 16};Sampled=0"


def test_output_splits_on_newlines_only_and_bounds_line_length() -> None:
    lines = LineSplitter()
    assert lines.feed(b"one\ntw") == ["one"]
    assert lines.feed(b"o\r\n[ERROR] x\r  Traceback\n") == ["two", "[ERROR] x\r  Traceback"]
    splitter = LineSplitter(max_bytes=8)
    assert splitter.feed(b"0123456789abcdefXY") == ["01234567", "89abcdef"]
    assert splitter.flush() == ["XY"]
    assert splitter.flush() == []
    assert LineSplitter().feed("é\n".encode()[:1] + b"\n") == ["\ufffd"]
