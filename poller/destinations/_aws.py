"""What the SQS, SNS and S3 destinations share: where their clients come from, client config and
error translation.

A destination is handed its client (`DestinationClients`): the runtime's, shared by every mapping
and closed when the service stops, or, for callers without those, clients of its own
(`OwnClients`), closed with it. A destination never closes the client it was handed.

Transient AWS failures are retried inside botocore (standard mode, 3 attempts), so there is one
retry owner per call; what is still failing after that becomes `DeliveryFailed`, and the caller
owns the slower, blocking retry above it. Errors are told apart by error code, which is API,
never by message text, which is not.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Protocol

import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

from poller.aws_errors import error_code
from poller.destinations.base import DeliveryFailed, DeliveryRejected

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient

MESSAGE_LIMIT_BYTES = 256 * 1024
"""SQS and SNS message size limit (spec §6.1): larger records cannot be sent, however often tried."""

OWN_POOL_CONNECTIONS = 10
"""botocore's default pool: a client of its own serves one destination."""


def destination_config(
    *, path_style: bool = False, pool_connections: int = OWN_POOL_CONNECTIONS
) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=pool_connections,
        # Emulators on an IP address (moto, LocalStack) cannot serve `bucket.127.0.0.1`.
        s3={"addressing_style": "path"} if path_style else None,
    )


class DestinationClients(Protocol):
    """Where destinations get their clients; the endpoint and credentials are the provider's."""

    async def sqs(self, region: str) -> SQSClient: ...

    async def sns(self, region: str) -> SNSClient: ...

    async def s3(self, region: str) -> S3Client: ...


class OwnClients:
    """Clients opened on demand and closed together by `aclose`: one `open_destination` call's."""

    def __init__(self, session: AioSession, endpoint_url: str | None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._stack = AsyncExitStack()

    async def sqs(self, region: str) -> SQSClient:
        client: SQSClient = await self._stack.enter_async_context(
            self._session.create_client(
                "sqs", region_name=region, endpoint_url=self._endpoint_url, config=destination_config()
            )
        )
        return client

    async def sns(self, region: str) -> SNSClient:
        client: SNSClient = await self._stack.enter_async_context(
            self._session.create_client(
                "sns", region_name=region, endpoint_url=self._endpoint_url, config=destination_config()
            )
        )
        return client

    async def s3(self, region: str) -> S3Client:
        config = destination_config(path_style=self._endpoint_url is not None)
        client: S3Client = await self._stack.enter_async_context(
            self._session.create_client(
                "s3", region_name=region, endpoint_url=self._endpoint_url, config=config
            )
        )
        return client

    async def aclose(self) -> None:
        await self._stack.aclose()


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
