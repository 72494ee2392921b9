"""Turning a parsed on-failure destination (`poller.config.destinations`) into a `Destination`.

`open_destination` only builds clients and never calls AWS, so a destination that does not exist
yet is found (and reported) at the first delivery rather than at start-up.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiobotocore.session import AioSession, get_session

from poller.config.destinations import (
    DEFAULT_REGION,
    DestinationSpec,
    FileDestinationSpec,
    KafkaDestinationSpec,
    S3DestinationSpec,
    SnsDestinationSpec,
    SqsDestinationSpec,
    confine_file,
    parse_destination,
)
from poller.destinations._aws import DestinationClients, OwnClients
from poller.destinations.base import Destination
from poller.destinations.file import FileDestination
from poller.destinations.kafka import KafkaDestination, KafkaProducers
from poller.destinations.s3 import S3Destination
from poller.destinations.sns import SnsDestination
from poller.destinations.sqs import SqsDestination

__all__ = ["DestinationSpec", "confine_file", "open_destination", "parse_destination"]


async def open_destination(
    spec: DestinationSpec,
    *,
    stack: AsyncExitStack,
    clients: DestinationClients | None = None,
    session: AioSession | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    kafka_bootstrap_servers: str | None = None,
    kafka_producers: KafkaProducers | None = None,
) -> Destination:
    """Build the destination `spec` names; `stack` closes it.

    SQS, SNS and S3 destinations use `clients`, shared with other mappings (the caller closes
    them); without it, a client of their own from `session` (botocore's default one if None) at
    `endpoint_url`, closed with the destination.
    `region` is used only for S3, whose bucket ARNs carry none; queue and topic ARNs name theirs.
    A `kafka://topic` is on the source's own cluster (spec §6.1), so it needs the mapping's
    `kafka_bootstrap_servers`; `kafka_producers` shares producers between mappings (the caller
    closes it), and without it the destination has its own, closed with it.
    """
    destination: Destination
    match spec:
        case SqsDestinationSpec():
            aws = _aws_clients(clients, session, endpoint_url, stack)
            destination = SqsDestination(
                await aws.sqs(spec.region),
                arn=spec.uri,
                account_id=spec.account_id,
                queue_name=spec.queue_name,
            )
        case SnsDestinationSpec():
            aws = _aws_clients(clients, session, endpoint_url, stack)
            destination = SnsDestination(await aws.sns(spec.region), topic_arn=spec.uri)
        case S3DestinationSpec():
            aws = _aws_clients(clients, session, endpoint_url, stack)
            s3_region = region or (session or get_session()).get_config_variable("region") or DEFAULT_REGION
            destination = S3Destination(await aws.s3(s3_region), bucket=spec.bucket, arn=spec.uri)
        case KafkaDestinationSpec():
            if kafka_bootstrap_servers is None:
                raise ValueError(
                    "Kafka destinations arrive with the Kafka source: a kafka:// topic is on the "
                    "mapping's own cluster, so open it with the mapping's kafka_bootstrap_servers"
                )
            destination = KafkaDestination(
                spec.topic, bootstrap_servers=kafka_bootstrap_servers, producers=kafka_producers
            )
        case FileDestinationSpec():
            destination = FileDestination(spec.path)
    stack.push_async_callback(destination.aclose)
    return destination


def _aws_clients(
    shared: DestinationClients | None,
    session: AioSession | None,
    endpoint_url: str | None,
    stack: AsyncExitStack,
) -> DestinationClients:
    if shared is not None:
        return shared
    own = OwnClients(session or get_session(), endpoint_url)
    stack.push_async_callback(own.aclose)
    return own
