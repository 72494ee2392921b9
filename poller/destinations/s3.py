"""An S3 bucket as on-failure destination: one object per record, with the payload (spec §6.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from poller.core.failure_records import s3_object_key, with_s3_payload
from poller.destinations._aws import translate
from poller.destinations.base import FailureDelivery

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


class S3Destination:
    kind: str = "s3"

    def __init__(self, client: S3Client, *, bucket: str, arn: str) -> None:
        self._client = client
        self._bucket = bucket
        self._arn = arn

    async def deliver(self, delivery: FailureDelivery) -> None:
        parts = delivery.s3_key_parts
        if parts is None or delivery.payload is None:
            # A caller bug, not an outage: retrying the same delivery could never succeed.
            raise ValueError("an S3 delivery needs the invocation payload and the S3 key parts")
        key = s3_object_key(
            esm_uuid=parts.esm_uuid,
            shard_id=parts.shard_id,
            timestamp_epoch_seconds=parts.timestamp_epoch_seconds,
            object_uuid=parts.object_uuid,
        )
        body = orjson.dumps(with_s3_payload(delivery.record, delivery.payload))
        try:
            await self._client.put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType="application/json"
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, action="PutObject", target=self._arn) from exc

    async def aclose(self) -> None:
        """Nothing to close: the client is its provider's (`DestinationClients`)."""
