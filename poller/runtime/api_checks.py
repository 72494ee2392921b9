"""What Lambda checks against the source when a mapping is created or updated (spec §1.6), for the
Lambda API (DESIGN §1.9): the queue or stream exists, and a queue's visibility timeout is not
shorter than the function's timeout.

Only a definite answer refuses the request; if the endpoint cannot be reached, the mapping is
accepted and its supervisor reports the source in /status as it would for a file mapping.
"""

from __future__ import annotations

import asyncio

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from poller.config import ResolvedMapping, SqsMapping, StreamMapping
from poller.errors import SourceNotFound
from poller.runtime.clients import AwsClients
from poller.sources.sqs.calls import describe_queue
from poller.sources.streams.api import not_found

log = structlog.get_logger("poller.api")

CHECK_SECONDS = 10.0


async def source_problem(clients: AwsClients, mapping: ResolvedMapping) -> str | None:
    """AWS's message if the source refuses this mapping, else None (also when nobody answers)."""
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            if isinstance(mapping, SqsMapping):
                return await _queue_problem(clients, mapping)
            if isinstance(mapping, StreamMapping):
                await _describe_stream(clients, mapping)
    except SourceNotFound as exc:
        return str(exc)
    except (ClientError, BotoCoreError, OSError, TimeoutError) as exc:
        log.warning("api_source_check_skipped", mapping=mapping.name, error=str(exc)[:300])
    except Exception as exc:  # SourceUnavailable and the like: the supervisor will say
        log.warning("api_source_check_skipped", mapping=mapping.name, error=str(exc)[:300])
    return None


async def _queue_problem(clients: AwsClients, mapping: SqsMapping) -> str | None:
    queue = await describe_queue(await clients.sqs(mapping.region), mapping.queue_name, mapping.account_id)
    if queue.visibility_timeout_seconds < mapping.function_timeout_seconds:
        return (
            f"Queue visibility timeout: {queue.visibility_timeout_seconds} seconds is less than "
            f"Function timeout: {mapping.function_timeout_seconds} seconds"
        )
    return None


async def _describe_stream(clients: AwsClients, mapping: StreamMapping) -> None:
    try:
        if mapping.source_kind == "kinesis":
            kinesis = await clients.kinesis(region=mapping.region)
            await kinesis.describe_stream_summary(StreamName=mapping.stream_name)
        else:
            streams = await clients.dynamodb_streams(region=mapping.region)
            await streams.describe_stream(StreamArn=mapping.event_source_arn, Limit=1)
    except ClientError as exc:
        raise not_found(exc, mapping.event_source_arn) from exc
