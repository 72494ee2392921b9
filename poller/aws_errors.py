"""AWS errors read once, at the client boundary (httpx's way): every botocore exception a call can
raise becomes one of four kinds, and callers decide on the kind, never on botocore's classes.

- `not_found`: the resource does not exist (a queue, stream, shard, table, bucket);
- `throttled`: the service asked to slow down;
- `transient`: worth retrying as is (5xx, timeouts, connection failures, expired iterators);
- `fatal`: retrying will not help until someone changes something (permissions, bad requests).

Codes are API; messages are not, so only codes are matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError

ErrorKind = Literal["not_found", "throttled", "transient", "fatal"]

NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NoSuchBucket",
        "NotFound",
        "NotFoundException",
    }
)
THROTTLED_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "KMSThrottlingException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredIteratorException",
        "TransactionInProgressException",
    }
)


@dataclass(frozen=True, slots=True)
class AwsError:
    kind: ErrorKind
    code: str
    """The AWS error code; the exception's class name for failures below the API (no reply)."""
    message: str


def read_error(exc: ClientError | BotoCoreError) -> AwsError:
    """What an aiobotocore call's exception means."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "") or "Unknown")
        message = str(error.get("Message", "") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return AwsError(_kind(code, status), code, message)
    # No reply at all: connection refused, DNS, read timeout — the endpoint may come back.
    return AwsError("transient", type(exc).__name__, str(exc))


def error_code(exc: ClientError) -> str:
    """The AWS error code of a refused call ("Unknown" when the reply has none)."""
    return str(exc.response.get("Error", {}).get("Code", "") or "Unknown")


def _kind(code: str, status: int) -> ErrorKind:
    if code in NOT_FOUND_CODES:
        return "not_found"
    if code in THROTTLED_CODES or status == 429:
        return "throttled"
    if code in TRANSIENT_CODES or status >= 500:
        return "transient"
    return "fatal"
