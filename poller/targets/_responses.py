"""Reading what a remote function said: error bodies, error kinds and `Retry-After`.

Shared by the HTTP and Lambda targets, which receive the same Lambda-shaped error documents.
"""

from __future__ import annotations

import math
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

import orjson

from poller.core.outcome import FunctionErrorKind, FunctionFailed, TimedOut

TIMEOUT_ERROR_TYPE = "Sandbox.Timedout"
"""The errorType Lambda (and its Runtime Interface Emulator) report when a function overran."""

MESSAGE_LIMIT_BYTES = 1024
"""Raw bodies quoted in an error message are cut here, so a large HTML error page stays out of logs."""


def truncate(body: bytes, limit: int = MESSAGE_LIMIT_BYTES) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return text + "…" if len(body) > limit else text


def function_error_kind(header: str | None) -> FunctionErrorKind:
    # Lambda only ever sends these two; anything else from a hand-written endpoint is treated as
    # the runtime-level kind, which is what a crash would have been.
    return "Handled" if header == "Handled" else "Unhandled"


def error_fields(body: bytes) -> tuple[str, str, tuple[str, ...]] | None:
    """`(errorType, errorMessage, stackTrace)` from a Lambda error document, or None if it is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not ("errorType" in doc or "errorMessage" in doc):
        return None
    error_type = doc.get("errorType")
    message = doc.get("errorMessage")
    trace = doc.get("stackTrace")
    lines = tuple(str(line) for line in trace) if isinstance(trace, list) else ()
    return (
        str(error_type) if error_type else "FunctionError",
        "" if message is None else str(message),
        lines,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT, even when it says "-0000"
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def function_error_outcome(
    body: bytes,
    function_error: str,
    *,
    status_code: int,
    executed_version: str,
    request_id: str,
    timeout_seconds: float,
) -> FunctionFailed | TimedOut:
    """The outcome of a reply that carries a function error (an HTTP header or Invoke's FunctionError).

    Lambda reports an overrun as an Unhandled error of type Sandbox.Timedout; it is a timeout here
    so it is counted apart.
    """
    error_type, message, trace = error_fields(body) or ("FunctionError", truncate(body), ())
    if error_type == TIMEOUT_ERROR_TYPE:
        return TimedOut(timeout_seconds, request_id=request_id, detail=message)
    return FunctionFailed(
        error_type=error_type,
        error_message=message,
        stack_trace=trace,
        payload=body,
        function_error=function_error_kind(function_error),
        status_code=status_code,
        executed_version=executed_version,
        request_id=request_id,
    )
