"""A function name or `arn:aws:lambda:…`: Lambda `Invoke` (RequestResponse) through aiobotocore.

SDK retries are off: the engine is the only thing that retries, so one decision is one invoke
and a throttle reaches the engine's backoff instead of being hidden by the SDK's. Errors are told
apart by their error code, which is API, never by message text, which is not.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import aiobotocore.session
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut
from poller.targets._responses import (
    function_error_outcome,
    parse_retry_after,
)

if TYPE_CHECKING:
    from types_aiobotocore_lambda import LambdaClient

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_MARGIN_SECONDS = 5.0
"""Lambda answers only when the function returns, so the socket read waits the whole
FunctionTimeout; the margin covers Lambda's own overhead so its timeout error arrives first."""

THROTTLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "EC2ThrottledException",
        "ENILimitReachedException",
        "SubnetIPAddressLimitReachedException",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
    }
)
"""Capacity refusals (Lambda's own and the generic AWS throttling codes): wait and try again."""


def _client_error_outcome(exc: ClientError) -> NotInvoked:
    """Any error response to Invoke means the function did not run (function errors come as 200s)."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    detail = f"{code}: {error.get('Message', '')}".rstrip(": ")
    if code in THROTTLE_CODES:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        # botocore lower-cases header names; the body's retryAfterSeconds mirrors the header.
        retry_after = headers.get("retry-after") or exc.response.get("retryAfterSeconds")
        return NotInvoked(
            "throttled",
            detail,
            retry_after_seconds=parse_retry_after(None if retry_after is None else str(retry_after)),
        )
    # ResourceNotFound, ResourceConflict, ServiceException, permissions, KMS, VPC…: the function
    # cannot be reached now; the engine backs off without spending retry attempts (spec §4.1).
    return NotInvoked("unreachable", detail)


class LambdaTarget:
    kind: str = "lambda"

    def __init__(
        self, client: LambdaClient, *, function_name: str, timeout_seconds: float, exit_stack: AsyncExitStack
    ) -> None:
        self._client = client
        self._function_name = function_name
        self._timeout = timeout_seconds
        self._exit_stack = exit_stack

    @classmethod
    async def open(
        cls,
        function_name: str,
        *,
        timeout_seconds: float,
        region: str,
        endpoint_url: str | None = None,
        session: aiobotocore.session.AioSession | None = None,
        read_timeout_margin_seconds: float = READ_TIMEOUT_MARGIN_SECONDS,
    ) -> LambdaTarget:
        config = AioConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=timeout_seconds + read_timeout_margin_seconds,
            tcp_keepalive=True,
        )
        session = session or aiobotocore.session.get_session()
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            session.create_client("lambda", region_name=region, endpoint_url=endpoint_url, config=config)
        )
        return cls(client, function_name=function_name, timeout_seconds=timeout_seconds, exit_stack=stack)

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        try:
            reply = await self._client.invoke(
                FunctionName=self._function_name, InvocationType="RequestResponse", Payload=payload
            )
            body = await reply["Payload"].read()
        except ClientError as exc:
            return _client_error_outcome(exc)
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            return NotInvoked("unreachable", str(exc))
        except ReadTimeoutError:
            return TimedOut(self._timeout)
        except (ConnectionClosedError, ResponseStreamingError) as exc:
            # The request went out and the reply broke off: the function may have run.
            return FunctionFailed(error_type="ConnectionError", error_message=str(exc), status_code=0)
        except BotoCoreError as exc:  # no credentials, bad parameters: nothing was sent
            return NotInvoked("unreachable", f"{type(exc).__name__}: {exc}")

        status = reply.get("StatusCode", 200)
        version = reply.get("ExecutedVersion", "$LATEST")
        request_id = reply.get("ResponseMetadata", {}).get("RequestId", "")
        function_error = reply.get("FunctionError")
        if function_error is None:
            return Succeeded(
                payload=body, status_code=status, executed_version=version, request_id=request_id
            )
        return function_error_outcome(
            body,
            function_error,
            status_code=status,
            executed_version=version,
            request_id=request_id,
            timeout_seconds=self._timeout,
        )

    async def aclose(self) -> None:
        await self._exit_stack.aclose()
