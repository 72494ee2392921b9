"""An SNS standard topic as on-failure destination: Publish of the JSON record (spec §6.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from poller.destinations._aws import message_body, translate
from poller.destinations.base import FailureDelivery

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient


class SnsDestination:
    kind: str = "sns"

    def __init__(self, client: SNSClient, *, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    async def deliver(self, delivery: FailureDelivery) -> None:
        message = message_body(delivery.record, target=self._topic_arn)
        try:
            await self._client.publish(TopicArn=self._topic_arn, Message=message)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, action="Publish", target=self._topic_arn) from exc

    async def aclose(self) -> None:
        """Nothing to close: the client is its provider's (`DestinationClients`)."""
