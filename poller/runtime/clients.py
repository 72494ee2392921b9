"""AWS clients, one per mapping so one mapping's long polls never starve another's calls.

A client's connection pool is shared by everything that uses it: with one client for every
mapping, receive long polls (20 s each) can hold all connections while a visibility extension or a
delete waits behind them until messages time out. Each mapping gets a pool sized for its own
receivers plus room for its control calls.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

if TYPE_CHECKING:
    from types_aiobotocore_dynamodbstreams import DynamoDBStreamsClient
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_sqs import SQSClient

STREAM_POOL_CONNECTIONS = 64
"""Shard readers make one call at a time each; this is room for many shards of one mapping."""


def sqs_config(receivers: int) -> AioConfig:
    return AioConfig(
        # poller builds every SQS request itself (typed against the API's stubs): botocore's
        # parameter validation of each ReceiveMessage and DeleteMessageBatch only costs CPU.
        parameter_validation=False,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=40,  # long polls wait up to 20 s; the read timeout must outlast them
        max_pool_connections=receivers + 20,
    )


async def open_sqs_client(
    session: AioSession, stack: AsyncExitStack, *, region: str, endpoint_url: str | None, receivers: int
) -> SQSClient:
    client: SQSClient = await stack.enter_async_context(
        session.create_client(
            "sqs", region_name=region, endpoint_url=endpoint_url, config=sqs_config(receivers)
        )
    )
    return client


def stream_config() -> AioConfig:
    # Throttling and expired iterators are the stream helper's to handle (it backs off per
    # shard), so the SDK makes only one extra attempt, for network errors.
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 2},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=STREAM_POOL_CONNECTIONS,
    )


def raw_timestamp_session() -> AioSession:
    """A session whose clients leave timestamps as the wire's epoch seconds.

    botocore turns every record's ApproximateArrivalTimestamp / ApproximateCreationDateTime into a
    tzlocal datetime (a quarter of a stream reader's CPU, measured in bench/), and the event
    builders only turn it back into epoch seconds; its own session keeps other clients unchanged.
    """
    session = get_session()
    factory = session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=lambda value: value)
    return session


async def open_kinesis_client(
    session: AioSession, stack: AsyncExitStack, *, region: str, endpoint_url: str | None
) -> KinesisClient:
    client: KinesisClient = await stack.enter_async_context(
        session.create_client(
            "kinesis", region_name=region, endpoint_url=endpoint_url, config=stream_config()
        )
    )
    return client


async def open_dynamodb_streams_client(
    session: AioSession, stack: AsyncExitStack, *, region: str, endpoint_url: str | None
) -> DynamoDBStreamsClient:
    client: DynamoDBStreamsClient = await stack.enter_async_context(
        session.create_client(
            "dynamodbstreams", region_name=region, endpoint_url=endpoint_url, config=stream_config()
        )
    )
    return client
