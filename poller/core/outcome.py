"""What happened when a function was invoked: one closed set of values every target returns.

The split follows Lambda (spec §4.1): a *function error* means the function ran and failed and
consumes retry attempts; *not invoked* (throttled, unreachable) means the batch never reached the
function, which backs off without consuming attempts; a *timeout* is a function error of its own
kind so it can be counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FunctionErrorKind = Literal["Handled", "Unhandled"]
NotInvokedReason = Literal["throttled", "unreachable"]


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The function ran and returned; `payload` is its response body, as raw bytes."""

    payload: bytes
    status_code: int = 200
    executed_version: str = "$LATEST"
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class FunctionFailed:
    """The function ran and failed (an exception, an error status, `X-Amz-Function-Error`)."""

    error_type: str
    error_message: str
    stack_trace: tuple[str, ...] = ()
    payload: bytes = b""
    function_error: FunctionErrorKind = "Unhandled"
    status_code: int = 200
    executed_version: str = "$LATEST"
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class NotInvoked:
    """The batch never reached the function: throttled (429/503, TooManyRequests) or unreachable."""

    reason: NotInvokedReason
    detail: str
    retry_after_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The function overran `FunctionTimeout`; Lambda reports this as an Unhandled function error."""

    timeout_seconds: float
    request_id: str = ""
    detail: str = field(default="")

    @property
    def error_message(self) -> str:
        return self.detail or f"Task timed out after {self.timeout_seconds:.2f} seconds"


InvokeOutcome = Succeeded | FunctionFailed | NotInvoked | TimedOut
