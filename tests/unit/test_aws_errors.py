"""AWS errors are read once, at the client boundary, into four kinds (poller.aws_errors)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from poller.aws_errors import read_error


def refused(code: str, status: int = 400, message: str = "m") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ResourceNotFoundException", 400, "not_found"),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, "not_found"),
        ("ProvisionedThroughputExceededException", 400, "throttled"),
        ("ThrottlingException", 400, "throttled"),
        ("Whatever", 429, "throttled"),
        ("InternalError", 500, "transient"),
        ("Unexpected", 503, "transient"),
        ("ExpiredIteratorException", 400, "transient"),
        ("AccessDeniedException", 400, "fatal"),
        ("ValidationException", 400, "fatal"),
    ],
)
def test_refusals_are_read_by_code_and_status(code: str, status: int, kind: str) -> None:
    error = read_error(refused(code, status, "why"))
    assert (error.kind, error.code, error.message) == (kind, code, "why")


def test_failures_without_a_reply_are_transient() -> None:
    assert read_error(EndpointConnectionError(endpoint_url="http://x")).kind == "transient"
    error = read_error(ReadTimeoutError(endpoint_url="http://x"))
    assert (error.kind, error.code) == ("transient", "ReadTimeoutError")


def test_a_reply_without_a_code_is_unknown_and_fatal() -> None:
    error = read_error(ClientError({"Error": {}}, "Op"))
    assert (error.kind, error.code) == ("fatal", "Unknown")
