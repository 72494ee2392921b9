"""The SQS API calls the source makes, with AWS errors read by code (never by text).

Transient failures of these calls are retried by botocore's own standard retry mode (one retry
owner for this layer); what is left when those retries are exhausted is reported here as a value
or a `SourceError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from poller.aws_errors import read_error
from poller.errors import SourceNotFound, SourceUnavailable
from poller.observability.metrics import MappingMetrics

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = structlog.get_logger("poller.sqs")


def not_found_message() -> str:
    """AWS's wording when the queue of a mapping is missing (spec §1.6)."""
    return (
        "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. "
        "SQS Error Message: The specified queue does not exist."
    )


def translate(exc: ClientError | BotoCoreError) -> SourceNotFound | SourceUnavailable:
    error = read_error(exc)
    if not isinstance(exc, ClientError):  # no reply at all
        return SourceUnavailable(f"SQS endpoint unreachable: {error.message}")
    if error.kind == "not_found":
        return SourceNotFound(not_found_message())
    return SourceUnavailable(
        f"Error occurred while calling SQS. SQS Error Code: {error.code}. {error.message}".strip()
    )


@dataclass(frozen=True, slots=True)
class QueueInfo:
    url: str
    visibility_timeout_seconds: int


async def describe_queue(client: SQSClient, queue_name: str, account_id: str) -> QueueInfo:
    try:
        url = (await client.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account_id))[
            "QueueUrl"
        ]
        attributes = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc) from exc
    return QueueInfo(url, int(attributes.get("Attributes", {}).get("VisibilityTimeout", "30")))


def _chunks(items: Sequence[tuple[str, str]], size: int = 10) -> Iterable[Sequence[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _confirmed(chunk: Sequence[tuple[str, str]], reply: Mapping[str, Any], event: str) -> set[str]:
    """The receipt handles of `chunk` a batch reply lists as `Successful`; its `Failed` are logged."""
    confirmed: set[str] = set()
    for success in reply.get("Successful", []):
        index = int(success["Id"])
        if 0 <= index < len(chunk):
            confirmed.add(chunk[index][1])
    for failure in reply.get("Failed", []):
        index = int(failure["Id"])
        message_id = chunk[index][0] if 0 <= index < len(chunk) else failure["Id"]
        log.warning(event, message_id=message_id, code=failure.get("Code"))
    return confirmed


async def delete_messages(client: SQSClient, queue_url: str, handles: Sequence[tuple[str, str]]) -> set[str]:
    """DeleteMessageBatch in chunks of 10; returns the receipt handles SQS confirmed deleted.

    A message that cannot be deleted (an expired receipt handle, say) is redelivered later, which
    at-least-once delivery allows; it is logged, never retried here with a stale handle.
    """
    deleted: set[str] = set()
    for chunk in _chunks(handles):
        entries = [{"Id": str(i), "ReceiptHandle": handle} for i, (_, handle) in enumerate(chunk)]
        try:
            reply = await client.delete_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            log.warning("delete_failed", messages=len(chunk), error=str(exc)[:300])
            continue
        deleted |= _confirmed(chunk, reply, "delete_failed")
    return deleted


async def delete_counted(
    client: SQSClient, queue_url: str, handles: Sequence[tuple[str, str]], metrics: MappingMetrics
) -> int:
    """`delete_messages`, returning how many SQS confirmed; the rest are redelivered later, and
    counted as failed acknowledgements."""
    deleted = len(await delete_messages(client, queue_url, handles))
    if failed := len(handles) - deleted:
        metrics.ack_failures["delete"].inc(failed)
    return deleted


async def change_visibility(
    client: SQSClient, queue_url: str, handles: Sequence[tuple[str, str]], timeout_seconds: int
) -> set[str]:
    """ChangeMessageVisibilityBatch in chunks of 10; returns the receipt handles SQS confirmed.

    Neither a failed call nor a `Failed` entry changed anything: the caller must not assume it did.
    """
    changed: set[str] = set()
    for chunk in _chunks(handles):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": timeout_seconds}
            for i, (_, handle) in enumerate(chunk)
        ]
        try:
            reply = await client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            log.warning("change_visibility_failed", messages=len(chunk), error=str(exc)[:300])
            continue
        changed |= _confirmed(chunk, reply, "change_visibility_failed")
    return changed
