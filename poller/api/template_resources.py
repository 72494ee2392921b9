"""The queues, streams and tables a template creates, made to exist (DESIGN §1.10).

With `aws.endpoint_url` set (LocalStack, moto) a template runs as it would deploy: each missing
source is created with the template's properties (dead-letter queues first, so a redrive policy
names a real queue), streams are waited for until ACTIVE, and the attributes only the service
knows (a queue's URL, a table's stream ARN) are read back for the template's `Ref` and `GetAtt`.
Sources that exist already are looked up, never recreated; the one change made is at an emulator, where
a table the template streams but that has no stream gets its stream turned on.

Against real AWS (no endpoint) poller creates nothing: deploying is CloudFormation's job. Each source
must exist; every missing one is reported once, by logical id and template line, and the mappings
that read it do not start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

from poller.api.template_requests import (
    creation_order,
    queue_attributes,
    queue_name,
    queue_tags,
    redrive_target,
    stream_request,
    stream_view_type,
    table_request,
)
from poller.api.template_sources import SourceResource
from poller.aws_errors import read_error
from poller.config.problems import Problem

ACTIVE_TIMEOUT_SECONDS: Final = 60.0
"""How long a new stream or table may take to become ACTIVE (LocalStack: about a second)."""
ACTIVE_POLL_SECONDS: Final = 0.1
_NOT_STARTED: Final = "The mappings that read it do not start."

_QUEUE: Final = "AWS::SQS::Queue"
_STREAM: Final = "AWS::Kinesis::Stream"
_TABLE: Final = "AWS::DynamoDB::Table"


def _config() -> AioConfig:
    # Throttling and 5xx are retried by the SDK: creating a handful of resources once at start-up
    # needs no backoff policy of its own.
    return AioConfig(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True, slots=True)
class SourceClients:
    """One client per service the sources need (any object with the API's methods: a test's fake)."""

    sqs: Any = None
    kinesis: Any = None
    dynamodb: Any = None


class _Missing(Exception):
    """The source does not exist and is not to be created (real AWS)."""


class _NotReady(Exception):
    """The source was created but did not become ACTIVE in time."""


async def ensure_sources(
    sources: Sequence[SourceResource],
    *,
    session: AioSession,
    region: str,
    endpoint_url: str | None,
    template: Path | None = None,
    active_timeout_seconds: float = ACTIVE_TIMEOUT_SECONDS,
) -> tuple[dict[str, dict[str, str]], list[Problem]]:
    """Every source's real attributes by logical id (`Ref`, `Arn`, …), and a problem for each that
    is missing or could not be made; created only when `endpoint_url` is set."""
    if not sources:
        return {}, []
    needed = {s.type for s in sources}
    options: dict[str, Any] = {"region_name": region, "endpoint_url": endpoint_url, "config": _config()}
    async with AsyncExitStack() as stack:
        enter = stack.enter_async_context
        clients = SourceClients(
            sqs=await enter(session.create_client("sqs", **options)) if _QUEUE in needed else None,
            kinesis=await enter(session.create_client("kinesis", **options)) if _STREAM in needed else None,
            dynamodb=await enter(session.create_client("dynamodb", **options)) if _TABLE in needed else None,
        )
        return await ensure_with(
            clients,
            sources,
            create=endpoint_url is not None,
            template=template,
            where=endpoint_url or f"AWS {region}",
            active_timeout_seconds=active_timeout_seconds,
        )


async def ensure_with(
    clients: SourceClients,
    sources: Iterable[SourceResource],
    *,
    create: bool,
    template: Path | None = None,
    where: str = "AWS",
    active_timeout_seconds: float = ACTIVE_TIMEOUT_SECONDS,
) -> tuple[dict[str, dict[str, str]], list[Problem]]:
    """`ensure_sources` on given clients: one source after another, dead-letter queues first."""
    ordered = creation_order(sources)
    queues = [s for s in ordered if s.type == "AWS::SQS::Queue"]
    attributes: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    for source in ordered:
        try:
            match source.type:
                case "AWS::SQS::Queue":
                    target = redrive_target(source, queues)
                    dlq_arn = attributes.get(target, {}).get("Arn") if target is not None else None
                    found = await _queue(clients.sqs, source, create, dlq_arn)
                case "AWS::Kinesis::Stream":
                    found = await _stream(clients.kinesis, source, create, active_timeout_seconds)
                case "AWS::DynamoDB::Table":
                    found = await _table(clients.dynamodb, source, create, active_timeout_seconds)
        except _Missing:
            problems.append(_problem(source, template, _missing_message(source, where)))
        except _NotReady as exc:
            problems.append(_problem(source, template, str(exc)))
        except (ClientError, BotoCoreError) as exc:
            error = read_error(exc)
            verb = "create" if create else "look up"
            detail = f"{error.code}: {error.message}" if error.message else error.code
            message = f"Could not {verb} {_what(source)} at {where} ({detail}). {_NOT_STARTED}"
            problems.append(_problem(source, template, message))
        else:
            attributes[source.logical_id] = found
    return attributes, problems


def _what(source: SourceResource) -> str:
    kind = {"AWS::SQS::Queue": "queue", "AWS::Kinesis::Stream": "stream", "AWS::DynamoDB::Table": "table"}
    name = queue_name(source) if source.type == "AWS::SQS::Queue" else source.physical_name
    return f"the {kind[source.type]} '{name}' ({source.type})"


def _subject(source: SourceResource) -> str:
    what = _what(source)
    return what[0].upper() + what[1:]


def _missing_message(source: SourceResource, where: str) -> str:
    return (
        f"{_subject(source)} does not exist in {where}. Without "
        "aws.endpoint_url poller creates nothing: deploy the template's resources first, or set "
        f"aws.endpoint_url to create them at LocalStack or moto. {_NOT_STARTED}"
    )


def _problem(source: SourceResource, template: Path | None, message: str) -> Problem:
    return Problem(message, template, source.line, field=source.logical_id)


def _not_found(exc: ClientError | BotoCoreError) -> bool:
    return read_error(exc).kind == "not_found"


async def _queue(sqs: Any, source: SourceResource, create: bool, dlq_arn: str | None) -> dict[str, str]:
    name = queue_name(source)
    try:
        url = str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])
    except ClientError as exc:
        if not _not_found(exc):
            raise
        if not create:
            raise _Missing from None
        request: dict[str, Any] = {"QueueName": name, "Attributes": queue_attributes(source, dlq_arn)}
        tags = queue_tags(source)
        if tags:
            request["tags"] = tags
        url = str((await sqs.create_queue(**request))["QueueUrl"])
    reply = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn = str(reply["Attributes"]["QueueArn"])
    return {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": name}


async def _stream(kinesis: Any, source: SourceResource, create: bool, timeout: float) -> dict[str, str]:
    name = source.physical_name
    try:
        summary = (await kinesis.describe_stream_summary(StreamName=name))["StreamDescriptionSummary"]
    except ClientError as exc:
        if not _not_found(exc):
            raise
        if not create:
            raise _Missing from None
        await kinesis.create_stream(**stream_request(source))
        summary = await _until_active(
            source,
            timeout,
            lambda: kinesis.describe_stream_summary(StreamName=name),
            lambda reply: reply["StreamDescriptionSummary"],
            "StreamStatus",
        )
    return {"Ref": name, "Arn": str(summary["StreamARN"])}


async def _table(dynamodb: Any, source: SourceResource, create: bool, timeout: float) -> dict[str, str]:
    name = source.physical_name
    try:
        table = (await dynamodb.describe_table(TableName=name))["Table"]
    except ClientError as exc:
        if not _not_found(exc):
            raise
        if not create:
            raise _Missing from None
        await dynamodb.create_table(**table_request(source))
        table = await _until_active(
            source,
            timeout,
            lambda: dynamodb.describe_table(TableName=name),
            lambda reply: reply["Table"],
            "TableStatus",
        )
    view = stream_view_type(source)
    if view is not None and not table.get("LatestStreamArn"):
        if not create:
            raise _NotReady(
                f"{_subject(source)} exists but has no stream, which the "
                f"template's StreamSpecification asks for. {_NOT_STARTED}"
            )
        # An existing table the template wants a stream on, at an emulation: turn its stream on.
        spec = {"StreamEnabled": True, "StreamViewType": view}
        table = (await dynamodb.update_table(TableName=name, StreamSpecification=spec))["TableDescription"]
    found = {"Ref": name, "Arn": str(table["TableArn"])}
    if table.get("LatestStreamArn"):
        found["StreamArn"] = str(table["LatestStreamArn"])
    return found


async def _until_active(
    source: SourceResource, timeout: float, describe: Any, unwrap: Any, status_key: str
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        described: dict[str, Any] = unwrap(await describe())
        if described.get(status_key) == "ACTIVE":
            return described
        if loop.time() >= deadline:
            raise _NotReady(
                f"{_subject(source)} was created but is still "
                f"{described.get(status_key)} after {timeout:.0f} s. {_NOT_STARTED}"
            )
        await asyncio.sleep(ACTIVE_POLL_SECONDS)
