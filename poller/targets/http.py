"""`http://…` / `https://…`: the event POSTed as JSON, the reply read as a Lambda response.

The line between "not invoked" and "function error" is whether the request may have reached the
function: a refused or failed connection cannot have run it (back off, keep the retry budget);
anything that breaks after the request went out might have (a function error, at-least-once).
"""

from __future__ import annotations

import uuid

import aiohttp
from multidict import CIMultiDictProxy

from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut
from poller.targets._responses import (
    function_error_outcome,
    parse_retry_after,
    truncate,
)

CONNECT_TIMEOUT_SECONDS = 5.0
"""Cap on connecting; kept below the total so a dead host reads as unreachable, not as a timeout."""

_REQUEST_ID_HEADERS = ("X-Amz-Request-Id", "X-Amzn-RequestId", "X-Request-Id")


def _request_id(headers: CIMultiDictProxy[str]) -> str:
    for name in _REQUEST_ID_HEADERS:
        if value := headers.get(name):
            return value
    return str(uuid.uuid4())


def classify_response(
    status: int, headers: CIMultiDictProxy[str], body: bytes, *, timeout_seconds: float
) -> InvokeOutcome:
    """Map one HTTP reply onto an outcome (spec §4.1). Pure, so every branch is testable alone."""
    request_id = _request_id(headers)
    version = headers.get("X-Amz-Executed-Version", "$LATEST")
    function_error = headers.get("X-Amz-Function-Error")
    if function_error is not None:
        return function_error_outcome(
            body,
            function_error,
            status_code=status,
            executed_version=version,
            request_id=request_id,
            timeout_seconds=timeout_seconds,
        )
    if 200 <= status < 300:
        return Succeeded(payload=body, status_code=status, executed_version=version, request_id=request_id)
    if status in (429, 503):
        return NotInvoked(
            "throttled",
            f"HTTP {status}: {truncate(body)}" if body else f"HTTP {status}",
            retry_after_seconds=parse_retry_after(headers.get("Retry-After")),
        )
    return FunctionFailed(
        error_type=f"HTTP{status}",
        error_message=truncate(body),
        payload=body,
        status_code=status,
        executed_version=version,
        request_id=request_id,
    )


MAX_RESPONSE_BYTES = 6 * 1024 * 1024
"""Lambda's limit on a synchronous invocation's response; more is Function.ResponseSizeTooLarge."""


class HttpTarget:
    kind: str = "http"

    def __init__(self, url: str, *, timeout_seconds: float, session: aiohttp.ClientSession) -> None:
        self._url = url
        self._timeout = timeout_seconds
        self._session = session

    @classmethod
    async def open(cls, url: str, *, timeout_seconds: float) -> HttpTarget:
        # One session (one connection pool) per target, created on the loop that will use it.
        timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds / 2)
        )
        session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return cls(url, timeout_seconds=timeout_seconds, session=session)

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        try:
            async with self._session.post(
                self._url,
                data=payload,
                headers={"Content-Type": "application/json"},
                # A redirect would resend the batch somewhere else (or drop it, on a 303 GET).
                allow_redirects=False,
            ) as response:
                # Lambda caps a synchronous response at 6 MB; read no further than that, so a
                # target that never stops sending cannot grow our memory (DESIGN §3).
                body = await response.content.read(MAX_RESPONSE_BYTES + 1)
                if len(body) > MAX_RESPONSE_BYTES:
                    return FunctionFailed(
                        error_type="Function.ResponseSizeTooLarge",
                        error_message=f"Response payload size exceeded maximum allowed payload size "
                        f"({MAX_RESPONSE_BYTES} bytes).",
                        status_code=response.status,
                        request_id=response.headers.get("X-Amz-Request-Id", ""),
                    )
                return classify_response(
                    response.status, response.headers, body, timeout_seconds=self._timeout
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return NotInvoked("unreachable", f"{type(exc).__name__}: {exc}")
        except TimeoutError:  # the total timeout: the request went out, the function overran
            return TimedOut(self._timeout)
        except aiohttp.InvalidURL as exc:
            return NotInvoked("unreachable", f"{type(exc).__name__}: {exc}")
        except aiohttp.ClientError as exc:
            # Disconnects, resets and malformed replies after sending: the function may have run.
            return FunctionFailed(
                error_type="ConnectionError",
                error_message=f"{type(exc).__name__}: {exc}",
                status_code=0,
            )

    async def aclose(self) -> None:
        if not self._session.closed:
            await self._session.close()
