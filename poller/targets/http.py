"""`http://…` / `https://…`: the event POSTed as JSON, the reply read as a Lambda response.

The line between "not invoked" and "function error" is whether the request may have reached the
function: a refused or failed connection cannot have run it (back off, keep the retry budget);
anything that breaks after the request went out might have (a function error, at-least-once).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from pydantic import SecretStr

from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut
from poller.core.redact import redact_urls
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


RETRY_AFTER_TEXT_LIMIT = 64
"""An HTTP-date is 29 characters; a longer header is cut, so it cannot smuggle a body into logs."""


def throttle_detail(status: int, retry_after: str | None, body_bytes: int) -> str:
    """A throttle's text, which the invoker logs: what the engine saw of the reply, never the body
    (it may quote the records the function was sent; DESIGN §1.8)."""
    wait = "no Retry-After" if retry_after is None else f"Retry-After: {retry_after[:RETRY_AFTER_TEXT_LIMIT]}"
    return f"HTTP {status}; {wait}; body {body_bytes} bytes"


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
        retry_after = headers.get("Retry-After")
        return NotInvoked(
            "throttled",
            throttle_detail(status, retry_after, len(body)),
            retry_after_seconds=parse_retry_after(retry_after),
        )
    return FunctionFailed(
        error_type=f"HTTP{status}",
        error_message=truncate(body),
        payload=body,
        status_code=status,
        executed_version=version,
        request_id=request_id,
    )


MAX_RESPONSE_BYTES = 6_291_556
"""Lambda's limit on a synchronous invocation's response (spec functions-and-templates §1.4)."""

RESPONSE_TOO_LARGE = orjson.dumps(
    {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        f"({MAX_RESPONSE_BYTES} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
)
"""What Lambda's invoker gets, as an Unhandled function error, for a response over the limit."""


class _TooLarge(Exception):
    pass


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, however many chunks it comes in, but never more than Lambda would take:
    a target that never stops sending cannot grow our memory (DESIGN §3)."""
    if response.content_length is not None and response.content_length > MAX_RESPONSE_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class HttpTarget:
    kind: str = "http"

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        session: aiohttp.ClientSession,
        headers: Mapping[str, SecretStr] | None = None,
    ) -> None:
        self._url = url
        self._timeout = timeout_seconds
        self._session = session
        # Kept as SecretStr until the request is built, so no repr of the target shows a value.
        self._headers = dict(headers or {})

    @classmethod
    async def open(
        cls, url: str, *, timeout_seconds: float, headers: Mapping[str, SecretStr] | None = None
    ) -> HttpTarget:
        # One session (one connection pool) per target, created on the loop that will use it.
        timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds / 2)
        )
        session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return cls(url, timeout_seconds=timeout_seconds, session=session, headers=headers)

    def _request_headers(self) -> dict[str, str]:
        configured = {name: value.get_secret_value() for name, value in self._headers.items()}
        return {**configured, "Content-Type": "application/json"}

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        try:
            async with self._session.post(
                self._url,
                data=payload,
                headers=self._request_headers(),
                # A redirect would resend the batch (and its auth headers) somewhere else, or
                # drop it on a 303 GET.
                allow_redirects=False,
            ) as response:
                try:
                    body = await _read_body(response)
                except _TooLarge:
                    response.close()  # the rest is unread: this connection cannot be reused
                    return function_error_outcome(
                        RESPONSE_TOO_LARGE,
                        "Unhandled",
                        status_code=response.status,
                        executed_version=response.headers.get("X-Amz-Executed-Version", "$LATEST"),
                        request_id=_request_id(response.headers),
                        timeout_seconds=self._timeout,
                    )
                return classify_response(
                    response.status, response.headers, body, timeout_seconds=self._timeout
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return NotInvoked("unreachable", _describe(exc))
        except TimeoutError:  # the total timeout: the request went out, the function overran
            return TimedOut(self._timeout)
        except aiohttp.InvalidURL as exc:
            return NotInvoked("unreachable", _describe(exc))
        except aiohttp.ClientError as exc:
            # Disconnects, resets and malformed replies after sending: the function may have run.
            return FunctionFailed(error_type="ConnectionError", error_message=_describe(exc), status_code=0)

    async def aclose(self) -> None:
        if not self._session.closed:
            await self._session.close()


def _describe(exc: Exception) -> str:
    # aiohttp quotes the URL in some errors (InvalidURL, ClientResponseError), credentials and all.
    return redact_urls(f"{type(exc).__name__}: {exc}")
