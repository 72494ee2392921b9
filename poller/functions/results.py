"""What a Runtime API session reports to its invoker: how Init ended, how an invocation ended.

These are the values `RuntimeApiServer.wait_ready()` and `.invoke()` return (spec
functions-and-templates §1.4–§1.6, §1.10). Bodies are the bytes the runtime posted, never rebuilt;
`error_type` is the platform error type RIE derives from `Lambda-Runtime-Function-Error-Type`
(spec §1.5) — the error document itself keeps the runtime's own `errorType`.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PAYLOAD_BYTES = 6_291_556
"""RIE's `interop.MaxPayloadSize` = 6 MiB + 100 bytes: the largest response body accepted (spec §1.4)."""

TOO_LARGE_ERROR_TYPE = "Function.ResponseSizeTooLarge"
TOO_LARGE_DOCUMENT = (
    b'{"errorMessage":"Response payload size exceeded maximum allowed payload size (6291556 bytes).",'
    b'"errorType":"Function.ResponseSizeTooLarge"}'
)
"""What AWS returns to the invoker for an oversized response (spec §1.4, recorded AWS output)."""


@dataclass(frozen=True, slots=True)
class InitOk:
    """The runtime asked for its first event: Init is over (spec §1.8)."""


@dataclass(frozen=True, slots=True)
class InitFailed:
    """The runtime posted `/runtime/init/error`; every invocation of this environment fails with it."""

    error_type: str
    body: bytes


InitResult = InitOk | InitFailed


@dataclass(frozen=True, slots=True)
class Replied:
    """`/response`: the function's result, with the `Content-Type` the runtime posted ("" if none)."""

    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class RuntimeErrored:
    """`/error` (or the init error, served to the invocation that was waiting for Init)."""

    error_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The runtime posted more than `MAX_PAYLOAD_BYTES`; it got a 413, the invoker gets this."""

    error_type: str = TOO_LARGE_ERROR_TYPE
    body: bytes = TOO_LARGE_DOCUMENT


RuntimeReply = Replied | RuntimeErrored | TooLarge


class RuntimeGone(Exception):
    """The runtime's process exited, or the server closed, before Init or the invocation ended.

    The pool watches the process itself and knows the exit code; this only releases the waiters.
    """


class InvocationAbandoned(Exception):
    """`abandon(request_id)` was called (the invocation timed out) while `invoke()` was waiting."""
