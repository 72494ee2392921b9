"""What the SQS, SNS and S3 destinations share: client config and error translation.

Transient AWS failures are retried inside botocore (standard mode, 3 attempts), so there is one
retry owner per call; what is still failing after that becomes `DeliveryFailed`, and the caller
owns the slower, blocking retry above it. Errors are told apart by error code, which is API,
never by message text, which is not.
"""

from __future__ import annotations

from collections.abc import Collection

import orjson
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from poller.destinations.base import DeliveryFailed, DeliveryRejected

MESSAGE_LIMIT_BYTES = 256 * 1024
"""SQS and SNS message size limit (spec §6.1): larger records cannot be sent, however often tried."""


def client_config(*, path_style: bool = False) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
        # Emulators on an IP address (moto, LocalStack) cannot serve `bucket.127.0.0.1`.
        s3={"addressing_style": "path"} if path_style else None,
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def translate(
    exc: ClientError | BotoCoreError,
    *,
    action: str,
    target: str,
    rejected_codes: Collection[str] = (),
) -> DeliveryFailed:
    """`DeliveryFailed` naming the call, the destination and the AWS code.

    Every AWS refusal is retriable unless its code says the record itself is at fault: a missing
    queue or bucket, or a denied permission, is for the operator to fix while progress waits.
    """
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", ""))
        text = f"{action} to {target} failed: {code}: {message}".rstrip(": ")
        if code in rejected_codes:
            return DeliveryRejected(text, code=code)
        return DeliveryFailed(text, code=code)
    return DeliveryFailed(f"{action} to {target} failed: {type(exc).__name__}: {exc}")


def message_body(record: object, *, target: str) -> str:
    """The record as the JSON text of an SQS body or SNS message, within the size limit."""
    body = orjson.dumps(record)
    if len(body) > MESSAGE_LIMIT_BYTES:
        raise DeliveryRejected(
            f"failure record of {len(body)} bytes exceeds the {MESSAGE_LIMIT_BYTES}-byte message limit "
            f"of {target}"
        )
    return body.decode("utf-8")
