"""What one execution environment decides, without I/O: deadlines, verdicts, outcomes, report fields.

The I/O loop (`environment.py`) tells this core what happened — the runtime became ready, replied,
posted an error, exited, used this much memory, ran past its deadline — and gets back the outcome
to return, the platform report to log and whether the process must die. The clock is injected so
timeouts, durations and billing are tested with a `ManualClock`.

Messages are Lambda's (`error_types`), wrapped as `RequestId: <id> Error: …`; the timeout is
`Task timed out after N.NN seconds` with the configured timeout; billing is rounded up to the
millisecond and includes Init on a cold start (spec §2.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from poller.core.clock import Clock
from poller.core.outcome import FunctionFailed, InvokeOutcome, Succeeded, TimedOut
from poller.functions.definition import VERSION
from poller.functions.error_types import (
    EXIT_ERROR,
    OUT_OF_MEMORY,
    TIMEOUT_ERROR,
    TOO_LARGE,
    TOO_LARGE_MESSAGE,
    UNKNOWN_RUNTIME_ERROR,
    error_fields,
    exit_reason,
    metric_error_type,
    platform_error_document,
    report_error_type,
)

INIT_TIMEOUT_SECONDS = 10.0
"""Lambda's limit for the Init phase of an on-demand environment (spec §2.2)."""
MIB = 1024 * 1024

ReportStatus = Literal["success", "error", "timeout"]


def trace_header(epoch_seconds: float, root_hex: str, parent_hex: str) -> str:
    """An X-Ray trace header for `Lambda-Runtime-Trace-Id`; the runtime sets `_X_AMZN_TRACE_ID` from it."""
    return f"Root=1-{int(epoch_seconds):08x}-{root_hex[:24]};Parent={parent_hex[:16]};Sampled=0"


# What ended an invocation, as the I/O loop observed it.
@dataclass(frozen=True, slots=True)
class Responded:
    body: bytes


@dataclass(frozen=True, slots=True)
class Errored:
    """The runtime posted `/error` (or `/init/error`); `error_type` is its header, if it sent one."""

    error_type: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class ResponseTooLarge:
    pass


@dataclass(frozen=True, slots=True)
class Exited:
    returncode: int


@dataclass(frozen=True, slots=True)
class OutOfMemory:
    pass


@dataclass(frozen=True, slots=True)
class StorageExceeded:
    pass


@dataclass(frozen=True, slots=True)
class DeadlineExceeded:
    pass


@dataclass(frozen=True, slots=True)
class Unstartable:
    """The runtime could not be started at all (no bootstrap, no Node client)."""

    error_type: str
    message: str


Ending = (
    Responded
    | Errored
    | ResponseTooLarge
    | Exited
    | OutOfMemory
    | StorageExceeded
    | DeadlineExceeded
    | Unstartable
)


@dataclass(frozen=True, slots=True)
class MemorySample:
    resident: int
    """Bytes resident now in the runtime process and all its descendants."""
    peak: int
    """The runtime process's own high-water mark (`VmHWM`), 0 where unknown."""


@dataclass(frozen=True, slots=True)
class InitReport:
    """`platform.initReport`'s fields."""

    init_duration_ms: float
    status: ReportStatus
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """`platform.report`'s fields."""

    request_id: str
    status: ReportStatus
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    error_type: str | None = None

    def fields(self) -> dict[str, object]:
        out: dict[str, object] = {
            "requestId": self.request_id,
            "status": self.status,
            "durationMs": self.duration_ms,
            "billedDurationMs": self.billed_duration_ms,
            "memorySizeMB": self.memory_size_mb,
            "maxMemoryUsedMB": self.max_memory_used_mb,
        }
        if self.init_duration_ms is not None:
            out["initDurationMs"] = self.init_duration_ms
        if self.error_type is not None:
            out["errorType"] = self.error_type
        return out


