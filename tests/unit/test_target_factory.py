"""open_target: which FunctionName forms make which target, and which are refused at open."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from botocore.exceptions import ClientError

from poller.core.outcome import NotInvoked
from poller.errors import TargetConfigError
from poller.targets._responses import error_fields, parse_retry_after
from poller.targets.factory import TargetSpec, function_arn, open_target
from poller.targets.lambda_invoke import _client_error_outcome


def spec_for(function_name: str, region: str = "us-east-1", timeout: float = 3.0) -> TargetSpec:
    return TargetSpec(
        function_name=function_name,
        mapping_name="m",
        timeout_seconds=timeout,
        region=region,
        account_id="000000000000",
        endpoint_url=None,
    )


@pytest.mark.parametrize(
    ("function_name", "kind"),
    [
        ("https://fn.example.com/invoke", "http"),
        ("HTTP://127.0.0.1:9/x", "http"),
        ("my-function", "lambda"),
        ("my-function:live", "lambda"),
        ("my-function:$LATEST", "lambda"),
        ("123456789012:function:my-function", "lambda"),
        ("arn:aws:lambda:eu-west-1:123456789012:function:my-function:3", "lambda"),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:f", "lambda"),
    ],
)
async def test_function_name_forms(monkeypatch: pytest.MonkeyPatch, function_name: str, kind: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    target = await open_target(spec_for(function_name))
    try:
        assert target.kind == kind
    finally:
        await target.aclose()


@pytest.mark.parametrize(
    "function_name",
    ["", "ftp://host/x", "has space", "arn:aws:sqs:us-east-1:123456789012:queue", "http://", "fn:a:b:c"],
)
async def test_impossible_function_names_fail_at_open(function_name: str) -> None:
    with pytest.raises(TargetConfigError):
        await open_target(spec_for(function_name))


async def test_non_positive_timeout_fails_at_open() -> None:
    with pytest.raises(TargetConfigError, match="FunctionTimeout"):
        await open_target(spec_for("https://x.example/", timeout=0))


def test_made_up_function_arn_names_the_mapping() -> None:
    assert function_arn(spec_for("python:a.b")) == "arn:aws:lambda:us-east-1:000000000000:function:m"
    assert function_arn(spec_for("x", region="cn-north-1")).startswith("arn:aws-cn:lambda:cn-north-1:")


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after("2", now=now) == 2.0
    assert parse_retry_after(" 0.5 ", now=now) == 0.5
    assert (
        parse_retry_after(format_datetime(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True), now=now)
        == 30
    )
    assert parse_retry_after("Wed, 31 Dec 2025 23:59:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after("-3") == 0.0


def test_error_fields_only_from_lambda_error_documents() -> None:
    assert error_fields(b'{"errorType": "E", "errorMessage": "m", "stackTrace": ["a", 1]}') == (
        "E",
        "m",
        ("a", "1"),
    )
    assert error_fields(b'{"errorMessage": "only a message"}') == ("FunctionError", "only a message", ())
    assert error_fields(b'{"statusCode": 500}') is None
    assert error_fields(b"[1]") is None
    assert error_fields(b"<html>") is None


def client_error(code: str, status: int, headers: dict[str, str] | None = None) -> ClientError:
    response: dict[str, object] = {
        "Error": {"Code": code, "Message": "words that are not API"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "Invoke")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("TooManyRequestsException", 429, "throttled"),
        ("EC2ThrottledException", 502, "throttled"),
        ("ENILimitReachedException", 502, "throttled"),
        ("ResourceNotFoundException", 404, "unreachable"),
        ("ResourceConflictException", 409, "unreachable"),
        ("ServiceException", 500, "unreachable"),
        ("AccessDeniedException", 403, "unreachable"),
    ],
)
def test_client_errors_are_classified_by_code(code: str, status: int, reason: str) -> None:
    outcome = _client_error_outcome(client_error(code, status))
    assert outcome == NotInvoked(reason, f"{code}: words that are not API")  # type: ignore[arg-type]


def test_throttle_carries_retry_after_header() -> None:
    outcome = _client_error_outcome(client_error("TooManyRequestsException", 429, {"retry-after": "4"}))
    assert outcome.retry_after_seconds == 4.0
