"""AWS clients shared by every mapping: one per service, region, endpoint and credentials.

A client is heavy and idle mappings are many: each client builds a botocore class from the service
model and, at its first call, an aiohttp connector with a TLS context of its own (the CA bundle
loaded into OpenSSL, about 1 MiB even for an http:// endpoint). One per mapping was most of an
idle mapping's memory (bench `idle-rss`), so `AwsClients` opens a client the first time a kind and
region is asked for and hands that one to every mapping after; the endpoint and the credentials
(the session's) are the service's own, the same for every client it holds. The clients are the
service's: closed once, when it stops, never by a mapping that stops, restarts or is removed by a
reload while others still use them.

Sharing a client shares its connection pool, and an SQS receive long poll holds a connection for
up to 20 s: were long polls able to fill the pool, a visibility extension or a delete would wait
behind them until its messages time out. So an SQS source client's pool has two parts:
`SQS_RECEIVE_CONNECTIONS`, which each mapping on the client reserves room in for every receive
loop it may run, and `SQS_CONTROL_CONNECTIONS`, which long polls can never reach. A mapping whose
receive loops no longer fit gets another client of the same kind and region (one per 50 mappings);
its reservation ends when it stops, the client stays. Stream readers and destinations make only
short calls, so their clients are shared without reservations.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, ClientCreatorContext, get_session

from poller.destinations import destination_config

if TYPE_CHECKING:
    from types_aiobotocore_dynamodbstreams import DynamoDBStreamsClient
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient

SQS_RECEIVE_CONNECTIONS: Final = 500
"""Long polls one SQS source client carries: 50 mappings at their most receive loops."""
SQS_CONTROL_CONNECTIONS: Final = 50
"""Connections of an SQS source client that long polls never hold: deletes, visibility changes,
queue lookups; each takes milliseconds, so this many serve the client's mappings together."""
STREAM_POOL_CONNECTIONS: Final = 128
"""Every shard reader of every stream mapping on the client makes one short call at a time: past
this many, a reader waits for another's call to finish, never for a long poll."""
DESTINATION_POOL_CONNECTIONS: Final = 32
"""Failure deliveries of every mapping: rare and short, and retried by their caller."""

Kind = Literal["sqs-source", "kinesis", "dynamodbstreams", "sqs", "sns", "s3"]


def sqs_config(pool_connections: int) -> AioConfig:
    return AioConfig(
        # poller builds every SQS request itself (typed against the API's stubs): botocore's
        # parameter validation of each ReceiveMessage and DeleteMessageBatch only costs CPU.
        parameter_validation=False,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=40,  # long polls wait up to 20 s; the read timeout must outlast them
        max_pool_connections=pool_connections,
    )


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


@dataclass(eq=False)
class _Shared:
    client: Any
    reserved: int = 0
    """Receive connections the mappings using this client hold room for."""


class AwsClients:
    """The service's AWS clients by kind and region, opened at first use; `aclose` closes them.

    Also the `DestinationClients` of every mapping's on-failure destinations (`sqs`, `sns`, `s3`).
    """

    def __init__(
        self,
        session: AioSession,
        *,
        endpoint_url: str | None,
        stream_session: AioSession | None = None,
        sqs_receive_connections: int = SQS_RECEIVE_CONNECTIONS,
    ) -> None:
        self._session = session
        self._stream_session = stream_session or raw_timestamp_session()
        """Stream readers' clients: timestamps left as epoch seconds."""
        self._endpoint_url = endpoint_url
        self._receive_room = sqs_receive_connections
        self._clients: dict[tuple[Kind, str], list[_Shared]] = {}
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()
        self._closed = False

    async def sqs_source(self, stack: AsyncExitStack, *, region: str, receivers: int) -> SQSClient:
        """An SQS client with room for `receivers` long polls, held until `stack` (the mapping's)
        closes; the client itself stays open for the others and for the mapping's next start."""
        shared = await self._shared("sqs-source", region, reserve=receivers)
        stack.callback(self._release, shared, receivers)
        client: SQSClient = shared.client
        return client

    async def kinesis(self, *, region: str) -> KinesisClient:
        client: KinesisClient = (await self._shared("kinesis", region)).client
        return client

    async def dynamodb_streams(self, *, region: str) -> DynamoDBStreamsClient:
        client: DynamoDBStreamsClient = (await self._shared("dynamodbstreams", region)).client
        return client

    async def sqs(self, region: str) -> SQSClient:
        client: SQSClient = (await self._shared("sqs", region)).client
        return client

    async def sns(self, region: str) -> SNSClient:
        client: SNSClient = (await self._shared("sns", region)).client
        return client

    async def s3(self, region: str) -> S3Client:
        client: S3Client = (await self._shared("s3", region)).client
        return client

    def opened(self) -> dict[tuple[Kind, str], list[Any]]:
        """The clients open now, by kind and region (for diagnostics and tests)."""
        return {key: [shared.client for shared in clients] for key, clients in self._clients.items()}

    async def aclose(self) -> None:
        """Close every client; for the service's shutdown, once no mapping runs."""
        async with self._lock:
            self._closed = True
            self._clients.clear()
        await self._stack.aclose()

    async def _shared(self, kind: Kind, region: str, *, reserve: int = 0) -> _Shared:
        # One lock for every kind: opening a client takes milliseconds, and mappings starting
        # together must not open one client each for the same key.
        async with self._lock:
            if self._closed:
                raise RuntimeError("the service's AWS clients are closed: it is shutting down")
            clients = self._clients.setdefault((kind, region), [])
            shared = next((c for c in clients if c.reserved + reserve <= self._receive_room), None)
            if shared is None:
                shared = _Shared(await self._stack.enter_async_context(self._create(kind, region)))
                clients.append(shared)
            shared.reserved += reserve
            return shared

    @staticmethod
    def _release(shared: _Shared, reserved: int) -> None:
        shared.reserved -= reserved

    def _create(self, kind: Kind, region: str) -> ClientCreatorContext[Any]:
        endpoint = self._endpoint_url
        match kind:
            case "sqs-source":
                config = sqs_config(self._receive_room + SQS_CONTROL_CONNECTIONS)
                return self._session.create_client(
                    "sqs", region_name=region, endpoint_url=endpoint, config=config
                )
            case "kinesis":
                return self._stream_session.create_client(
                    "kinesis", region_name=region, endpoint_url=endpoint, config=stream_config()
                )
            case "dynamodbstreams":
                return self._stream_session.create_client(
                    "dynamodbstreams", region_name=region, endpoint_url=endpoint, config=stream_config()
                )
            case "sqs" | "sns":
                config = destination_config(pool_connections=DESTINATION_POOL_CONNECTIONS)
                return self._session.create_client(
                    kind, region_name=region, endpoint_url=endpoint, config=config
                )
            case "s3":
                config = destination_config(
                    path_style=endpoint is not None, pool_connections=DESTINATION_POOL_CONNECTIONS
                )
                return self._session.create_client(
                    "s3", region_name=region, endpoint_url=endpoint, config=config
                )
