"""Turning a parsed on-failure destination (`poller.config.destinations`) into a `Destination`.

`open_destination` only builds clients and never calls AWS, so a destination that does not exist
yet is found (and reported) at the first delivery rather than at start-up.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiobotocore.session import AioSession

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
    session: AioSession,
    endpoint_url: str | None,
    stack: AsyncExitStack,
    region: str | None = None,
    kafka_bootstrap_servers: str | None = None,
    kafka_producers: KafkaProducers | None = None,
) -> Destination:
    """Build the destination `spec` names; `stack` closes it.

    `region` is used only for S3, whose bucket ARNs carry none; queue and topic ARNs name theirs.
    A `kafka://topic` is on the source's own cluster (spec §6.1), so it needs the mapping's
    `kafka_bootstrap_servers`; `kafka_producers` shares producers between mappings (the caller
    closes it), and without it the destination has its own, closed with it.
    """
    destination: Destination
    match spec:
        case SqsDestinationSpec():
            destination = await SqsDestination.open(
                arn=spec.uri,
                region=spec.region,
                account_id=spec.account_id,
                queue_name=spec.queue_name,
                session=session,
                endpoint_url=endpoint_url,
            )
        case SnsDestinationSpec():
            destination = await SnsDestination.open(
                topic_arn=spec.uri, region=spec.region, session=session, endpoint_url=endpoint_url
            )
        case S3DestinationSpec():
            s3_region = region or session.get_config_variable("region") or DEFAULT_REGION
            destination = await S3Destination.open(
                bucket=spec.bucket, arn=spec.uri, region=s3_region, session=session, endpoint_url=endpoint_url
            )
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
