"""Turning what a Python handler returned or raised into the bytes Lambda's Python runtime would send.

Reference: `awslambdaric` (bootstrap `make_error`/`build_fault_result`, `lambda_runtime_marshaller`).
"""

from __future__ import annotations

import json
import traceback
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from poller.core.outcome import FunctionFailed, Succeeded

_TARGETS_DIR = Path(__file__).parent


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not turn a function error into a poller crash
        return f"<unprintable {type(exc).__name__} object>"


def _user_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The traceback without poller's own leading frames, as the runtime drops `bootstrap.py`'s."""
    frames = traceback.extract_tb(tb)
    for i, frame in enumerate(frames):
        if Path(frame.filename).parent != _TARGETS_DIR:
            return frames[i:]
    return frames  # nothing but our frames: the fault is ours, so show all of it


def error_document(error_type: str, message: str, request_id: str, stack_trace: tuple[str, ...]) -> bytes:
    """The Lambda runtime's error body, keys in its order."""
    return orjson.dumps(
        {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": request_id,
            "stackTrace": list(stack_trace),
        }
    )


def failure_outcome(exc: BaseException, request_id: str) -> FunctionFailed:
    """A raised exception, reported as the runtime reports an unhandled one."""
    error_type = type(exc).__name__
    message = _text(exc)
    stack = tuple(traceback.format_list(_user_frames(exc.__traceback__)))
    return FunctionFailed(
        error_type=error_type,
        error_message=message,
        stack_trace=stack,
        payload=error_document(error_type, message, request_id, stack),
        function_error="Unhandled",
        request_id=request_id,
    )


def _orjson_default(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        # Exact digits, as the runtime's encoder writes Decimals (boto3's DynamoDB numbers).
        return orjson.Fragment(str(value))
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def marshal_response(response: Any, request_id: str) -> Succeeded | FunctionFailed:
    """The response body, or Runtime.MarshalError if the value has no JSON form.

    orjson is tried first for speed; what it refuses (integers beyond 64 bits, for one) goes
    through the standard encoder, whose behaviour and messages match the runtime's simplejson.
    orjson is more lenient than Lambda in one direction only: it also encodes datetimes, UUIDs
    and dataclasses, which Lambda would refuse, so no handler that works on Lambda fails here.
    """
    if isinstance(response, bytes):  # the runtime passes bytes through untouched
        return Succeeded(response, request_id=request_id)
    try:
        return Succeeded(
            orjson.dumps(response, default=_orjson_default, option=orjson.OPT_NON_STR_KEYS),
            request_id=request_id,
        )
    except TypeError:
        pass
    try:
        body = json.dumps(response, default=_json_default).encode()
    except Exception as exc:  # TypeError, ValueError (circular), RecursionError
        message = f"Unable to marshal response: {_text(exc)}"
        return FunctionFailed(
            error_type="Runtime.MarshalError",
            error_message=message,
            payload=error_document("Runtime.MarshalError", message, request_id, ()),
            function_error="Unhandled",
            request_id=request_id,
        )
    return Succeeded(body, request_id=request_id)
