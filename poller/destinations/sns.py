"""An SNS standard topic as on-failure destination: Publish of the JSON record (spec §6.2)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

from poller.destinations._aws import client_config, message_body, translate
from poller.destinations.base import FailureDelivery

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient


class SnsDestination:
    kind: str = "sns"

    def __init__(self, client: SNSClient, *, topic_arn: str, exit_stack: AsyncExitStack) -> None:
        self._client = client
        self._topic_arn = topic_arn
        self._exit_stack = exit_stack

    @classmethod
    async def open(
        cls, *, topic_arn: str, region: str, session: AioSession, endpoint_url: str | None
    ) -> SnsDestination:
        stack = AsyncExitStack()
        client: SNSClient = await stack.enter_async_context(
            session.create_client(
                "sns", region_name=region, endpoint_url=endpoint_url, config=client_config()
            )
        )
        return cls(client, topic_arn=topic_arn, exit_stack=stack)

    async def deliver(self, delivery: FailureDelivery) -> None:
        message = message_body(delivery.record, target=self._topic_arn)
        try:
            await self._client.publish(TopicArn=self._topic_arn, Message=message)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, action="Publish", target=self._topic_arn) from exc

    async def aclose(self) -> None:
        await self._exit_stack.aclose()
