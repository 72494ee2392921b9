"""An SQS standard queue as on-failure destination: SendMessage of the JSON record (spec §6.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from poller.aws_errors import error_code
from poller.destinations._aws import message_body, translate
from poller.destinations.base import FailureDelivery

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

NOT_FOUND_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})

REJECTED_CODES = frozenset({"InvalidMessageContents"})
"""Characters SQS refuses in a body: the same record would be refused on every retry."""


class SqsDestination:
    kind: str = "sqs"

    def __init__(self, client: SQSClient, *, arn: str, queue_name: str, account_id: str) -> None:
        self._client = client
        self._arn = arn
        self._queue_name = queue_name
        self._account_id = account_id
        self._queue_url: str | None = None

    async def _url(self) -> str:
        # Resolved at first delivery, not at open: a queue that does not exist yet should block
        # the failing batch (and be reported) rather than stop the whole mapping from starting.
        if self._queue_url is None:
            reply = await self._client.get_queue_url(
                QueueName=self._queue_name, QueueOwnerAWSAccountId=self._account_id
            )
            self._queue_url = reply["QueueUrl"]
        return self._queue_url

    async def deliver(self, delivery: FailureDelivery) -> None:
        body = message_body(delivery.record, target=self._arn)
        action = "GetQueueUrl"
        try:
            url = await self._url()
            action = "SendMessage"
            await self._client.send_message(QueueUrl=url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and error_code(exc) in NOT_FOUND_CODES:
                # The queue was deleted (and may be recreated): look its URL up again next time.
                self._queue_url = None
            raise translate(exc, action=action, target=self._arn, rejected_codes=REJECTED_CODES) from exc

    async def aclose(self) -> None:
        """Nothing to close: the client is its provider's (`DestinationClients`)."""
