"""The error vocabulary of execution environments: Lambda's types and messages, and bounded labels.

What the invoker gets when the platform (not the runtime) ends an invocation is Lambda's to the
letter (spec §1.10): exits in Go's `exec.ExitError` wording (`exit status 2`, `signal: killed`),
the fixed too-large message. What a runtime posts is relayed as posted; only the type reported in
`platform.report` is normalised (RIE's rule), and the metric label is folded further into a closed
set so handler exception class names never become label values.
"""

from __future__ import annotations

import orjson

from poller.functions.results import MAX_PAYLOAD_BYTES, TOO_LARGE_ERROR_TYPE
from poller.functions.runtime_state import platform_error_type

TOO_LARGE_MESSAGE = (
    f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."
)

TIMEOUT_ERROR = "Sandbox.Timedout"
EXIT_ERROR = "Runtime.ExitError"
OUT_OF_MEMORY = "Runtime.OutOfMemory"
TOO_LARGE = TOO_LARGE_ERROR_TYPE
UNKNOWN_RUNTIME_ERROR = "Runtime.Unknown"
UNKNOWN_FUNCTION_ERROR = "Function.Unknown"

KNOWN_ERROR_TYPES = frozenset(
    {
        TIMEOUT_ERROR,
        EXIT_ERROR,
        OUT_OF_MEMORY,
        TOO_LARGE,
        UNKNOWN_RUNTIME_ERROR,
        UNKNOWN_FUNCTION_ERROR,
        "Runtime.InvalidEntrypoint",
        # awslambdaric (spec §1.11)
        "Runtime.ImportModuleError",
        "Runtime.HandlerNotFound",
        "Runtime.UserCodeSyntaxError",
        "Runtime.MalformedHandlerName",
        "Runtime.BuiltInModuleConflict",
        "Runtime.MarshalError",
        "Runtime.UnmarshalError",
        "Runtime.LambdaContextUnmarshalError",
        "Runtime.LambdaRuntimeClientError",
        # aws-lambda-ric (spec §1.12)
        "Runtime.NodeJsExit",
        "Runtime.UnhandledPromiseRejection",
        "Runtime.MalformedStreamingHandler",
        "Runtime.InvalidStreamingOperation",
        "Runtime.CallbackHandlerDeprecated",
        "Runtime.PlatformError",
        "Runtime.NativeClientLoading",
        "Runtime.JSONStringifyError",
    }
)
"""The closed set of `error_type` metric label values: anything else folds into the Unknowns."""

# Go's names for Linux signals, as `exec.ExitError` prints them ("signal: killed").
SIGNAL_NAMES = {
    1: "hangup",
    2: "interrupt",
    3: "quit",
    4: "illegal instruction",
    5: "trace/breakpoint trap",
    6: "aborted",
    7: "bus error",
    8: "floating point exception",
    9: "killed",
    10: "user defined signal 1",
    11: "segmentation fault",
    12: "user defined signal 2",
    13: "broken pipe",
    14: "alarm clock",
    15: "terminated",
    24: "CPU time limit exceeded",
    25: "file size limit exceeded",
}


def exit_reason(returncode: int) -> str:
    """RIE's text for a runtime that ended with `returncode` (negative: killed by that signal)."""
    if returncode == 0:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        signal = -returncode
        return f"Runtime exited with error: signal: {SIGNAL_NAMES.get(signal, f'signal {signal}')}"
    return f"Runtime exited with error: exit status {returncode}"


def report_error_type(raw: str | None) -> str:
    """RIE's normalisation of a runtime-reported error type (spec §1.5), as the Runtime API applies it."""
    return platform_error_type(raw)


def metric_error_type(error_type: str) -> str:
    """A bounded label: a known runtime or platform type, else the Unknown its prefix says."""
    if error_type in KNOWN_ERROR_TYPES:
        return error_type
    return UNKNOWN_FUNCTION_ERROR if error_type.startswith("Function.") else UNKNOWN_RUNTIME_ERROR


def error_fields(body: bytes) -> tuple[str | None, str | None, tuple[str, ...]]:
    """`errorType`, `errorMessage` and the stack (`stackTrace`, or Node's `trace`) of an error body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, ()
    if not isinstance(doc, dict):
        return None, None, ()
    error_type = doc.get("errorType")
    message = doc.get("errorMessage")
    trace = doc.get("stackTrace", doc.get("trace"))
    return (
        str(error_type) if error_type else None,
        None if message is None else str(message),
        tuple(str(line) for line in trace) if isinstance(trace, list) else (),
    )


def platform_error_document(error_type: str, message: str) -> bytes:
    """The body Lambda returns for an error the platform (not the runtime) detected."""
    return orjson.dumps({"errorMessage": message, "errorType": error_type})