@dataclass(frozen=True, slots=True)
class Invocation:
    request_id: str
    started: float
    deadline: float
    """On the injected clock's monotonic scale."""
    deadline_epoch_ms: int
    """`Lambda-Runtime-Deadline-Ms`: always positive (awslambdaric aborts on 0, spec §5 trap 1)."""


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: InvokeOutcome
    report: Report
    reset: bool
    """The environment must not serve another invocation: its process is (to be) killed."""
    metric_error_type: str | None


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """The invocation never reached the function: its runtime exited before a `/next` took it.

    Not an outcome: the pool runs the same invocation again on a replacement environment."""

    request_id: str
    returncode: int


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


class EnvironmentState:
    """One environment's lifecycle: init once, then one invocation at a time until reset."""

    def __init__(
        self, *, memory_size_mb: int, timeout_seconds: float, ephemeral_storage_mb: int, clock: Clock
    ) -> None:
        self.memory_size_mb = memory_size_mb
        self.timeout_seconds = float(timeout_seconds)
        self._memory_limit = memory_size_mb * MIB
        self._storage_limit = ephemeral_storage_mb * MIB
        self._clock = clock
        self._init_started: float | None = None
        self.init_duration_ms: float | None = None
        self.init_failure: Ending | None = None
        self.max_memory_bytes = 0
        self._cold = True
        self._current: Invocation | None = None
        self.reset = False

    # Init ---------------------------------------------------------------------------------------

    def begin_init(self) -> float:
        """Start the clock on Init; returns its deadline (monotonic)."""
        self._init_started = self._clock.monotonic()
        return self._init_started + INIT_TIMEOUT_SECONDS

    def _init_elapsed_ms(self) -> float:
        assert self._init_started is not None, "begin_init first"
        return _ms(self._clock.monotonic() - self._init_started)

    def init_succeeded(self) -> InitReport:
        self.init_duration_ms = self._init_elapsed_ms()
        return InitReport(self.init_duration_ms, "success")

    def init_failed(self, ending: Ending) -> InitReport:
        """Init ended without the runtime asking for work: every invocation of it fails (§2.2)."""
        self.init_duration_ms = self._init_elapsed_ms()
        self.init_failure = ending
        self.reset = True
        if isinstance(ending, DeadlineExceeded):
            return InitReport(self.init_duration_ms, "timeout", TIMEOUT_ERROR)
        return InitReport(self.init_duration_ms, "error", self._report_type(ending))

    # Invoke -------------------------------------------------------------------------------------

    def begin_invocation(self, request_id: str) -> Invocation:
        assert self._current is None, "one invocation at a time per environment"
        now = self._clock.monotonic()
        deadline = now + self.timeout_seconds
        # Rounded down: the runtime's remaining time (deadline - its floored now) must never
        # exceed Timeout, as it would within the millisecond the event is delivered if rounded up.
        epoch_ms = max(1, math.floor((self._clock.wall() + self.timeout_seconds) * 1000))
        self._current = Invocation(request_id, now, deadline, epoch_ms)
        return self._current

    def remaining(self) -> float:
        assert self._current is not None
        return self._current.deadline - self._clock.monotonic()

    def observe_memory(self, resident_bytes: int, *, peak: int = 0) -> bool:
        """Record a sample: resident bytes now (process and children) and the process's own peak.

        True when either is over `MemorySize`: the environment must be killed (Runtime.OutOfMemory).
        """
        self.max_memory_bytes = max(self.max_memory_bytes, resident_bytes, peak)
        return max(resident_bytes, peak) > self._memory_limit

    def storage_exceeded(self, used_bytes: int) -> bool:
        return used_bytes > self._storage_limit

    def withdraw(self, ending: Ending, *, delivered: bool) -> Withdrawn | None:
        """The invocation, withdrawn if its runtime exited before any `/next` delivered it; else None.

        A runtime may exit between invocations (aws-lambda-ric posts `/error` for an uncaught
        exception, then exits): an invocation handed to it in that moment was never the function's,
        and Lambda would have run it in a fresh environment, so it is re-run rather than failed as
        `Runtime.ExitError`. Only on an environment that has served before: Init ends at the first
        `/next`, which takes the first invocation at once, so a runtime that dies before taking it
        fails it — and since the replacement is cold, an invocation is re-run at most once.
        """
        invocation = self._current
        assert invocation is not None, "begin_invocation first"
        if delivered or self._cold or self.init_failure is not None or not isinstance(ending, Exited):
            return None
        self._current = None
        self.reset = True
        return Withdrawn(invocation.request_id, ending.returncode)

    def finish(self, ending: Ending) -> Finished:
        """The invocation ended this way: its outcome and report. An init failure ends every one."""
        invocation = self._current
        assert invocation is not None, "begin_invocation first"
        self._current = None
        rid = invocation.request_id
        cold, self._cold = self._cold, False
        failed_init = self.init_failure is not None
        duration = 0.0 if failed_init else _ms(self._clock.monotonic() - invocation.started)
        init_ms = self.init_duration_ms if cold else None
        outcome, status, reset = self._outcome(rid, ending)
        self.reset = self.reset or reset
        report_type = None if status == "success" else self._report_type(ending)
        billed = math.ceil(round(duration + (init_ms or 0.0), 2))
        report = Report(
            request_id=rid,
            status=status,
            duration_ms=duration,
            billed_duration_ms=billed,
            memory_size_mb=self.memory_size_mb,
            max_memory_used_mb=math.ceil(self.max_memory_bytes / MIB),
            init_duration_ms=init_ms,
            error_type=report_type,
        )
        metric_type = None if report_type is None else metric_error_type(report_type)
        return Finished(outcome, report, self.reset, metric_type)

    def _outcome(self, rid: str, ending: Ending) -> tuple[InvokeOutcome, ReportStatus, bool]:
        """(outcome, report status, whether the environment is reset)."""
        match ending:
            case Responded(body=body):
                return Succeeded(payload=body, executed_version=VERSION, request_id=rid), "success", False
            case Errored(error_type=header, body=body):
                doc_type, message, trace = error_fields(body)
                failed = FunctionFailed(
                    error_type=doc_type or header or UNKNOWN_RUNTIME_ERROR,
                    error_message=message if message is not None else body.decode("utf-8", "replace")[:1024],
                    stack_trace=trace,
                    payload=body,  # as the runtime posted it, never rebuilt (spec §1.5)
                    executed_version=VERSION,
                    request_id=rid,
                )
                return failed, "error", False
            case DeadlineExceeded():
                detail = f"RequestId: {rid} Error: Task timed out after {self.timeout_seconds:.2f} seconds"
                return TimedOut(self.timeout_seconds, request_id=rid, detail=detail), "timeout", True
            case ResponseTooLarge():
                message = TOO_LARGE_MESSAGE
                return self._platform(rid, TOO_LARGE, message), "error", True
            case Exited(returncode=code):
                return (
                    self._platform(rid, EXIT_ERROR, f"RequestId: {rid} Error: {exit_reason(code)}"),
                    "error",
                    True,
                )
            case OutOfMemory():
                message = f"RequestId: {rid} Error: {exit_reason(-9)}"
                return self._platform(rid, OUT_OF_MEMORY, message), "error", True
            case StorageExceeded():
                # Killed like an out-of-memory process; Lambda has no error type of its own for a
                # full /tmp (there the write fails with ENOSPC), so the kill reads as one.
                message = f"RequestId: {rid} Error: {exit_reason(-9)}"
                return self._platform(rid, EXIT_ERROR, message), "error", True
            case Unstartable(error_type=error_type, message=text):
                return self._platform(rid, error_type, f"RequestId: {rid} Error: {text}"), "error", True

    @staticmethod
    def _platform(rid: str, error_type: str, message: str) -> FunctionFailed:
        return FunctionFailed(
            error_type=error_type,
            error_message=message,
            payload=platform_error_document(error_type, message),
            executed_version=VERSION,
            request_id=rid,
        )

    @staticmethod
    def _report_type(ending: Ending) -> str:
        match ending:
            case Errored(error_type=header, body=body):
                return report_error_type(header or error_fields(body)[0])
            case DeadlineExceeded():
                return TIMEOUT_ERROR
            case ResponseTooLarge():
                return TOO_LARGE
            case OutOfMemory():
                return OUT_OF_MEMORY
            case Unstartable(error_type=error_type):
                return error_type
            case _:
                return EXIT_ERROR
